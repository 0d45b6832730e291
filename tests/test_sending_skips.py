"""SPEC 9 skips, against a real daemon and a fake gateway that records every call: a
suppressed number (SPEC 6.4) and, with skip_unreachable, an unreachable one (SPEC 8) is
never handed to the gateway and ends as a `skipped` row with its reason, counted in
total_skipped_count; a stop that arrives mid-campaign is honoured; a send refused as
opted out (Twilio 21610) suppresses the number for the next campaign."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Daemon, eventually
from tests.fakes.gateways import FakeGateway
from tests.proc import DaemonProcess, write_config
from tests.test_inbound_sources import inbound_bytes

A, B, C = "6281300000001", "6281300000002", "6281300000003"


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway().start()
    yield gw
    await gw.close()


def http_config(fake: FakeGateway, **extra: Any) -> dict[str, Any]:
    return {"gateways.http.url": fake.url + "/api/messages/send", "sender.backoff_base": 0.02,
            "sender.backoff_max": 0.05, "sender.failure_min_sample": 1000, **extra}


async def send(d: Daemon, recipients: list[str], **extra: Any) -> str:
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Promo", "message": "Halo", "gateway": "http",
        "recipients": recipients, "rate": 100, "start": True, **extra})
    assert status == 201, body
    return body["campaign"]["uuid"]


async def finished(d: Daemon, uuid: str) -> dict[str, Any]:
    """Done sending: completed, or failed when every send was refused."""
    async def check() -> Any:
        _, body = await d.request("GET", f"/api/campaigns/{uuid}")
        return body["campaign"]["status"] in ("completed", "failed") and body["campaign"]
    return await eventually(check, timeout=15)


async def rows(d: Daemon, uuid: str, query: str = "") -> dict[str, dict[str, Any]]:
    status, body = await d.request("GET", f"/api/campaigns/{uuid}/messages?limit=100{query}")
    assert status == 200, body
    return {r["recipient"]: r for r in body["messages"]}


async def suppressed(d: Daemon, number: str) -> dict[str, Any] | None:
    _, body = await d.request("GET", "/api/workspaces/1/suppressions")
    return next((e for e in body["suppressions"] if e["number"] == number), None)


async def test_a_suppressed_number_is_never_sent_and_shows_as_skipped(
        daemon_factory: Any, fake: FakeGateway) -> None:
    d = await daemon_factory(**http_config(fake))
    status, _ = await d.post_json("/api/workspaces/1/suppressions", {
        "number": "+62 813-0000-0002", "reason": "asked by phone"})
    assert status == 201
    await eventually(lambda: suppressed(d, B))
    uuid = await send(d, [A, B, C])
    campaign = await finished(d, uuid)
    assert fake.per_recipient() == {A: 1, C: 1}  # B was never handed to the gateway
    stats = campaign["statistics"]
    assert stats["total_message_count"] == 3
    assert stats["total_skipped_count"] == 1
    assert stats["total_sent_count"] == 2
    assert stats["total_queued_count"] == 0 and stats["total_failed_count"] == 0
    assert stats["progress"] == 100.0 and stats["total_remaining_count"] == 0

    skipped = await rows(d, uuid, "&status=skipped")
    assert list(skipped) == [B]
    row = skipped[B]
    assert row["status"] == "skipped" and row["send_state"] == "skipped"
    assert row["attempt"] is None  # no attempt was made
    assert row["skip"]["reason"] == "suppressed"
    assert row["skip"]["detail"] == "asked by phone" and row["skip"]["source"] == "api"
    assert row["skip"]["at"]
    assert B not in await rows(d, uuid, "&status=queued")

    status, text = await d.request("GET", f"/api/campaigns/{uuid}/export.csv")
    assert status == 200
    by_number = {r["recipient"]: r for r in csv.DictReader(io.StringIO(text))}
    assert by_number[B]["status"] == "skipped"
    assert by_number[B]["skip_reason"] == "suppressed"
    assert by_number[B]["skip_detail"] == "asked by phone"
    assert by_number[B]["skipped_at"]
    assert by_number[A]["status"] != "skipped" and by_number[A]["skip_reason"] == ""

    # A skipped row is not failed and not unknown: retries never send it.
    for action in ("retry-failed", "retry-unknown"):
        status, body = await d.post_json(f"/api/campaigns/{uuid}/{action}", {})
        assert status == 409 and body["error"]["code"] == "nothing_to_retry"
    assert B not in fake.per_recipient()


def stop_from(number: str, at: float) -> bytes:
    """A whatsapp-web.js STOP reply from `number` at `at`."""
    doc = json.loads(inbound_bytes("webjs_message_received_stop.json"))
    message = doc["data"]["message"]
    message["id"] = f"false_{number}@c.us_3EB0STOP{int(at * 1000):X}"
    message["from"] = f"{number}@c.us"
    message["timestamp"] = int(at)
    return json.dumps(doc).encode()


async def test_a_stop_mid_campaign_is_never_messaged_again(
        daemon_factory: Any, fake: FakeGateway) -> None:
    """One call at a time; A's call is held at the gateway while B's STOP arrives, so B's
    turn comes after the stop, whatever the machine's speed."""
    d = await daemon_factory(**http_config(fake, **{"sender.max_in_flight": 1}))
    first = await send(d, [B])  # B was messaged before: its STOP is credited to that
    await finished(d, first)
    fake.held[A] = asyncio.Event()
    uuid = await send(d, [A, B])

    async def a_in_flight() -> bool:
        return A in fake.waiting
    await eventually(a_in_flight)
    status, _ = await d.request("POST", "/webhooks/webjs", data=stop_from(B, time.time() + 1),
                                headers={"Content-Type": "application/json"})
    assert status == 200
    entry = await eventually(lambda: suppressed(d, B))
    assert entry["source"] == "webjs"
    fake.held[A].set()
    campaign = await finished(d, uuid)
    assert fake.per_recipient() == {A: 1, B: 1}  # B only by the first campaign
    assert campaign["statistics"]["total_skipped_count"] == 1
    assert campaign["statistics"]["total_sent_count"] == 1
    row = (await rows(d, uuid))[B]
    assert row["status"] == "skipped"
    assert row["skip"]["reason"] == "suppressed" and row["skip"]["source"] == "webjs"
    assert "Stop" in row["skip"]["detail"]


