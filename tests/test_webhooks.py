"""Webhooks through a running daemon: what a user sees in GET /api/campaigns/{uuid}."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from tests.conftest import Daemon, fixture_bytes, fixture_json

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# (fixture, route, registered id (the other form of the id where there is one), expected)
# Two messages are registered with gateway ids (so both count as sent), one gets the ACK.
CASES = [
    ("webjs_message_status_updated.json", "webjs", "3EB0C767D8B4D5E3F0A1",
     {"total_sent_count": 2, "total_delivered_count": 1, "total_read_count": 0}),
    ("webjs_message_read.json", "webjs", "true_6281234567890@c.us_3EB0C767D8B4D5E3F0A1",
     {"total_delivered_count": 1, "total_read_count": 1}),
    ("waha_message_ack.json", "waha", "4CC5EDD64BC22EBA6D639F2AF571346C",
     {"total_delivered_count": 1, "total_read_count": 1}),
    ("evolution_messages_update.json", "evolution", "A5561E44C2A63682E4295B52F484C14E",
     {"total_delivered_count": 1, "total_read_count": 0}),
    ("cloud_status_sent.json", "cloud",
     "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
     {"total_sent_count": 2, "total_delivered_count": 0, "total_failed_count": 0}),
    ("cloud_status_failed.json", "cloud",
     "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA",
     {"total_sent_count": 1, "total_failed_count": 1, "progress": 100.0}),
    ("twilio_status_read.form", "twilio", "SMxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
     {"total_delivered_count": 1, "total_read_count": 1}),
]


async def post(daemon: Daemon, route: str, body: bytes, headers: dict[str, str] | None = None
               ) -> tuple[int, Any]:
    hdrs = FORM if route == "twilio" else JSON
    return await daemon.request("POST", f"/webhooks/{route}", data=body,
                                headers={**hdrs, **(headers or {})})


@pytest.mark.parametrize(("fixture", "route", "message_id", "expected"), CASES,
                         ids=[c[0] for c in CASES])
async def test_fixture_moves_the_counters(daemon: Daemon, fixture, route, message_id, expected):
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [
        {"recipient": "6281234567890", "message_id": message_id},
        {"recipient": "6281234567891", "message_id": "OTHER-MESSAGE"}])
    status, body = await post(daemon, route, fixture_bytes(fixture))
    assert status == 200, body
    stats = await daemon.stats(campaign["uuid"])
    assert stats["total_message_count"] == 2
    for key, value in expected.items():
        assert stats[key] == value, (key, stats)
    # a provider's retry of the same request changes nothing
    status, _ = await post(daemon, route, fixture_bytes(fixture))
    assert status == 200
    assert await daemon.stats(campaign["uuid"]) == stats


async def test_failed_row_shows_reason(daemon: Daemon):
    campaign = await daemon.create_campaign()
    mid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA"
    await daemon.register(campaign["uuid"], [{"recipient": "16505551234", "message_id": mid}])
    await post(daemon, "cloud", fixture_bytes("cloud_status_failed.json"))
    status, body = await daemon.request("GET", f"/api/campaigns/{campaign['uuid']}/messages"
                                        "?status=failed")
    assert status == 200
    [row] = body["messages"]
    assert row["status"] == "failed" and "131049" in row["failure_reason"]
    # The fixture's provider time (2025-06-28) is before the message was registered: it
    # counts as the registration time (docs/architecture.md, "Times").
    assert row["timestamps"]["failed"] == row["timestamps"]["queued"]


async def test_cloud_batch_of_1000_is_counted(daemon: Daemon):
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [
        {"recipient": f"62800{i:05d}", "message_id": f"wamid.{i}"} for i in range(1000)])
    statuses = [{"id": f"wamid.{i}", "status": ("read" if i % 4 == 0 else "delivered"),
                 "timestamp": "1750000000", "recipient_id": f"62800{i:05d}"}
                for i in range(1000)]
    doc = {"object": "whatsapp_business_account", "entry": [
        {"id": "1", "changes": [{"field": "messages", "value": {"statuses": statuses[i:i + 250]}}
                                for i in range(0, 1000, 250)]}]}
    status, body = await post(daemon, "cloud", json.dumps(doc).encode())
    assert (status, body["events"]) == (200, 1000)
    stats = await daemon.stats(campaign["uuid"])
    assert (stats["total_delivered_count"], stats["total_read_count"]) == (1000, 250)
    assert stats["delivery_rate"] == 100.0 and stats["read_rate"] == 25.0


async def test_cloud_batch_with_one_bad_status_applies_nothing(daemon: Daemon):
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [
        {"recipient": "1", "message_id": f"wamid.{i}"} for i in range(1000)])
    statuses = [{"id": f"wamid.{i}", "status": "delivered", "timestamp": "1750000000"}
                for i in range(1000)]
    statuses[500]["id"] = 42
    doc = {"entry": [{"changes": [{"value": {"statuses": statuses}}]}]}
    status, body = await post(daemon, "cloud", json.dumps(doc).encode())
    assert status == 422
    assert body["error"]["field"] == "entry[0].changes[0].value.statuses[500].id"
    assert (await daemon.stats(campaign["uuid"]))["total_delivered_count"] == 0


async def test_cloud_handshake(daemon_factory):
    daemon = await daemon_factory(**{"webhooks.cloud.verify_token": "let-me-in"})
    query = "hub.mode=subscribe&hub.verify_token=let-me-in&hub.challenge=1158201444"
    status, body = await daemon.request("GET", f"/webhooks/cloud?{query}")
    assert (status, body) == (200, 1158201444)
    status, body = await daemon.request(
        "GET", "/webhooks/cloud?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")
    assert status == 403 and body["error"]["code"] == "bad_verify_token"


# --- signatures ------------------------------------------------------------------------

SECRETS = {
    "webhooks.webjs.secret": "webjs-secret",
    "webhooks.waha.hmac_key": "waha-secret",
    "webhooks.evolution.apikey": "evo-secret",
    "webhooks.cloud.app_secret": "cloud-secret",
    "webhooks.twilio.auth_token": "twilio-secret",
    "webhooks.twilio.public_url": "https://campaignd.example/webhooks/twilio",
}


def signed_headers(route: str, body: bytes) -> dict[str, str]:
    if route == "webjs":
        return {"X-Signature": "sha256=" + hmac.new(b"webjs-secret", body, "sha256").hexdigest()}
    if route == "waha":
        return {"X-Webhook-Hmac": hmac.new(b"waha-secret", body, "sha512").hexdigest()}
    if route == "cloud":
        return {"X-Hub-Signature-256": "sha256=" + hmac.new(b"cloud-secret", body,
                                                             "sha256").hexdigest()}
    if route == "evolution":
        return {"apikey": "evo-secret"}
    from urllib.parse import parse_qsl

    params = dict(parse_qsl(body.decode()))
    payload = SECRETS["webhooks.twilio.public_url"] + "".join(
        f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(b"twilio-secret", payload.encode(), hashlib.sha1).digest()
    return {"X-Twilio-Signature": base64.b64encode(digest).decode()}


@pytest.mark.parametrize(("fixture", "route", "message_id", "expected"), CASES,
                         ids=[c[0] for c in CASES])
async def test_signatures(daemon_factory, fixture, route, message_id, expected):
    daemon = await daemon_factory(**SECRETS)
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [{"recipient": "1", "message_id": message_id}])
    body = fixture_bytes(fixture)
    if route == "evolution":  # the fixture carries its own apikey; take it out
        doc = json.loads(body)
        doc.pop("apikey")
        body = json.dumps(doc).encode()
    before = await daemon.stats(campaign["uuid"])
    # missing, then wrong signature: 401, nothing applied
    status, err = await post(daemon, route, body)
    assert status == 401 and err["error"]["code"] == "bad_signature"
    wrong = {k: v[:-4] + "beef" for k, v in signed_headers(route, body).items()}
    status, _ = await post(daemon, route, body, wrong)
    assert status == 401
    if route != "evolution":  # Evolution sends a token, not a signature over the body
        status, _ = await post(daemon, route, body + b" ", signed_headers(route, body))
        assert status == 401
    assert await daemon.stats(campaign["uuid"]) == before
    status, _ = await post(daemon, route, body, signed_headers(route, body))
    assert status == 200
    stats = await daemon.stats(campaign["uuid"])
    assert all(stats[k] == v for k, v in expected.items() if k != "total_sent_count"), stats


async def test_webjs_bearer_token(daemon_factory):
    daemon = await daemon_factory(**{"webhooks.webjs.secret": "webjs-secret"})
    body = fixture_bytes("webjs_message_status_updated.json")
    status, _ = await post(daemon, "webjs", body, {"Authorization": "Bearer webjs-secret"})
    assert status == 200
    status, _ = await post(daemon, "webjs", body, {"Authorization": "Bearer webjs-secreT"})
    assert status == 401


# --- bad input ---------------------------------------------------------------------------

BAD_BODIES = [
    (b"", 400), (b"{", 400), (b'{"event": "message_status_updated", "data": {"message_id', 400),
    (b"[]", 400), (b"null", 422), (b'"text"', 422), (b"\xff\xfe\x00garbage", 400),
    (b"[" * 100_000 + b"]" * 100_000, 400),
    (json.dumps({"event": "message_status_updated",
                 "data": {"message_id": "X", "ack_level": 10**40}}).encode(), 422),
]


# WAHA and Evolution accept another gateway's event and ignore it, so a webjs-shaped
# body is bad input only for the sources that must understand it.
BAD_CASES = [pytest.param(route, body, id=f"{route}-{i}")
             for route in ("webjs", "waha", "evolution", "cloud")
             for i, (body, _) in enumerate(BAD_BODIES)
             if not (route in ("waha", "evolution") and b"message_status_updated" in body)]


@pytest.mark.parametrize(("route", "body"), BAD_CASES)
async def test_bad_json_bodies_get_4xx_and_change_nothing(daemon: Daemon, route, body):
    code, err = await post(daemon, route, body)
    assert 400 <= code < 500, (code, err)
    assert set(err["error"]) >= {"code", "message"}
    rt = daemon.runtime
    assert rt.journal.next_seq == 1  # nothing journaled


async def test_wrong_content_type_and_oversized_body(daemon_factory):
    daemon = await daemon_factory(**{"server.max_body_bytes": 2048})
    body = fixture_bytes("webjs_message_status_updated.json")
    status, err = await daemon.request("POST", "/webhooks/webjs", data=body,
                                       headers={"Content-Type": "application/xml"})
    assert status == 415 and err["error"]["code"] == "unsupported_media_type"
    status, err = await daemon.request("POST", "/webhooks/twilio", data=body, headers=JSON)
    assert status == 415
    status, err = await post(daemon, "cloud", b'{"entry": [' + b" " * 4000 + b"]}")
    assert status == 413 and err["error"]["code"] == "body_too_large"
    assert daemon.runtime.journal.next_seq == 1


async def test_twilio_bad_form(daemon: Daemon):
    for body in (b"\xff\xfe", b"MessageStatus=sent", b"MessageSid=SM1"):
        status, err = await post(daemon, "twilio", body)
        assert 400 <= status < 500 and "error" in err


async def test_unknown_route_and_method_are_json(daemon: Daemon):
    status, err = await daemon.request("POST", "/webhooks/telegram", data=b"{}")
    assert status == 404 and err["error"]["code"] == "not_found"
    status, err = await daemon.request("DELETE", "/webhooks/webjs")
    assert status == 405 and err["error"]["code"] == "method_not_allowed"


async def test_disabled_source(daemon_factory):
    daemon = await daemon_factory(**{"webhooks.waha.enabled": False})
    status, err = await post(daemon, "waha", fixture_bytes("waha_message_ack.json"))
    assert status == 404 and err["error"]["code"] == "source_disabled"


def test_fixture_expectations_cover_every_fixture():
    from tests.conftest import FIXTURES

    names = {p.name for p in FIXTURES.iterdir() if p.suffix in (".json", ".form")}
    assert names == {c[0] for c in CASES}
    assert fixture_json("waha_message_ack.json")["payload"]["ack"] == 3


async def test_page_files_revalidate_and_missing_ones_are_json(daemon: Daemon):
    """No middleware or response hook runs for webhooks (web/app.py `guard_routes`): the
    page's files still say no-cache, refusals and unknown methods are still JSON."""
    async with daemon.session.get(daemon.url("/static/app.js")) as resp:
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-cache"
    status, _ = await daemon.request("GET", "/static/no-such-file.js")
    assert status == 404
    status, err = await daemon.request("GET", "/api/campaigns/no-such-campaign")
    assert status == 404 and "error" in err
    status, err = await daemon.request("POST", "/healthz")
    assert status == 405 and err["error"]["code"] == "method_not_allowed"
