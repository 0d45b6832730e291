"""Sending through the seed's whatsapp-service unchanged (issue 16 item 4).

`gateways.http.preset = "blazz"` speaks its send API exactly: POST /api/messages/send
with `{session_id, workspace_id, recipient_phone (digits, no +), message, type: "text",
api_key}`, the reply's message_id registered. A local fake of the service
(tests/fakes/seed.py) answers as it does, errors included.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Daemon, eventually
from tests.fakes.seed import FakeSeedService, seed_headers

SESSION = "webjs_1_1763079321_JSmiuJVF"


@pytest.fixture
async def service() -> AsyncIterator[FakeSeedService]:
    fake = await FakeSeedService(api_key="seed-api-key").start()
    yield fake
    await fake.close()


async def start(factory: Any, service: FakeSeedService, **more: Any) -> Daemon:
    return await factory(**{
        "gateways.http.url": service.send_url, "gateways.http.preset": "blazz",
        "gateways.http.token": "seed-api-key", "gateways.http.session_id": SESSION,
        "sender.backoff_base": 0.05, "sender.backoff_max": 0.2,
        "sender.request_timeout": 0.5, **more})


async def send(d: Daemon, recipients: list[str], workspace_id: int = 7) -> str:
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": workspace_id, "name": "Promo", "message": "Halo {{name}}!",
        "recipients": [{"recipient": r, "variables": {"name": f"N{i}"}}
                       for i, r in enumerate(recipients)],
        "gateway": "http", "rate": 100, "start": True})
    assert status == 201, body
    return body["campaign"]["uuid"]


async def wait_status(d: Daemon, uuid: str, status: str) -> dict[str, Any]:
    async def check() -> Any:
        _, body = await d.request("GET", f"/api/campaigns/{uuid}/sending")
        return body["sending"]["status"] == status and body["sending"]
    return await eventually(check, timeout=20)


async def rows(d: Daemon, uuid: str) -> dict[str, dict[str, Any]]:
    _, body = await d.request("GET", f"/api/campaigns/{uuid}/messages?limit=1000")
    return {r["recipient"]: r for r in body["messages"]}


async def test_a_campaign_goes_out_through_the_seeds_send_api(
        daemon_factory: Any, service: FakeSeedService) -> None:
    d = await start(daemon_factory, service, **{"webhooks.webjs.secret": "hmac"})
    recipients = ["+62 812-0000-0001", "6281200000002", "6281200000003"]
    uuid = await send(d, recipients)
    await wait_status(d, uuid, "completed")
    assert len(service.accepted()) == 3
    for sent in service.requests:
        body = sent.body
        assert set(body) == {"session_id", "workspace_id", "recipient_phone", "message", "type",
                             "api_key"}
        assert body["session_id"] == SESSION and body["workspace_id"] == 7
        assert body["type"] == "text" and body["api_key"] == "seed-api-key"
        assert body["recipient_phone"].isdigit()  # digits, no +: the service adds @c.us
        assert body["message"].startswith("Halo N")
    assert {s.body["recipient_phone"] for s in service.requests} == {
        "6281200000001", "6281200000002", "6281200000003"}
    got = await rows(d, uuid)
    ids = {s.body["recipient_phone"]: s for s in service.requests}
    assert all(got[r]["message_id"] for r in got)
    # The service's ACK for the id it returned is counted for this campaign.
    sent_ids = [r["message_id"] for r in got.values()]
    assert len(ids) == 3
    ack = json.dumps({"event": "message_status_updated", "data": {
        "workspace_id": 7, "session_id": SESSION, "message_id": sent_ids[0],
        "status": "delivered", "ack_level": 3, "timestamp": 1763092305}}).encode()
    status, _ = await d.request("POST", "/webhooks/webjs", data=ack,
                                headers=seed_headers("hmac", ack))
    assert status == 200

    async def read() -> bool:
        stats = (await d.request("GET", f"/api/campaigns/{uuid}"))[1]["campaign"]["statistics"]
        return stats["total_read_count"] == 1 and stats["total_sent_count"] == 3

    await eventually(read)


@pytest.mark.parametrize(("setup", "words"), [
    ({"gateways.http.token": "not-the-key"}, "API key"),
    ({"gateways.http.session_id": "webjs_9_gone"}, "no session"),
    ("not connected", "not connected"),
])
async def test_a_refusal_no_retry_fixes_pauses_the_campaign_with_the_reason(
        daemon_factory: Any, service: FakeSeedService, setup: Any, words: str) -> None:
    if setup == "not connected":
        service.sessions[SESSION] = "qr_scanning"
        setup = {}
    d = await start(daemon_factory, service, **setup)
    uuid = await send(d, ["6281200000001", "6281200000002", "6281200000003"])
    sending = await wait_status(d, uuid, "paused")
    assert words in sending["status_reason"], sending

    async def settled() -> Any:  # the calls still in flight at the pause come back too
        _, body = await d.request("GET", f"/api/campaigns/{uuid}/sending")
        return "attempting" not in body["sending"]["send_states"] and body["sending"]

    sending = await eventually(settled, timeout=20)
    assert sending["send_states"] == {"queued": 3}  # nothing failed, nothing lost
    assert service.accepted() == []
    if words == "not connected":  # the operator scans the QR code, then resumes
        service.sessions[SESSION] = "connected"
        status, body = await d.post_json(f"/api/campaigns/{uuid}/resume", {})
        assert status == 200, body
        await wait_status(d, uuid, "completed")
        assert len(service.accepted()) == 3


async def test_5xx_and_timeouts_are_retried_and_success_without_an_id_is_unknown(
        daemon_factory: Any, service: FakeSeedService) -> None:
    d = await start(daemon_factory, service)
    service.script = {"6281200000001": [500, 500], "6281200000002": ["hang"],
                      "6281200000003": ["no_id"]}
    uuid = await send(d, ["6281200000001", "6281200000002", "6281200000003",
                          "6281200000004"])
    sending = await wait_status(d, uuid, "completed")
    assert sending["send_states"] == {"accepted": 3, "unknown": 1}
    assert [u["recipient"] for u in sending["unknown"]] == ["6281200000003"]
    tries = {}
    for sent in service.requests:
        tries[sent.body["recipient_phone"]] = tries.get(sent.body["recipient_phone"], 0) + 1
    assert tries == {"6281200000001": 3, "6281200000002": 2, "6281200000003": 1,
                     "6281200000004": 1}
    got = await rows(d, uuid)
    assert got["6281200000003"]["message_id"] is None
    assert not got["6281200000003"]["failed"]
    _, body = await d.request("GET", f"/api/campaigns/{uuid}")
    assert body["campaign"]["statistics"]["total_unknown_count"] == 1
    # On request it is sent again, and this time the service gives an id.
    status, body = await d.post_json(f"/api/campaigns/{uuid}/retry-unknown", {})
    assert status == 200 and body["requeued"] == 1
    sending = await wait_status(d, uuid, "completed")
    assert sending["send_states"] == {"accepted": 4}