async def contact_tier(d: Daemon, number: str) -> str | None:
    _, body = await d.request("GET", f"/api/workspaces/1/contacts?search={number}")
    found = [c for c in body["contacts"] if c["number"] == number]
    return found[0]["tier"] if found else None


async def test_skip_unreachable_on_and_off(daemon_factory: Any, fake: FakeGateway) -> None:
    """Unreachable (domain/tiers.py): the last 2 sends failed as Not on WhatsApp."""
    d = await daemon_factory(**http_config(fake))
    gone = ("coded", 400, 131026, "Message undeliverable")
    fake.script = {A: [gone, gone]}
    for _ in range(2):
        campaign = await finished(d, await send(d, [A]))
        assert campaign["statistics"]["failures"][0]["category"] == "not_on_whatsapp"

    async def unreachable() -> bool:
        return await contact_tier(d, A) == "unreachable"
    await eventually(unreachable, timeout=15)

    uuid = await send(d, [A, C], skip_unreachable=True)
    campaign = await finished(d, uuid)
    assert fake.per_recipient()[A] == 2  # not a third time
    assert campaign["statistics"]["total_skipped_count"] == 1
    row = (await rows(d, uuid))[A]
    assert row["status"] == "skipped" and row["skip"]["reason"] == "unreachable"
    _, body = await d.request("GET", f"/api/campaigns/{uuid}/sending")
    assert body["sending"]["skip_unreachable"] is True

    # Off (the default, sender.skip_unreachable = false): the recipient is tried.
    uuid = await send(d, [A])
    campaign = await finished(d, uuid)
    assert fake.per_recipient()[A] == 3
    assert campaign["statistics"]["total_skipped_count"] == 0
    assert (await rows(d, uuid))[A]["skip"] is None

    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Bad", "message": "Halo", "gateway": "http",
        "recipients": [A], "skip_unreachable": "yes"})
    assert status == 422 and body["error"]["field"] == "skip_unreachable"


async def test_an_opted_out_refusal_suppresses_the_number_for_the_next_campaign(
        daemon_factory: Any, fake: FakeGateway) -> None:
    """Twilio's 21610 relayed by an HTTP gateway at send time (no status webhook)."""
    d = await daemon_factory(**http_config(fake))
    fake.script = {B: [("coded", 400, 21610, "Attempt to send to unsubscribed recipient")]}
    campaign = await finished(d, await send(d, [A, B]))
    assert [f["category"] for f in campaign["statistics"]["failures"]] == ["opted_out"]
    entry = await eventually(lambda: suppressed(d, B))
    assert entry["source"] == "sender" and "21610" in entry["reason"]

    uuid = await send(d, [A, B])
    campaign = await finished(d, uuid)
    assert fake.per_recipient() == {A: 2, B: 1}
    assert campaign["statistics"]["total_skipped_count"] == 1
    row = (await rows(d, uuid))[B]
    assert row["skip"]["reason"] == "suppressed" and "21610" in row["skip"]["detail"]


