"""SPEC 7.2: Meta's account and template webhooks on /webhooks/cloud are stored, shown as
the sending number's health, and a paused or disabled template pauses the campaigns that
send with it (and no other). Payloads as Meta's webhook references show them."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from actors.runtime import Runtime
from tests.conftest import Daemon, close_server, eventually, hold_recovery, make_config
from tests.fakes.gateways import FakeGateway
from web.app import make_app
from web.keys import RECOVERY

WABA = "102290129340398"


def change(field: str, value: dict[str, Any], time_: int = 1751247548) -> dict[str, Any]:
    return {"object": "whatsapp_business_account",
            "entry": [{"id": WABA, "time": time_, "changes": [{"value": value,
                                                                "field": field}]}]}


TEMPLATE_PAUSED = change("message_template_status_update", {
    "event": "PAUSED", "message_template_id": 1689556908129832,
    "message_template_name": "promo_ramadan", "message_template_language": "id",
    "reason": "NONE", "message_template_category": "MARKETING",
    "other_info": {"title": "FIRST_PAUSE",
                   "description": "Your WhatsApp message template has been paused."}})
# Meta's own example labels a quality update as a status update: the value decides.
TEMPLATE_QUALITY = change("message_template_status_update", {
    "previous_quality_score": "GREEN", "new_quality_score": "YELLOW",
    "message_template_id": 806312974732579, "message_template_name": "welcome_template",
    "message_template_language": "en-US"}, 1674864290)
PHONE_QUALITY = change("phone_number_quality_update", {
    "display_phone_number": "15550783881", "event": "THROUGHPUT_UPGRADE",
    "current_limit": "TIER_UNLIMITED"}, 1748454394)
ACCOUNT_VIOLATION = change("account_update", {
    "event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "ADULT"}}, 1743451903)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway(default_delay=0.05).start()
    yield gw
    await gw.close()


def cloud_config(fake: FakeGateway) -> dict[str, Any]:
    return {"gateways.cloud.base_url": fake.url, "gateways.cloud.phone_number_id": "1055",
            "gateways.cloud.access_token": "cloud-token"}


async def send_template(d: Daemon, uuid: str, name: str, language: str) -> None:
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": uuid, "uuid": uuid, "gateway": "cloud", "rate": 0.5,
        "template": {"name": name, "language": {"code": language}}, "start": True,
        "recipients": [f"62812000{i:05d}" for i in range(20)]})
    assert status == 201, body
    assert body["campaign"]["status"] == "processing"


async def campaign(d: Daemon, uuid: str) -> dict[str, Any]:
    status, body = await d.request("GET", f"/api/campaigns/{uuid}")
    assert status == 200
    return body["campaign"]


async def test_a_paused_template_pauses_the_campaigns_using_it_and_no_other(
        daemon_factory: Any, fake: FakeGateway) -> None:
    d = await daemon_factory(**cloud_config(fake))
    await send_template(d, "ramadan", "promo_ramadan", "id")
    await send_template(d, "ramadan-en", "promo_ramadan", "en_US")  # same name, other language
    await send_template(d, "welcome", "welcome_template", "en_US")
    status, body = await d.post_json("/webhooks/cloud", TEMPLATE_PAUSED)
    assert status == 200 and body == {"ok": True, "events": 1}

    async def paused() -> Any:
        c = await campaign(d, "ramadan")
        return c["status"] == "paused" and c
    await eventually(paused)
    _, sending = await d.request("GET", "/api/campaigns/ramadan/sending")
    reason = sending["sending"]["status_reason"]
    assert "promo_ramadan" in reason and "PAUSED" in reason and "FIRST_PAUSE" in reason
    for other in ("ramadan-en", "welcome"):
        assert (await campaign(d, other))["status"] == "processing", other
    # the rest of its recipients wait, unsent, until someone resumes it
    assert sending["sending"]["send_states"].get("queued", 0) > 0
    for uuid in ("ramadan-en", "welcome"):
        await d.post_json(f"/api/campaigns/{uuid}/cancel", {})
    status, body = await d.request("GET", "/api/account/health")
    template = next(t for t in body["health"]["templates"] if t["name"] == "promo_ramadan")
    assert template["status"] == "PAUSED" and template["warning"] is True


async def test_account_webhooks_are_stored_once_and_shown_as_health(daemon: Daemon) -> None:
    for doc in (PHONE_QUALITY, TEMPLATE_QUALITY, ACCOUNT_VIOLATION, PHONE_QUALITY):
        status, body = await daemon.post_json("/webhooks/cloud", doc)  # Meta retries too
        assert status == 200, body
    stored = await daemon.runtime.store.fetchall("SELECT field FROM account_events")
    assert sorted(r[0] for r in stored) == ["account_update", "message_template_quality_update",
                                           "phone_number_quality_update"]
    status, body = await daemon.request("GET", "/api/account/health")
    assert status == 200
    health = body["health"]
    assert health["numbers"] == [{
        "display_phone_number": "15550783881", "waba_id": WABA, "event": "THROUGHPUT_UPGRADE",
        "current_limit": "TIER_UNLIMITED", "old_limit": None,
        "max_daily_conversations_per_business": None, "at": "2025-05-28T17:46:34.000Z",
        "summary": "number 15550783881: THROUGHPUT_UPGRADE, messaging limit TIER_UNLIMITED"}]
    assert health["accounts"][0]["problems"] == {"violation": "ADULT"}
    template = health["templates"][0]
    assert (template["name"], template["quality"], template["previous_quality"],
            template["warning"]) == ("welcome_template", "YELLOW", "GREEN", True)
    # one request can carry statuses and account changes together
    both = copy.deepcopy(PHONE_QUALITY)
    both["entry"][0]["changes"].append({"field": "messages", "value": {
        "messaging_product": "whatsapp", "statuses": [{
            "id": "wamid.NOBODY", "status": "sent", "timestamp": "1751247548",
            "recipient_id": "6281234567890"}]}})
    both["entry"][0]["time"] = 1751247600
    status, body = await daemon.post_json("/webhooks/cloud", both)
    assert status == 200 and body["events"] == 2


async def test_a_malformed_account_change_is_refused_whole(daemon: Daemon) -> None:
    bad = copy.deepcopy(PHONE_QUALITY)
    bad["entry"][0]["time"] = "yesterday"
    status, body = await daemon.post_json("/webhooks/cloud", bad)
    assert status == 422 and body["error"]["field"] == "entry[0].time"
    assert await daemon.runtime.store.fetchall("SELECT * FROM account_events") == []


async def test_a_template_paused_while_campaignd_recovers_is_taken_and_pauses_after(
        daemon_factory: Any, fake: FakeGateway, tmp_path: Any) -> None:
    """A restart takes webhooks while it recovers the state (docs/reliability.md); Meta's
    template webhook too (it was answered 503 until the state was loaded, and Meta
    retries late): it is stored before its 2xx, and the campaign is paused once the
    sender runs."""
    first = await daemon_factory(**cloud_config(fake))
    await send_template(first, "ramadan", "promo_ramadan", "id")
    await close_server(first.server)
    await first.session.close()

    config = make_config(tmp_path, **cloud_config(fake))
    runtime = Runtime(config)
    release = hold_recovery(runtime)
    app = make_app(config, runtime, listen_early=True)
    server = TestServer(app, host="127.0.0.1", port=0, shutdown_timeout=3)
    await server.start_server()
    d = Daemon(server, ClientSession())
    try:
        status, body = await d.post_json("/webhooks/cloud", TEMPLATE_PAUSED)
        assert (status, body) == (200, {"ok": True, "events": 1})
        assert not runtime.ready
        assert await runtime.store.fetchall(
            "SELECT template_name FROM account_events") == [("promo_ramadan",)]
        release.set()
        await app[RECOVERY]

        async def paused() -> Any:
            c = await campaign(d, "ramadan")
            return c["status"] == "paused" and c
        await eventually(paused)
        _, sending = await d.request("GET", "/api/campaigns/ramadan/sending")
        assert "PAUSED" in sending["sending"]["status_reason"]
    finally:
        release.set()
        await d.session.close()
        await close_server(server)
