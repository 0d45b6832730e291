"""Replies, button taps and opt-outs through a running daemon (SPEC 6), as a user sees
them: every inbound fixture of every source posted to its route, then the campaign's
statistics, its rows, its CSV and the suppression list; the races of a reply that
comes before its message is registered or sent; the suppression list API.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import Daemon, eventually, webjs_ack
from tests.test_inbound_sources import CASES, inbound_bytes
from web import webhooks

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SOURCE_ROUTE = {"webjs": "webjs", "waha": "waha", "evolution": "evolution", "cloud": "cloud",
                "twilio": "twilio"}


def fresh(name: str, at: float) -> bytes:
    """The fixture with its reply time moved to `at` (the fixtures are from the past,
    and a reply is credited by time only to a message sent before it)."""
    raw = inbound_bytes(name)
    if name.endswith(".form"):
        return raw  # Twilio sends no time: the receive time is used
    doc = json.loads(raw)
    if name.startswith("webjs"):
        doc["data"]["message"]["timestamp"] = int(at)
    elif name.startswith("waha"):
        doc["payload"]["timestamp"] = int(at)
    elif name.startswith("evolution"):
        doc["data"]["messageTimestamp"] = int(at)
    else:
        for entry in doc["entry"]:
            for change in entry["changes"]:
                for item in change["value"].get("messages", []):
                    item["timestamp"] = str(int(at))
    return json.dumps(doc).encode()


async def post(daemon: Daemon, name: str, body: bytes) -> tuple[int, Any]:
    route = SOURCE_ROUTE[name.split("_", 1)[0]]
    headers = FORM if name.endswith(".form") else {"Content-Type": "application/json"}
    return await daemon.request("POST", f"/webhooks/{route}", data=body, headers=headers)


async def rows(daemon: Daemon, uuid: str, query: str = "") -> list[dict[str, Any]]:
    status, body = await daemon.request("GET", f"/api/campaigns/{uuid}/messages{query}")
    assert status == 200, body
    return body["messages"]


def spelled(number: str) -> str:
    """The number as a person might have typed it when registering."""
    return f"+{number[:2]} {number[2:5]}-{number[5:]}"


@pytest.mark.parametrize(("name", "inbound_id", "number", "quoted_id", "kind", "payload",
                          "title"), CASES, ids=[c[0] for c in CASES])
async def test_every_inbound_fixture_is_credited(daemon: Daemon, name: str, inbound_id: str,
                                                 number: str | None, quoted_id: str | None,
                                                 kind: int, payload: str | None,
                                                 title: str | None) -> None:
    campaign = await daemon.create_campaign(uuid="promo")
    target = quoted_id or "TARGET-1"
    recipient = spelled(number) if number else "6280000000000"
    # The message the fixture answers, and a decoy to the same number sent earlier.
    await daemon.register("promo", [{"recipient": recipient, "message_id": "DECOY-1"}])
    await daemon.register("promo", [{"recipient": recipient, "message_id": target}])
    status, body = await post(daemon, name, fresh(name, time.time() + 5))
    assert (status, body["events"]) == (200, 1), body

    async def engaged() -> Any:
        stats = await daemon.stats("promo")
        return stats if stats["total_replied_count"] + stats["total_opted_out_count"] else None

    stats = await eventually(engaged)
    [row] = [r for r in await rows(daemon, "promo") if r["message_id"] == target]
    if kind == 1:  # STOP
        assert stats["total_opted_out_count"] == 1 and stats["total_replied_count"] == 0
        assert row["opted_out_at"] and row["replied_at"] is None
        status, listed = await daemon.request(
            "GET", f"/api/workspaces/{campaign['workspace_id']}/suppressions")
        if number:
            assert [s["number"] for s in listed["suppressions"]] == [number]
            assert listed["suppressions"][0]["source"] == name.split("_", 1)[0]
    else:
        assert stats["total_replied_count"] == 1 and stats["total_opted_out_count"] == 0
        assert row["replied_at"] and row["reply_count"] == 1
        assert stats["reply_rate"] == 0.0  # nothing delivered yet: replied / delivered
    if payload or title:
        assert row["button"] == {"payload": payload, "title": title}
        assert stats["buttons"] == [{"payload": payload, "title": title, "count": 1}]
    assert row["reply_text"] is None  # engagement.keep_reply_text is off
    # the same webhook again (a provider's retry) changes nothing
    status, _ = await post(daemon, name, fresh(name, time.time() + 5))
    assert status == 200
    again = await daemon.stats("promo")
    assert (again["total_replied_count"], again["total_opted_out_count"]) == (
        stats["total_replied_count"], stats["total_opted_out_count"])


async def test_statuses_and_replies_in_one_cloud_post(daemon: Daemon) -> None:
    await daemon.create_campaign(uuid="promo")
    await daemon.register("promo", [{
        "recipient": "16315551181",
        "message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA"}])
    doc = json.loads(inbound_bytes("cloud_statuses_and_messages.json"))
    now = int(time.time())
    doc["entry"][0]["changes"][0]["value"]["statuses"][0]["timestamp"] = str(now + 1)
    doc["entry"][0]["changes"][1]["value"]["messages"][0]["timestamp"] = str(now + 3)
    status, body = await daemon.post_json("/webhooks/cloud", doc)
    assert (status, body["events"]) == (200, 2)

    async def both() -> Any:
        stats = await daemon.stats("promo")
        return stats if stats["total_read_count"] and stats["total_replied_count"] else None

    stats = await eventually(both)
    assert stats["reply_rate"] == 100.0  # replied / delivered (a read counts delivered)
    assert stats["time_to_reply"]["median"] is not None


async def test_keep_reply_text_shows_it_in_rows_and_csv(daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"engagement.keep_reply_text": True})
    await daemon.create_campaign(uuid="promo")
    await daemon.register("promo", [{"recipient": "+62 812-3456-7890",
                                     "message_id": "3EB0C767D8B4D5E3F0A1"}])
    status, _ = await post(daemon, "webjs_message_received.json",
                           fresh("webjs_message_received.json", time.time() + 2))
    assert status == 200

    async def replied() -> Any:
        found = await rows(daemon, "promo", "?status=replied")
        return found or None

    [row] = await eventually(replied)
    assert row["reply_text"] == "Boleh info harganya?"
    async with daemon.session.get(daemon.url("/api/campaigns/promo/export.csv")) as resp:
        text = await resp.text()
    [line] = list(csv.DictReader(io.StringIO(text)))
    assert line["reply_text"] == "Boleh info harganya?" and line["replied_at"]
    assert line["reply_count"] == "1"


async def test_csv_and_rows_show_replies_buttons_and_opt_outs(daemon: Daemon) -> None:
    await daemon.create_campaign(uuid="promo")
    await daemon.register("promo", [
        {"recipient": "16505551234",
         "message_id": "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="},
        {"recipient": "6281234567891", "message_id": "OTHER"},
        {"recipient": "6281299999999", "message_id": "SILENT"}])
    for name in ("cloud_message_button_quick_reply.json", "webjs_message_received_stop.json"):
        status, _ = await post(daemon, name, fresh(name, time.time() + 2))
        assert status == 200

    async def both() -> Any:
        stats = await daemon.stats("promo")
        return stats if stats["total_replied_count"] and stats["total_opted_out_count"] \
            else None

    await eventually(both)
    replied = await rows(daemon, "promo", "?status=replied")
    opted = await rows(daemon, "promo", "?status=opted_out")
    assert [r["recipient"] for r in replied] == ["16505551234"]
    assert [r["recipient"] for r in opted] == ["6281234567891"]
    async with daemon.session.get(daemon.url("/api/campaigns/promo/export.csv")) as resp:
        lines = {r["recipient"]: r for r in csv.DictReader(io.StringIO(await resp.text()))}
    assert lines["16505551234"]["button"] == "Yes, send me the offer"
    assert lines["16505551234"]["replied_at"] and not lines["16505551234"]["opted_out_at"]
    assert lines["6281234567891"]["opted_out_at"] and not lines["6281234567891"]["replied_at"]
    assert lines["6281299999999"]["reply_count"] == "0"
    status, body = await daemon.request("GET", "/api/campaigns/promo/messages?status=bogus")
    assert status == 400 and body["error"]["field"] == "status"


# --- the races -----------------------------------------------------------------------


@contextmanager
def received_at(at: float) -> Iterator[None]:
    """Webhooks posted inside are received (so dated no later than) `at`, by the daemon's
    receive clock (web/webhooks.py `clock`): a reply's own time then stays after a
    registration or send the daemon hears of later, however slow the machine is (a
    time after receipt is cut to the receipt)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(webhooks, "clock", lambda: at)
        yield