async def test_a_skip_survives_kill_9_counted_once_never_sent(tmp_path: Path) -> None:
    """Killed while C's call hangs, after B was skipped: the restarted daemon counts B
    once, as skipped, and neither it nor the sender's retries ever send it."""
    fake = await FakeGateway().start()
    fake.held[C] = asyncio.Event()
    loop = asyncio.get_running_loop()
    config = write_config(tmp_path, **{"gateways.http.url": fake.url + "/api/messages/send",
                                       "store.checkpoint_interval": 0.2})
    first = await loop.run_in_executor(None, DaemonProcess, config)
    second = None
    try:
        async with aiohttp.ClientSession() as s:
            async def api(base: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
                async with s.request(method, base + path, **kw) as resp:
                    return resp.status, await resp.json()

            status, _ = await api(first.url, "POST", "/api/workspaces/1/suppressions",
                                  json={"number": B, "reason": "asked by phone"})
            assert status == 201
            status, body = await api(first.url, "POST", "/api/campaigns", json={
                "workspace_id": 1, "name": "Crash", "message": "Hi", "gateway": "http",
                "recipients": [A, B, C], "rate": 100, "start": True})
            assert status == 201, body
            path = f"/api/campaigns/{body['campaign']['uuid']}"

            async def skipped_and_in_flight() -> bool:
                _, got = await api(first.url, "GET", path + "/messages?status=skipped")
                return C in fake.waiting and [r["recipient"] for r in got["messages"]] == [B]
            await eventually(skipped_and_in_flight, timeout=20)
            await loop.run_in_executor(None, first.kill)
            fake.held[C].set()  # its answer goes to a dead daemon

            second = await loop.run_in_executor(None, DaemonProcess, config)

            async def completed() -> Any:
                _, got = await api(second.url, "GET", path)
                return got["campaign"]["status"] == "completed" and got["campaign"]
            campaign = await eventually(completed, timeout=30)
            stats = campaign["statistics"]
            assert stats["total_skipped_count"] == 1
            assert stats["total_sent_count"] == 1  # A; C's outcome is unknown
            assert stats["total_queued_count"] == 1
            _, got = await api(second.url, "GET", path + "/messages?status=skipped")
            assert [(r["recipient"], r["skip"]["reason"]) for r in got["messages"]] == [
                (B, "suppressed")]
            status, _ = await api(second.url, "POST", path + "/retry-unknown")
            assert status == 200

            async def resent() -> bool:
                return fake.per_recipient()[C] == 2
            await eventually(resent, timeout=20)
            await eventually(completed, timeout=20)
            assert B not in fake.per_recipient()
            assert (await eventually(completed))["statistics"]["total_skipped_count"] == 1
    finally:
        for proc in (first, second):
            if proc is not None and proc.proc.poll() is None:
                await loop.run_in_executor(None, proc.kill)
        await fake.close()


async def test_pusher_clients_see_the_skip(daemon_factory: Any, fake: FakeGateway) -> None:
    """The statistics and rows pushed on `campaign.{uuid}` carry the skip, as pusher-js
    clients (and the page) get them."""
    d = await daemon_factory(**http_config(fake))
    status, _ = await d.post_json("/api/workspaces/1/suppressions", {"number": B})
    assert status == 201
    await eventually(lambda: suppressed(d, B))
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Live", "message": "Hi", "gateway": "http",
        "recipients": [A, B], "rate": 100})
    assert status == 201, body
    uuid = body["campaign"]["uuid"]
    async with d.session.ws_connect(d.url("/app/campaignd-key?protocol=7&client=js")) as ws:
        assert (await ws.receive_json(timeout=5))["event"] == "pusher:connection_established"
        await ws.send_json({"event": "pusher:subscribe", "data": {"channel": f"campaign.{uuid}"}})
        while (await ws.receive_json(timeout=5))["event"] != \
                "pusher_internal:subscription_succeeded":
            pass
        status, _ = await d.post_json(f"/api/campaigns/{uuid}/start", {})
        assert status == 200
        pushed_row: dict[int, Any] = {}
        pushed_stats: dict[str, Any] = {}

        async def until_skipped() -> None:
            # until A is sent and B skipped: nothing left queued (a skip is done)
            # (B's row can be pushed queued first, with the start)
            while not (pushed_stats.get("total_skipped_count") == 1
                       and pushed_row.get(1, {}).get("status") == "skipped"
                       and pushed_stats.get("total_queued_count") == 0):
                frame = await ws.receive_json()
                data = json.loads(frame["data"]) if isinstance(frame.get("data"), str) else {}
                if frame["event"] == "campaign.messages.updated":
                    pushed_row.update({r["row"]: r for r in data["rows"]})
                if frame["event"] == "campaign.statistics.updated":
                    pushed_stats.update(data["statistics"])
        await asyncio.wait_for(until_skipped(), 20)
    assert pushed_stats["total_sent_count"] == 1 and pushed_stats["progress"] == 100.0
    assert pushed_row[1]["status"] == "skipped"
    assert pushed_row[1]["skip"]["reason"] == "suppressed"
    assert pushed_row[1]["skip"]["source"] == "api"
