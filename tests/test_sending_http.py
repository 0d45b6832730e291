"""Sending through the whatsapp-web.js HTTP gateway against a local fake service:
shared account rates, retries, permanent errors, 429, pause / resume / cancel,
retry-failed, auto-pause and the outbound webhook.

WHEN messages go out (rates, Retry-After, nothing while paused) is checked on a clock the
test holds, in tests/test_sending_clock.py; here the outcomes are checked, never time."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import eventually
from tests.fakes.gateways import FakeGateway


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway().start()
    yield gw
    await gw.close()


def numbers(n: int, base: int = 6281300000000) -> list[str]:
    return [str(base + i) for i in range(n)]


async def start_daemon(factory: Any, fake: FakeGateway, **overrides: Any) -> Any:
    config = {"gateways.http.url": fake.url + "/api/messages/send",
              "gateways.http.id_field": "message_id", "sender.backoff_base": 0.05,
              "sender.backoff_max": 0.2, "sender.request_timeout": 0.5, **overrides}
    return await factory(**config)


async def send(d: Any, recipients: list[str], rate: float = 100, start: bool = True) -> str:
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Promo", "message": "Hi", "recipients": recipients,
        "gateway": "http", "rate": rate, "start": start})
    assert status == 201, body
    return body["campaign"]["uuid"]


async def wait_status(d: Any, uuid: str, status: str, timeout: float = 20) -> dict[str, Any]:
    async def check() -> Any:
        _, body = await d.request("GET", f"/api/campaigns/{uuid}")
        return body["campaign"]["status"] == status and body["campaign"]
    return await eventually(check, timeout=timeout)


async def rows(d: Any, uuid: str) -> dict[str, dict[str, Any]]:
    _, body = await d.request("GET", f"/api/campaigns/{uuid}/messages?limit=1000")
    return {r["recipient"]: r for r in body["messages"]}


async def sending_state(d: Any, uuid: str) -> dict[str, Any]:
    _, body = await d.request("GET", f"/api/campaigns/{uuid}/sending")
    return body["sending"]


async def settled(d: Any, uuid: str) -> dict[str, Any]:
    """The send state once no gateway call of the campaign is under way any more."""
    async def check() -> Any:
        state = await sending_state(d, uuid)
        states = state["send_states"]
        return (not state["progress"]["in_flight_count"] and not states.get("attempting")
                and not states.get("retrying") and state)
    return await eventually(check)


async def test_campaigns_on_one_gateway_share_its_account_rate(daemon_factory: Any,
                                                               fake: FakeGateway) -> None:
    d = await start_daemon(daemon_factory, fake, **{"gateways.http.rate": 6})
    first = await send(d, numbers(8), rate=50)
    second = await send(d, numbers(8, base=6281400000000), rate=50)
    await wait_status(d, first, "completed")
    campaign = await wait_status(d, second, "completed")
    assert sorted(fake.per_recipient().values()) == [1] * 16
    for uuid in (first, second):
        account = (await sending_state(d, uuid))["account"]
        assert account["gateway"] == "http"
        assert account["configured_rate"] == account["effective_rate"] == 6.0
    assert campaign["statistics"]["account_rate"] == 6.0


async def test_transient_errors_are_retried_then_succeed(daemon_factory: Any,
                                                         fake: FakeGateway) -> None:
    d = await start_daemon(daemon_factory, fake)
    a, b, c = numbers(3)
    fake.script = {a: [500, 503, 200], b: ["hang", 200]}
    uuid = await send(d, [a, b, c])
    campaign = await wait_status(d, uuid, "completed")
    assert fake.per_recipient() == {a: 3, b: 2, c: 1}
    assert campaign["statistics"]["total_sent_count"] == 3
    assert campaign["statistics"]["total_failed_count"] == 0
    got = await rows(d, uuid)
    assert all(r["status"] == "pending" and r["message_id"] for r in got.values())


async def test_permanent_error_fails_the_message_with_the_gateways_reason(
        daemon_factory: Any, fake: FakeGateway) -> None:
    d = await start_daemon(daemon_factory, fake)
    a, b = numbers(2)
    fake.script = {a: [400]}
    uuid = await send(d, [a, b])
    campaign = await wait_status(d, uuid, "completed")
    assert fake.per_recipient()[a] == 1  # never retried
    assert campaign["statistics"]["total_failed_count"] == 1
    assert campaign["statistics"]["total_sent_count"] == 1
    got = await rows(d, uuid)
    assert got[a]["status"] == "failed"
    assert "not registered" in got[a]["failure_reason"]


async def test_transient_errors_give_up_after_max_attempts(daemon_factory: Any,
                                                           fake: FakeGateway) -> None:
    d = await start_daemon(daemon_factory, fake, **{"sender.max_attempts": 3})
    (a,) = numbers(1)
    fake.script = {a: [500, 500, 500, 200]}
    uuid = await send(d, [a])
    await wait_status(d, uuid, "failed")
    assert fake.per_recipient()[a] == 3
    got = await rows(d, uuid)
    assert "gave up after 3 attempts" in got[a]["failure_reason"]


async def test_429_is_retried_and_lowers_the_account_rate(daemon_factory: Any,
                                                        fake: FakeGateway) -> None:
    d = await start_daemon(daemon_factory, fake)  # http: no configured limit
    a, b = numbers(2)
    fake.script = {a: [("429", 1)]}
    uuid = await send(d, [a, b], rate=100)
    await wait_status(d, uuid, "completed")
    assert fake.per_recipient() == {a: 2, b: 1}
    assert [r.status for r in fake.requests if r.recipient == a] == [429, 200]
    account = (await sending_state(d, uuid))["account"]
    assert account["throttled_count"] == 1
    assert account["configured_rate"] is None
    assert account["effective_rate"] is not None  # unlimited until throttled: now paced
    assert account["last_throttled_at"] is not None
    got = await rows(d, uuid)
    assert got[a]["attempt"] == 2 and got[a]["previous_attempts"][0]["outcome"] == "not_sent"


async def test_pause_stops_sending_resume_continues(daemon_factory: Any, fake: FakeGateway
                                                    ) -> None:
    d = await start_daemon(daemon_factory, fake)
    recipients = numbers(24)
    uuid = await send(d, recipients, rate=10)
    await eventually(lambda: _at_least(fake, 4))
    status, body = await d.post_json(f"/api/campaigns/{uuid}/pause", {})
    assert status == 200 and body["campaign"]["status"] == "paused"
    state = await settled(d, uuid)
    # Every call made had its attempt recorded and its outcome stored; the rest waits.
    assert len(fake.requests) == state["send_states"]["accepted"] < 24
    assert state["send_states"]["queued"] == 24 - len(fake.requests)
    status, body = await d.post_json(f"/api/campaigns/{uuid}/pause", {})
    assert status == 409
    status, body = await d.post_json(f"/api/campaigns/{uuid}/resume", {})
    assert status == 200 and body["campaign"]["status"] == "processing"
    await wait_status(d, uuid, "completed")
    assert fake.per_recipient() == {r: 1 for r in recipients}


async def test_cancel_stops_for_good(daemon_factory: Any, fake: FakeGateway) -> None:
    d = await start_daemon(daemon_factory, fake)
    uuid = await send(d, numbers(40), rate=10)
    await eventually(lambda: _at_least(fake, 3))
    status, body = await d.post_json(f"/api/campaigns/{uuid}/cancel", {})
    assert status == 200 and body["campaign"]["status"] == "cancelled"
    assert body["campaign"]["id"] not in d.runtime.sending.runs  # no sender left to send
    state = await settled(d, uuid)
    assert len(fake.requests) == state["send_states"]["accepted"] < 40
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for action in ("resume", "start", "retry-failed", "schedule"):
        status, _ = await d.post_json(f"/api/campaigns/{uuid}/{action}",
                                      {"send_at": in_an_hour})
        assert status == 409
    stats = await d.stats(uuid)
    assert stats["total_queued_count"] == 40 - len(fake.requests)


async def test_retry_failed_resends_only_the_failed(daemon_factory: Any, fake: FakeGateway
                                                    ) -> None:
    d = await start_daemon(daemon_factory, fake)
    recipients = numbers(6)
    fake.script = {recipients[1]: [400, 200], recipients[4]: [400, 200]}
    uuid = await send(d, recipients)
    campaign = await wait_status(d, uuid, "completed")
    assert campaign["statistics"]["total_failed_count"] == 2
    status, body = await d.post_json(f"/api/campaigns/{uuid}/retry-failed", {})
    assert status == 200, body
    assert body["requeued"] == 2
    await wait_status(d, uuid, "completed")
    counts = fake.per_recipient()
    assert counts == {r: (2 if r in (recipients[1], recipients[4]) else 1) for r in recipients}
    status, body = await d.post_json(f"/api/campaigns/{uuid}/retry-failed", {})
    assert status == 409 and body["error"]["code"] == "nothing_to_retry"


async def test_failure_ratio_auto_pauses_and_webhook_is_signed(daemon_factory: Any,
                                                               fake: FakeGateway) -> None:
    d = await start_daemon(daemon_factory, fake, **{
        "sender.failure_threshold": 0.5, "sender.failure_min_sample": 4,
        "sender.webhook_url": fake.url + "/hooks/campaignd",
        "sender.webhook_secret": "hook-secret"})
    recipients = numbers(30)
    fake.script = {r: [400] for r in recipients}
    uuid = await send(d, recipients, rate=20)
    await wait_status(d, uuid, "paused")
    _, body = await d.request("GET", f"/api/campaigns/{uuid}/sending")
    assert "sends failed" in body["sending"]["status_reason"]
    assert len(fake.requests) < 30
    await eventually(lambda: _async(bool(fake.hooks)))
    headers, raw = fake.hooks[0]
    expected = hmac.new(b"hook-secret", raw, hashlib.sha256).hexdigest()
    assert headers["X-Campaignd-Signature"] == f"sha256={expected}"
    doc = json.loads(raw)
    assert doc["campaign"]["uuid"] == uuid and doc["campaign"]["status"] == "paused"
    # One name everywhere (WebSocket event, log); 0.1's name kept as an alias.
    assert doc["campaign"]["previous"] == doc["campaign"]["previous_status"] == "processing"
    assert doc["statistics"]["total_failed_count"] >= 4


async def _at_least(fake: FakeGateway, n: int) -> bool:
    return len(fake.requests) >= n


async def _async(value: Any) -> Any:
    return value