async def test_a_reply_before_its_message_is_registered_is_credited_when_it_is(
        daemon: Daemon) -> None:
    await daemon.create_campaign(uuid="promo")
    soon = time.time() + 30
    # a plain reply (window) and a quoted one (explicit), both before any registration
    with received_at(soon):
        for name in ("webjs_message_received.json", "webjs_message_received_quoted.json"):
            status, _ = await post(daemon, name, fresh(name, soon))
            assert status == 200
    await daemon.register("promo", [{"recipient": "6281234567890@c.us",
                                     "message_id": "true_6281234567890@c.us_3EB0C767D8B4D5E3F0A1"}])

    async def credited() -> Any:
        found = await rows(daemon, "promo", "?status=replied")
        return found if found and found[0]["reply_count"] == 2 else None

    [row] = await eventually(credited)
    assert row["message_id"] == "3EB0C767D8B4D5E3F0A1"
    assert (await daemon.stats("promo"))["total_replied_count"] == 1  # one message replied


async def test_a_reply_before_its_message_is_sent_is_credited_once_it_is(
        daemon_factory: Any) -> None:
    """A campaign campaignd sends: its rows are queued (not sent) when the reply comes."""
    daemon = await daemon_factory(**{"gateways.simulator.reject_ratio": 0.0,
                                     "gateways.simulator.sent_after": 3600})
    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "send", "uuid": "send", "message": "Promo!",
        "recipients": ["6281234567890", "6281234567891"]})
    assert status == 201, body
    later = time.time() + 60  # the reply's own time: after the send below
    with received_at(later):
        status, _ = await post(daemon, "webjs_message_received.json",
                               fresh("webjs_message_received.json", later))
    assert status == 200
    await daemon.stats("send")
    assert (await daemon.stats("send"))["total_replied_count"] == 0  # nothing sent yet
    status, _ = await daemon.post_json("/api/campaigns/send/start", {})
    assert status == 200

    async def replied() -> Any:
        return (await daemon.stats("send"))["total_replied_count"] == 1

    await eventually(replied, timeout=10)
    [row] = await rows(daemon, "send", "?status=replied")
    assert row["recipient"] == "6281234567890"


