"""SPEC 7.2: alert rules fire once, stay quiet while over, clear after the hold time, and
pause a campaign when asked; every problem of a rule is reported per key.

The engine (domain/alerts.py) is tested with a clock the test moves; the daemon's alert
actor reads `runtime.alerts.clock`, which the tests replace the same way. No test waits
for time to pass."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors.alerts import Recheck
from daemon.config import load_config
from domain.alerts import AlertEngine, parse_rules
from tests.conftest import Daemon, close_server, eventually, webjs_ack
from tests.fakes.gateways import FakeGateway
from tests.test_pusher_protocol import Client


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the configuration ------------------------------------------------------------------


def test_every_problem_of_a_rule_is_named_by_its_key(tmp_path: Any) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text("""
[[alerts]]
metric = "failure_rate"
threshold = 20

[[alerts]]
metric = "category_share"
category = "bad_numbers"
threshold = "high"

[[alerts]]
metric = "read_rate"
threshold = 120
direction = "down"
treshold = 3
window = -5
min_volume = 0
pause = "yes"
""")
    with pytest.raises(Exception) as raised:
        load_config(config, environ={})
    problems = raised.value.problems  # type: ignore[attr-defined]
    assert "alerts[1].category = 'bad_numbers': category_share needs one of opted_out, " \
        "not_on_whatsapp, limited_by_meta, throttled, template, window_closed, account, " \
        "temporary, other" in problems
    assert "alerts[1].threshold = 'high': required, must be a number" in problems
    for expected in ("alerts[2].threshold = 120: out of range",
                     "alerts[2].direction = 'down': must be 'above' or 'below'",
                     "alerts[2].treshold: unknown key (did you mean 'threshold'?)",
                     "alerts[2].window = -5:", "alerts[2].min_volume = 0:",
                     "alerts[2].pause = 'yes': must be true or false"):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert not any(p.startswith("alerts[0]") for p in problems)


def test_rules_get_their_defaults_and_unique_names() -> None:
    rules, problems = parse_rules([
        {"metric": "failure_rate", "threshold": 20},
        {"metric": "read_rate", "threshold": 15},
        {"metric": "category_share", "category": "limited_by_meta", "threshold": 5},
        {"metric": "failure_rate", "threshold": 50}])
    assert problems == ["alerts[3].name = 'failure_rate': another rule has this name; give "
                        "each rule its own name"]
    assert [(r.name, r.direction) for r in rules] == [
        ("failure_rate", "above"), ("read_rate", "below"),
        ("category_share:limited_by_meta", "above")]


# --- the engine, with a clock the test moves ----------------------------------------------


def stats(sent: int, failed: int, **more: Any) -> dict[str, Any]:
    return {"total_sent_count": sent, "total_failed_count": failed, **more}


def test_fires_once_stays_quiet_while_over_and_clears_after_the_hold() -> None:
    rules, _ = parse_rules([{"metric": "failure_rate", "threshold": 20, "window": 0,
                             "min_volume": 10, "hold": 600}])
    engine = AlertEngine(rules)
    t = 1000.0
    assert engine.check(1, stats(5, 4), t) == ([], None)  # 44 % but only 9 messages
    notices, _ = engine.check(1, stats(5, 5), t)
    assert [(n.state, n.value) for n in notices] == [("firing", 50.0)]
    for minute in range(1, 120):  # two hours over: never again (window 0)
        assert engine.check(1, stats(5, 5 + minute), t + 60 * minute)[0] == []
    notices, wake = engine.check(1, stats(100, 5), t + 7200)  # 4.8 %: under, holding
    assert notices == [] and wake == t + 7200 + 600
    assert engine.check(1, stats(100, 5), t + 7799)[0] == []
    notices, wake = engine.recheck(1, t + 7800)  # the hold's timer, nothing new
    assert [(n.state, n.value) for n in notices] == [("cleared", 4.8)] and wake is None
    assert engine.firing(1) == []
    # a dip under that ends before the hold keeps it firing
    engine.check(1, stats(100, 60), t + 8000)
    engine.check(1, stats(900, 60), t + 8100)
    assert engine.check(1, stats(900, 400), t + 8200)[0] == []
    assert [r.name for r in engine.firing(1)] == ["failure_rate"]


def test_a_window_measures_recent_messages_and_repeats_at_most_once_per_window() -> None:
    rules, _ = parse_rules([{"metric": "failure_rate", "threshold": 20, "window": 3600,
                             "min_volume": 10, "hold": 0}])
    engine = AlertEngine(rules)
    t = 0.0
    engine.check(1, stats(1000, 0), t)  # a good first hour
    engine.check(1, stats(1000, 0), t + 3600)
    notices, _ = engine.check(1, stats(1010, 20), t + 3700)  # 20 of the last 30 failed
    assert [(n.state, n.value, n.volume) for n in notices] == [("firing", 66.7, 30.0)]
    assert engine.check(1, stats(1020, 40), t + 5000)[0] == []  # over, within the window
    notices, _ = engine.check(1, stats(1030, 60), t + 7300)  # over a window later
    assert [(n.state, n.repeat) for n in notices] == [("firing", True)]


def test_delivery_read_and_reply_rates_and_any_statistics_key() -> None:
    rules, problems = parse_rules([
        {"metric": "delivery_rate", "threshold": 80, "window": 0, "min_volume": 10},
        {"metric": "reply_rate", "threshold": 5, "window": 0, "min_volume": 10},
        {"metric": "total_opted_out_count", "threshold": 3, "min_volume": 1}])
    assert problems == []
    engine = AlertEngine(rules)
    # reply_rate = replied / delivered (SPEC 6.3), as the engagement work will report it
    built = stats(100, 0, total_delivered_count=90, total_replied_count=2, reply_rate=2.2,
                  total_opted_out_count=4)
    notices, _ = engine.check(7, built, 10.0)
    assert {(n.rule.name, n.value) for n in notices} == {("reply_rate", 2.2),
                                                         ("total_opted_out_count", 4.0)}
    notices, _ = engine.check(7, {**built, "total_delivered_count": 70}, 20.0)
    assert [(n.rule.name, n.value) for n in notices] == [("delivery_rate", 70.0)]
    # before replies are counted at all, reply_rate is simply not judged
    engine2 = AlertEngine(rules[1:2])
    assert engine2.check(7, stats(100, 0, total_delivered_count=90), 10.0) == ([], None)


def test_category_share_reads_the_failure_breakdown() -> None:
    rules, _ = parse_rules([{"metric": "category_share", "category": "not_on_whatsapp",
                             "threshold": 10, "window": 0, "min_volume": 20}])
    engine = AlertEngine(rules)
    breakdown = [{"category": "not_on_whatsapp", "label": "x", "count": 3, "codes": {}},
                 {"category": "limited_by_meta", "label": "y", "count": 9, "codes": {}}]
    assert engine.check(1, stats(28, 12, failures=breakdown), 0.0)[0] == []  # 7.5 %
    breakdown[0]["count"] = 5
    notices, _ = engine.check(1, stats(26, 14, failures=breakdown), 1.0)
    assert [n.value for n in notices] == [12.5]
    assert "not_on_whatsapp share is 12.5%" in notices[0].message()


# --- in the daemon -----------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway().start()
    yield gw
    await gw.close()


async def settle(d: Daemon, uuid: str, **counts: int) -> dict[str, Any]:
    """Wait until the campaign shows these counts, then until the alert actor has judged
    them (its inbox is in order: a message asked after them is answered after them)."""
    async def shown() -> Any:
        s = await d.stats(uuid)
        return all(s[k] == v for k, v in counts.items()) and s
    s = await eventually(shown)
    ref = d.runtime.alerts.ref
    await asyncio.get_running_loop().run_in_executor(None, ref.ask, "barrier")
    for _ in range(5):
        await asyncio.sleep(0)  # the announcements the actor handed to the loop
    return s


def notices(d: Daemon, rule: str, state: str) -> float:
    return d.runtime.metrics.alert_notices.labels(rule, state)._value.get()


async def metric(d: Daemon, name: str) -> str:
    status, text = await d.request("GET", "/metrics")
    return "\n".join(line for line in text.splitlines() if line.startswith(name))


async def test_an_alert_fires_once_reaches_everyone_and_clears(
        daemon_factory: Any, fake: FakeGateway) -> None:
    d = await daemon_factory(**{
        "alerts": [{"name": "failures", "metric": "failure_rate", "threshold": 45,
                    "window": 0, "min_volume": 10, "hold": 600}],
        "sender.webhook_url": fake.url + "/hooks/campaignd",
        "sender.webhook_secret": "hook-secret"})
    clock = Clock()
    d.runtime.alerts.clock = clock
    await d.create_campaign(uuid="promo")
    # 20 messages the gateway accepted (registered with their ids: they count as sent)
    await d.register("promo", [{"recipient": f"6281{i:08d}", "message_id": f"ID{i:05d}"}
                               for i in range(20)])
    client = await Client.connect(d)
    await client.subscribe("campaign.promo")
    for i in range(10):  # ten of them fail: 50 %
        await d.post_json("/webhooks/webjs", webjs_ack(f"ID{i:05d}", -1))
    await settle(d, "promo", total_failed_count=10)
    assert notices(d, "failures", "firing") == 1

    async def alert_event() -> Any:
        while True:
            frame = await client.next()
            if frame["event"] == "campaign.alert":
                return frame["data"]
    pushed = await asyncio.wait_for(alert_event(), 5)
    assert pushed["campaign_uuid"] == "promo"
    assert pushed["alert"]["state"] == "firing" and pushed["alert"]["value"] == 50.0
    _, body = await d.request("GET", "/api/campaigns/promo")
    assert [a["rule"] for a in body["campaign"]["alerts"]] == ["failures"]
    assert 'campaignd_alerts_firing{rule="failures"} 1.0' in await metric(
        d, "campaignd_alerts_firing")
    await eventually(lambda: _hooked(fake, 1))
    headers, raw = fake.hooks[0]
    assert headers["X-Campaignd-Signature"] == "sha256=" + hmac.new(
        b"hook-secret", raw, hashlib.sha256).hexdigest()
    hook = json.loads(raw)
    assert hook["event"] == "campaign.alert" and hook["alert"]["rule"] == "failures"
    assert hook["campaign"]["uuid"] == "promo"

    # still over, an hour later: quiet (no storm)
    clock.now += 3600
    for i in range(10, 15):
        await d.post_json("/webhooks/webjs", webjs_ack(f"ID{i:05d}", -1))
    await settle(d, "promo", total_failed_count=15)
    assert notices(d, "failures", "firing") == 1 and len(fake.hooks) == 1

    # back under: 13 of the failed turn out delivered (2 of 20 failed, 10 %)...
    for i in range(13):
        await d.post_json("/webhooks/webjs", webjs_ack(f"ID{i:05d}", 2))
    await settle(d, "promo", total_failed_count=2)
    # ...not cleared before the hold time...
    clock.now += 599
    await d.post_json("/webhooks/webjs", webjs_ack("ID00019", 3))
    await settle(d, "promo", total_read_count=1)
    assert notices(d, "failures", "cleared") == 0
    # ...and cleared once it has stayed under for it
    clock.now += 1
    await d.post_json("/webhooks/webjs", webjs_ack("ID00018", 3))
    await settle(d, "promo", total_read_count=2)
    assert notices(d, "failures", "cleared") == 1
    _, body = await d.request("GET", "/api/campaigns/promo")
    assert body["campaign"]["alerts"] == []
    assert 'campaignd_alerts_firing{rule="failures"} 0.0' in await metric(
        d, "campaignd_alerts_firing")
    cleared = await asyncio.wait_for(alert_event(), 5)
    assert cleared["alert"]["state"] == "cleared"
    await eventually(lambda: _hooked(fake, 2))


async def _hooked(fake: FakeGateway, n: int) -> bool:
    return len(fake.hooks) >= n


async def test_an_alert_pauses_the_campaign_when_asked(daemon_factory: Any,
                                                       fake: FakeGateway) -> None:
    fake.script = {f"62812000000{i:02d}": [("graph", 131026, 400)] for i in range(10)}
    d = await daemon_factory(**{
        "gateways.cloud.base_url": fake.url, "gateways.cloud.phone_number_id": "1055",
        "gateways.cloud.access_token": "cloud-token", "sender.failure_min_sample": 10_000,
        "sender.max_in_flight": 1,
        "alerts": [{"name": "bad list", "metric": "category_share",
                    "category": "not_on_whatsapp", "threshold": 30, "min_volume": 5,
                    "pause": True}]})
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Promo", "uuid": "bad-list", "message": "Halo",
        "gateway": "cloud", "rate": 20, "start": True,
        "recipients": [f"62812000000{i:02d}" for i in range(60)]})
    assert status == 201, body

    async def paused() -> Any:
        _, body = await d.request("GET", "/api/campaigns/bad-list/sending")
        return body["sending"]["status"] == "paused" and body["sending"]
    sending = await eventually(paused, timeout=15)
    assert sending["status_reason"].startswith("alert: bad list: not_on_whatsapp share is")
    assert sending["send_states"].get("queued", 0) > 0  # the rest waits for an operator
    _, body = await d.request("GET", "/api/campaigns/bad-list")
    assert body["campaign"]["alerts"][0]["pause"] is True


async def test_a_reply_rate_rule_judges_the_replies_webhooks_bring(
        daemon_factory: Any) -> None:
    """reply_rate (SPEC 7.2) over the replies of SPEC 6.3, in a running daemon: it fires
    while few of the delivered messages got an answer and clears once recipients reply
    (each quoting the campaign's message) through the webhook."""
    d = await daemon_factory(**{
        "alerts": [{"name": "quiet", "metric": "reply_rate", "threshold": 20,
                    "window": 0, "min_volume": 10, "hold": 0}]})
    d.runtime.alerts.clock = Clock()
    await d.create_campaign(uuid="promo")
    await d.register("promo", [{"recipient": f"6281200{i:06d}", "message_id": f"ID{i:05d}"}
                               for i in range(10)])
    for i in range(10):
        await d.post_json("/webhooks/webjs", webjs_ack(f"ID{i:05d}", 2))  # delivered
    await settle(d, "promo", total_delivered_count=10)
    assert notices(d, "quiet", "firing") == 1  # 0 replies of 10 delivered
    _, body = await d.request("GET", "/api/campaigns/promo")
    assert [a["rule"] for a in body["campaign"]["alerts"]] == ["quiet"]

    for i in range(3):  # three answer: 30 % of the delivered
        status, _ = await d.post_json("/webhooks/webjs", {
            "event": "message_received", "data": {"message": {
                "id": f"false_6281200{i:06d}@c.us_3EB0REPLY{i:05d}",
                "from": f"6281200{i:06d}@c.us", "body": "berapa harganya?",
                "timestamp": int(time.time()), "from_me": False, "chat_type": "private",
                "type": "chat", "quoted_message_id": f"ID{i:05d}"}}})
        assert status == 200
    stats = await settle(d, "promo", total_replied_count=3)
    assert stats["reply_rate"] == 30.0
    assert notices(d, "quiet", "cleared") == 1
    _, body = await d.request("GET", "/api/campaigns/promo")
    assert body["campaign"]["alerts"] == []


# --- across a restart --------------------------------------------------------------------


async def half_failed(d: Daemon, uuid: str, prefix: str) -> None:
    """A campaign of 20 registered messages, 10 of them failed (50 %)."""
    await d.create_campaign(uuid=uuid)
    await d.register(uuid, [{"recipient": f"62{len(prefix)}{ord(prefix[-1])}{i:06d}",
                             "message_id": f"{prefix}{i:05d}"} for i in range(20)])
    for i in range(10):
        await d.post_json("/webhooks/webjs", webjs_ack(f"{prefix}{i:05d}", -1))
    await settle(d, uuid, total_failed_count=10)


async def restart(d: Daemon, daemon_factory: Any, **settings: Any) -> Daemon:
    await close_server(d.server)
    await d.session.close()
    return await daemon_factory(**settings)  # the same database


async def test_a_firing_alert_outlives_a_restart_without_being_announced_again(
        daemon_factory: Any, fake: FakeGateway) -> None:
    """SPEC 7.2, "at most once per window while it stays over": what is firing is stored,
    so a restarted daemon shows it at once and does not announce it a second time (before,
    the operator got the same alert again after every restart); an edited rule is judged
    afresh; the stored alert goes when it clears."""
    rule = {"name": "failures", "metric": "failure_rate", "threshold": 45, "window": 0,
            "min_volume": 10, "hold": 0}
    settings = {"alerts": [rule], "sender.webhook_url": fake.url + "/hooks/campaignd",
                "sender.webhook_secret": "hook-secret"}
    d = await daemon_factory(**settings)
    await half_failed(d, "promo", "ID")
    await eventually(lambda: _hooked(fake, 1))

    d = await restart(d, daemon_factory, **settings)
    _, body = await d.request("GET", "/api/campaigns/promo")
    assert [(a["rule"], a["value"]) for a in body["campaign"]["alerts"]] == [("failures", 50.0)]
    assert 'campaignd_alerts_firing{rule="failures"} 1.0' in await metric(
        d, "campaignd_alerts_firing")
    for i in range(10, 12):  # still over (12 of 20)
        await d.post_json("/webhooks/webjs", webjs_ack(f"ID{i:05d}", -1))
    await settle(d, "promo", total_failed_count=12)
    assert notices(d, "failures", "firing") == 0
    await asyncio.sleep(0.2)  # a webhook would have been posted by now
    assert len(fake.hooks) == 1

    for i in range(12):  # back under: cleared once, and no longer stored
        await d.post_json("/webhooks/webjs", webjs_ack(f"ID{i:05d}", 2))
    await settle(d, "promo", total_failed_count=0)
    assert notices(d, "failures", "cleared") == 1
    await eventually(lambda: _hooked(fake, 2))
    assert json.loads(fake.hooks[1][1])["alert"]["state"] == "cleared"

    async def stored() -> list[Any]:
        return await d.runtime.store.fetchall("SELECT rule FROM alert_states")
    await eventually(lambda: _empty(stored()))

    # another campaign fires, then a restart with the rule's threshold edited: judged
    # afresh (its stored alert is dropped, the campaign is under the new threshold)
    await half_failed(d, "second", "IE")
    assert notices(d, "failures", "firing") == 1
    await eventually(lambda: _hooked(fake, 3))
    d = await restart(d, daemon_factory, **{**settings, "alerts": [{**rule, "threshold": 60}]})
    _, body = await d.request("GET", "/api/campaigns/second")
    assert body["campaign"]["alerts"] == []
    await eventually(lambda: _empty(stored()))  # the edited rule's old alert is dropped


async def _empty(rows: Any) -> bool:
    return not await rows


async def test_a_hold_time_begun_before_a_restart_goes_on_after_it(
        daemon_factory: Any) -> None:
    """A firing alert that had stayed under for 10 of its 15 minutes when the daemon
    stopped clears 5 minutes after the restart, not 15 (before, the hold began again)."""
    rule = {"name": "failures", "metric": "failure_rate", "threshold": 45, "window": 0,
            "min_volume": 10, "hold": 900}
    d = await daemon_factory(alerts=[rule])
    clock = Clock(time.time())  # the restarted daemon judges its restored alerts at start
    d.runtime.alerts.clock = clock  # on the real clock: both must agree
    await half_failed(d, "promo", "ID")
    assert notices(d, "failures", "firing") == 1
    for i in range(10):  # back under at clock.now: the hold begins
        await d.post_json("/webhooks/webjs", webjs_ack(f"ID{i:05d}", 2))
    await settle(d, "promo", total_failed_count=0)
    began = clock.now

    async def hold_stored() -> bool:
        rows = await d.runtime.store.fetchall("SELECT under_since FROM alert_states")
        return rows == [(began,)]
    await eventually(hold_stored)

    clock.now += 600
    d = await restart(d, daemon_factory, alerts=[rule])
    d.runtime.alerts.clock = clock  # the restored alert is judged on this clock
    info = next(i for i in (await d.runtime.campaigns.all_infos()).values()
                if i.uuid == "promo")

    async def recheck() -> None:
        """The hold's timer firing, as the loop does it (the test's clock is not the
        loop's)."""
        ref = d.runtime.alerts.ref
        ref.tell(Recheck(info))
        await asyncio.get_running_loop().run_in_executor(None, ref.ask, "barrier")
        for _ in range(5):
            await asyncio.sleep(0)  # what the actor handed to the loop

    await recheck()
    assert notices(d, "failures", "cleared") == 0  # 10 of 15 minutes: still firing
    clock.now += 299
    await recheck()
    assert notices(d, "failures", "cleared") == 0
    clock.now += 1
    await recheck()
    assert notices(d, "failures", "cleared") == 1
    _, body = await d.request("GET", "/api/campaigns/promo")
    assert body["campaign"]["alerts"] == []
