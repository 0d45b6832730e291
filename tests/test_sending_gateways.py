"""The WAHA and Cloud API gateway clients against a fake server that answers like them,
and their ACKs coming back through the webhooks to the rows the sender registered."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import eventually
from tests.fakes.gateways import FakeGateway


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway().start()
    yield gw
    await gw.close()


def waha_config(fake: FakeGateway, **extra: Any) -> dict[str, Any]:
    return {"gateways.waha.base_url": fake.url, "gateways.waha.api_key": "waha-key",
            "sender.backoff_base": 0.05, **extra}


def cloud_config(fake: FakeGateway, **extra: Any) -> dict[str, Any]:
    return {"gateways.cloud.base_url": fake.url, "gateways.cloud.phone_number_id": "1055",
            "gateways.cloud.access_token": "cloud-token", "sender.backoff_base": 0.05,
            "sender.backoff_max": 0.2, **extra}


async def send(d: Any, gateway: str, recipients: list[str], **extra: Any) -> str:
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Promo", "message": "Halo {{name}}",
        "recipients": recipients, "gateway": gateway, "rate": 50, "start": True, **extra})
    assert status == 201, body
    return body["campaign"]["uuid"]


async def wait_status(d: Any, uuid: str, status: str) -> dict[str, Any]:
    async def check() -> Any:
        _, body = await d.request("GET", f"/api/campaigns/{uuid}")
        return body["campaign"]["status"] == status and body["campaign"]
    return await eventually(check, timeout=15)


async def test_waha_sends_and_its_acks_find_the_rows(daemon_factory: Any,
                                                     fake: FakeGateway) -> None:
    d = await daemon_factory(**waha_config(fake))
    uuid = await send(d, "waha", [
        {"recipient": "+62 812 0000 0001", "variables": {"name": "Ani"}}, "6281200000002"])
    await wait_status(d, uuid, "completed")
    bodies = {r.recipient: r.body for r in fake.requests}
    assert bodies["6281200000001"] == {"session": "default", "chatId": "6281200000001@c.us",
                                       "text": "Halo Ani"}
    assert bodies["6281200000002"]["text"] == "Halo {{name}}"  # no variable: left as written
    _, rows = await d.request("GET", f"/api/campaigns/{uuid}/messages")
    serial = rows["messages"][0]["message_id"]
    ack = {"event": "message.ack", "session": "default", "payload": {
        "id": f"true_6281200000001@c.us_{serial}", "from": "6281200000001@c.us",
        "fromMe": True, "ack": 3, "ackName": "READ"}}
    status, _ = await d.post_json("/webhooks/waha", ack)
    assert status == 200

    async def read() -> Any:
        stats = await d.stats(uuid)
        return stats["total_read_count"] == 1 and stats
    stats = await eventually(read)
    assert stats["total_sent_count"] == 2 and stats["total_delivered_count"] == 1


async def test_waha_session_not_working_pauses_the_campaign(daemon_factory: Any,
                                                            fake: FakeGateway) -> None:
    d = await daemon_factory(**waha_config(fake, **{"gateways.waha.session": "sales"}))
    uuid = await send(d, "waha", ["6281200000001", "6281200000002", "6281200000003"])
    campaign = await wait_status(d, uuid, "paused")
    assert campaign["statistics"]["total_failed_count"] == 0  # nobody failed: nothing sent
    _, body = await d.request("GET", f"/api/campaigns/{uuid}/sending")
    assert "not WORKING" in body["sending"]["status_reason"]
    assert len(fake.requests) == 0  # WAHA refused before the script: nothing went out
    assert body["sending"]["send_states"] == {"queued": 3}


async def test_waha_wrong_api_key_pauses(daemon_factory: Any, fake: FakeGateway) -> None:
    d = await daemon_factory(**waha_config(fake, **{"gateways.waha.api_key": "wrong"}))
    uuid = await send(d, "waha", ["6281200000001"])
    await wait_status(d, uuid, "paused")
    _, body = await d.request("GET", f"/api/campaigns/{uuid}/sending")
    assert "HTTP 401" in body["sending"]["status_reason"]


async def test_cloud_text_errors_throttling_and_status_webhook(daemon_factory: Any,
                                                               fake: FakeGateway) -> None:
    d = await daemon_factory(**cloud_config(fake))
    ok, bad, throttled = "6281200000001", "6281200000002", "6281200000003"
    fake.script = {bad: [400], throttled: [("429", 0), 200]}
    uuid = await send(d, "cloud", [ok, bad, throttled])
    campaign = await wait_status(d, uuid, "completed")
    assert fake.per_recipient() == {ok: 1, bad: 1, throttled: 2}
    body = next(r.body for r in fake.requests if r.recipient == ok)
    assert body == {"messaging_product": "whatsapp", "recipient_type": "individual",
                    "to": ok, "type": "text",
                    "text": {"preview_url": False, "body": "Halo {{name}}"}}
    assert campaign["statistics"]["total_failed_count"] == 1
    _, rows = await d.request("GET", f"/api/campaigns/{uuid}/messages")
    by = {r["recipient"]: r for r in rows["messages"]}
    assert "Invalid WhatsApp recipient" in by[bad]["failure_reason"]
    wamid = by[ok]["message_id"]
    assert wamid.startswith("wamid.")
    status, _ = await d.post_json("/webhooks/cloud", {"object": "whatsapp_business_account",
                                                      "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "statuses": [{
            "id": wamid, "status": "delivered", "timestamp": str(int(time.time())),
            "recipient_id": ok}]}}]}]})
    assert status == 200

    async def delivered() -> Any:
        return (await d.stats(uuid))["total_delivered_count"] == 1
    await eventually(delivered)


async def test_cloud_template_and_bad_token(daemon_factory: Any, fake: FakeGateway) -> None:
    d = await daemon_factory(**cloud_config(fake))
    template = {"name": "promo_ramadan", "language": {"code": "id"}}
    uuid = await send(d, "cloud", ["6281200000001"], template=template)
    await wait_status(d, uuid, "completed")
    assert fake.requests[0].body["type"] == "template"
    assert fake.requests[0].body["template"] == template

    d2 = await daemon_factory(**cloud_config(fake, **{"gateways.cloud.access_token": "x"}))
    uuid = await send(d2, "cloud", ["6281200000001"])
    await wait_status(d2, uuid, "paused")
    _, body = await d2.request("GET", f"/api/campaigns/{uuid}/sending")
    assert "Invalid OAuth access token" in body["sending"]["status_reason"]


async def test_unconfigured_gateway_is_refused_at_creation(daemon: Any) -> None:
    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "x", "message": "m", "recipients": ["6281200000001"],
        "gateway": "waha"})
    assert status == 422
    assert "gateways.waha.base_url" in body["error"]["message"]