async def test_the_latest_message_to_the_number_wins_across_campaigns(daemon: Daemon) -> None:
    for uuid in ("first", "second"):
        await daemon.create_campaign(uuid=uuid)
        await daemon.register(uuid, [{"recipient": "6281234567890",
                                      "message_id": f"{uuid}-1"}])
    await daemon.create_campaign(workspace_id=2, uuid="elsewhere")
    await daemon.register("elsewhere", [{"recipient": "6281234567890", "message_id": "ws2"}])
    status, _ = await post(daemon, "webjs_message_received.json",  # workspace 1
                           fresh("webjs_message_received.json", time.time() + 5))
    assert status == 200

    async def second() -> Any:
        return (await daemon.stats("second"))["total_replied_count"] == 1

    await eventually(second)
    assert (await daemon.stats("first"))["total_replied_count"] == 0
    assert (await daemon.stats("elsewhere"))["total_replied_count"] == 0  # other workspace


async def test_a_reply_to_no_campaign_message_is_only_counted(daemon: Daemon) -> None:
    await daemon.create_campaign(uuid="promo")
    await daemon.register("promo", [{"recipient": "6289999999999", "message_id": "M1"}])
    status, _ = await post(daemon, "cloud_message_text.json",
                           fresh("cloud_message_text.json", time.time() + 1))
    assert status == 200

    async def counted() -> Any:
        status, text = await daemon.request("GET", "/metrics")
        return 'campaignd_inbound_total{outcome="unattributed",source="cloud"} 1.0' in text

    await eventually(counted)
    assert (await daemon.stats("promo"))["total_replied_count"] == 0


async def test_a_stop_from_a_failure_131050_suppresses_and_marks_the_message(
        daemon: Daemon) -> None:
    await daemon.create_campaign(uuid="promo")
    mid = "wamid.HBgNNjI4MzE4MDc4MzE3MBUCABEYEjQ4MDI0RjQ3QTdCRDVDMjFBRQA="
    await daemon.register("promo", [{"recipient": "6283180783170", "message_id": mid}])
    status, body = await post(daemon, "cloud_status_failed_131050.json",
                              inbound_bytes("cloud_status_failed_131050.json"))
    assert (status, body["events"]) == (200, 2)

    async def opted() -> Any:
        stats = await daemon.stats("promo")
        return stats if stats["total_opted_out_count"] else None

    stats = await eventually(opted)
    assert stats["total_failed_count"] == 1
    status, listed = await daemon.request("GET", "/api/workspaces/1/suppressions")
    [entry] = listed["suppressions"]
    assert entry["number"] == "6283180783170" and "131050" in entry["reason"]


async def test_user_preferences_stop_then_resume(daemon: Daemon) -> None:
    await daemon.create_campaign(uuid="promo")
    await daemon.register("promo", [{"recipient": "16505551234", "message_id": "M1"}])
    stop = json.loads(inbound_bytes("cloud_user_preferences_stop.json"))
    resume = json.loads(inbound_bytes("cloud_user_preferences_resume.json"))
    now = int(time.time())
    stop["entry"][0]["changes"][0]["value"]["user_preferences"][0]["timestamp"] = now + 1
    resume["entry"][0]["changes"][0]["value"]["user_preferences"][0]["timestamp"] = now + 2
    assert (await daemon.post_json("/webhooks/cloud", stop))[0] == 200

    async def listed(count: int) -> Any:
        status, body = await daemon.request("GET", "/api/workspaces/1/suppressions")
        return body if body["total"] == count else None

    await eventually(lambda: listed(1))
    assert daemon.runtime.suppressions.is_suppressed(1, "+1 650 555 1234")
    assert (await daemon.stats("promo"))["total_opted_out_count"] == 1
    assert (await daemon.post_json("/webhooks/cloud", resume))[0] == 200
    await eventually(lambda: listed(0))
    assert not daemon.runtime.suppressions.is_suppressed(1, "16505551234")
    # an old stop replayed (a provider's retry) does not bring it back: the latest wins
    assert (await daemon.post_json("/webhooks/cloud", stop))[0] == 200
    await daemon.stats("promo")
    assert (await listed(0)) is not None


# --- the suppression list API ---------------------------------------------------------


async def test_suppression_list_api_json_and_csv(daemon: Daemon) -> None:
    status, body = await daemon.post_json("/api/workspaces/1/suppressions", {
        "numbers": ["+62 812-3456-7890", "whatsapp:+6281234567891"], "reason": "complained"})
    assert (status, body["added"]) == (201, 2)
    status, body = await daemon.request(
        "POST", "/api/workspaces/1/suppressions",
        data="number,reason\n+6281200000001,asked by phone\n6281200000002,\n",
        headers={"Content-Type": "text/csv"})
    assert (status, body["added"]) == (201, 2)
    status, body = await daemon.request("GET", "/api/workspaces/1/suppressions?limit=3")
    assert status == 200 and body["total"] == 4
    assert [s["number"] for s in body["suppressions"]] == [
        "6281200000001", "6281200000002", "6281234567890"]
    assert body["suppressions"][0] == {**body["suppressions"][0], "reason": "asked by phone",
                                       "source": "import"}
    assert body["suppressions"][2]["reason"] == "complained"
    assert body["suppressions"][2]["source"] == "api"
    status, more = await daemon.request(
        "GET", f"/api/workspaces/1/suppressions?limit=3&cursor={body['next_cursor']}")
    assert [s["number"] for s in more["suppressions"]] == ["6281234567891"]
    async with daemon.session.get(
            daemon.url("/api/workspaces/1/suppressions?format=csv")) as resp:
        assert resp.headers["Content-Type"].startswith("text/csv")
        exported = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["number"] for r in exported] == ["6281200000001", "6281200000002",
                                               "6281234567890", "6281234567891"]
    assert exported[0]["suppressed_at"].endswith("Z")
    # another workspace's list is its own
    status, other = await daemon.request("GET", "/api/workspaces/2/suppressions")
    assert (status, other["total"]) == (200, 0)
    # lifted: by query, then by body
    status, body = await daemon.request(
        "DELETE", "/api/workspaces/1/suppressions?number=%2B6281234567890")
    assert (status, body["removed"]) == (200, 1)
    status, body = await daemon.request("DELETE", "/api/workspaces/1/suppressions",
                                        json={"numbers": ["6281200000001", "6289999"]})
    assert (status, body["removed"]) == (200, 1)
    status, body = await daemon.request("GET", "/api/workspaces/1/suppressions")
    assert [s["number"] for s in body["suppressions"]] == ["6281200000002", "6281234567891"]
    assert daemon.runtime.suppressions.is_suppressed(1, "+62 812 0000 0002")
    assert not daemon.runtime.suppressions.is_suppressed(1, "6281234567890")


async def test_suppression_list_refusals(daemon_factory: Any) -> None:
    tokens = [{"token": "workspace-one-token-x", "workspace": 1}]
    daemon = await daemon_factory(**{"api.tokens": tokens})
    one = {"Authorization": "Bearer workspace-one-token-x"}
    seq = daemon.runtime.journal.next_seq
    cases = [
        ("POST", "/api/workspaces/1/suppressions", {"json": {"numbers": ["62812", "x"]}},
         422, "numbers[0]"),
        ("POST", "/api/workspaces/1/suppressions", {"json": {"numbers": []}}, 422, "numbers"),
        ("POST", "/api/workspaces/1/suppressions", {"json": {}}, 422, "numbers"),
        ("POST", "/api/workspaces/1/suppressions",
         {"data": "6281234567890\nnot a number\n", "headers": {"Content-Type": "text/csv"}},
         422, "line 2"),
        ("POST", "/api/workspaces/2/suppressions", {"json": {"number": "6281234567890"}},
         404, None),
        ("GET", "/api/workspaces/2/suppressions", {}, 404, None),
        ("GET", "/api/workspaces/1/suppressions?limit=0", {}, 400, "limit"),
        ("GET", "/api/workspaces/1/suppressions?cursor=abc", {}, 400, "cursor"),
        ("DELETE", "/api/workspaces/1/suppressions?number=abc", {}, 422, "number"),
    ]
    for method, path, kw, code, field in cases:
        headers = {**one, **kw.pop("headers", {})}
        status, body = await daemon.request(method, path, headers=headers, **kw)
        assert status == code, (method, path, status, body)
        assert body["error"].get("field") == field, (path, body)
    status, _ = await daemon.request("GET", "/api/workspaces/1/suppressions")
    assert status == 401  # no token
    assert daemon.runtime.journal.next_seq == seq  # nothing refused was stored


async def test_a_manual_suppression_survives_a_restart(daemon_factory: Any) -> None:
    daemon = await daemon_factory()
    status, _ = await daemon.post_json("/api/workspaces/3/suppressions",
                                       {"number": "+6281234567890", "reason": "legal"})
    assert status == 201
    await daemon.server.close()
    again = await daemon_factory()
    status, body = await again.request("GET", "/api/workspaces/3/suppressions")
    assert [(s["number"], s["reason"]) for s in body["suppressions"]] == [
        ("6281234567890", "legal")]


async def test_delivery_counters_are_not_touched_by_replies(daemon: Daemon) -> None:
    """A reply does not change the delivery ladder (SPEC 6.2): replied is its own fact."""
    await daemon.create_campaign(uuid="promo")
    await daemon.register("promo", [{"recipient": "6281234567890",
                                     "message_id": "3EB0C767D8B4D5E3F0A1"}])
    status, _ = await daemon.post_json("/webhooks/webjs", webjs_ack("3EB0C767D8B4D5E3F0A1", 1))
    assert status == 200
    status, _ = await post(daemon, "webjs_message_received_quoted.json",
                           fresh("webjs_message_received_quoted.json", time.time() + 1))

    async def replied() -> Any:
        stats = await daemon.stats("promo")
        return stats if stats["total_replied_count"] else None

    stats = await eventually(replied)
    assert (stats["total_sent_count"], stats["total_delivered_count"],
            stats["total_read_count"]) == (1, 0, 0)


async def test_a_reply_is_credited_when_the_ingest_actor_cannot_read_the_store(
        daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ingest actor reads a reply's number on its own connection; when that read
    fails (a locked or failing file), the loop's lookup answers instead."""
    import sqlite3

    from store.engagement import NumberRowsReader

    refused: list[tuple[int, ...]] = []

    def failing(self: NumberRowsReader, keys: Any) -> Any:
        refused.append(tuple(keys))
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(NumberRowsReader, "__call__", failing)
    await daemon.create_campaign(uuid="promo")
    await daemon.register("promo", [{"recipient": "6281234567890", "message_id": "M1"}])
    status, _ = await post(daemon, "webjs_message_received.json",
                           fresh("webjs_message_received.json", time.time() + 5))
    assert status == 200

    async def replied() -> Any:
        return (await daemon.stats("promo"))["total_replied_count"] == 1

    await eventually(replied)
    assert refused, "the ingest actor's own read was not tried"
    [row] = await rows(daemon, "promo")
    assert row["replied_at"] and row["reply_count"] == 1, row



def cloud_text(message_id: str, sender: str, at: float) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "messages": [{
            "id": message_id, "from": sender, "timestamp": str(int(at)), "type": "text",
            "text": {"body": "Berapa harganya?"}}]}}]}]}


def cloud_sent(message_id: str, recipient: str, at: float) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "statuses": [{
            "id": message_id, "status": "sent", "timestamp": str(int(at)),
            "recipient_id": recipient}]}}]}]}


async def test_the_configured_reply_window_applies_from_the_start(daemon_factory: Any) -> None:
    """A fresh daemon (no live replies to restore) uses `engagement.reply_window`: with
    a one-hour window, a reply to a message sent two hours before is only counted, one
    to a message sent half an hour before is credited (the ingest actor once took its
    own 72-hour attributor whenever the runtime's had no live events to restore)."""
    daemon = await daemon_factory(**{"engagement.reply_window": 3600.0})
    await daemon.create_campaign(uuid="promo")
    await daemon.register("promo", [{"recipient": "6281234500001", "message_id": "W1"},
                                    {"recipient": "6281234500002", "message_id": "W2"}])
    now = time.time()
    for doc in (cloud_sent("W1", "6281234500001", now - 7200),
                cloud_sent("W2", "6281234500002", now - 1800),
                cloud_text("wamid.IN-1", "6281234500001", now),
                cloud_text("wamid.IN-2", "6281234500002", now)):
        status, body = await daemon.post_json("/webhooks/cloud", doc)
        assert status == 200, body

    async def decided() -> Any:
        _status, text = await daemon.request("GET", "/metrics")
        return ('campaignd_inbound_total{outcome="credited",source="cloud"} 1.0' in text
                and 'campaignd_inbound_total{outcome="unattributed",source="cloud"} 1.0'
                in text) or None

    await eventually(decided)
    [row] = await rows(daemon, "promo", "?status=replied")
    assert row["message_id"] == "W2"
