"""The seed's whatsapp-service, unchanged, in front of campaignd (issue 16 items 1 and 2).

Its webhooks are signed by a real node process that does what utils/webhookNotifier.js
does (tests/js/seed_notifier.mjs): X-Timestamp in unix seconds and a hex HMAC-SHA256 of
timestamp + JSON.stringify(payload), in X-HMAC-Signature (earlier versions: X-Signature).
Every event the service has is posted to the one URL; those that are not delivery
statuses are answered 2xx "ignored" and counted, and refusals stay refusals.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon, eventually, webjs_ack
from tests.fakes.seed import seed_headers

NODE = shutil.which("node")
JS = Path(__file__).resolve().parent / "js" / "seed_notifier.mjs"
SECRET = "seed-hmac-secret-0123456789"
SESSION = "webjs_1_1763079321_JSmiuJVF"


@pytest.fixture
def _node_installed() -> None:
    """The seed's own signing runs in node: without it these tests fail (never skip);
    scripts/test-deps.sh installs node."""
    if NODE is None:
        pytest.fail("node is not installed: the seed's signing is checked with node; run "
                    "scripts/test-deps.sh (make test does) as root to install it")


needs_node = pytest.mark.usefixtures("_node_installed")


async def node_notify(d: Daemon, event: str, data: dict[str, Any], secret: str = SECRET,
                      header: str = "X-HMAC-Signature", skew: int = 0) -> dict[str, Any]:
    """One webhook as the seed's service sends it, from a node process."""
    assert NODE is not None
    opts = {"url": d.url("/webhooks/webjs"), "secret": secret, "event": event, "data": data,
            "header": header, "skew": skew}
    proc = await asyncio.create_subprocess_exec(
        NODE, str(JS), json.dumps(opts), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


def ack_data(message_id: str, ack: int) -> dict[str, Any]:
    """message_status_updated's data as SessionManager builds it."""
    return {"workspace_id": 1, "session_id": SESSION, "message_id": message_id,
            "status": {1: "pending", 2: "sent", 3: "delivered"}.get(ack, "read"),
            "ack_level": ack, "timestamp": 1763092305}


# Every event of the seed's catalogue (reference/seed_repo.md 1.3) that is not a delivery
# status, with the data the service sends.
NOT_OURS: dict[str, dict[str, Any]] = {
    "qr_code_generated": {"workspace_id": 1, "session_id": SESSION,
                          "qr_code": "data:image/png;base64,iVBORw0KGgo=", "expires_in": 60,
                          "qr_count": 1, "is_regeneration": False},
    "session_authenticated": {"workspace_id": 1, "session_id": SESSION,
                              "status": "authenticated"},
    "session_ready": {"workspace_id": 1, "session_id": SESSION, "phone_number": "6281200000000",
                      "status": "connected", "platform": "android",
                      "extraction_method": "client.info"},
    "session_error": {"workspace_id": 1, "session_id": SESSION,
                      "error": "phone_extraction_failed", "message": "no phone number"},
    "session_disconnected": {"workspace_id": 1, "session_id": SESSION, "reason": "LOGOUT"},
    "message_sent": {"workspace_id": 1, "session_id": SESSION, "message": {
        "id": "true_6281200000000@c.us_3EB0C767D8B4D5E3F0A1", "from": "6281200000000@c.us",
        "to": "6281200000000@c.us", "body": "Halo, café ☕ 👋", "timestamp": 1763092305,
        "type": "chat", "has_media": False, "status": "pending", "from_me": True,
        "chat_type": "private"}, "source": "message_create_event"},
    "typing_indicator": {"workspace_id": 1, "session_id": SESSION,
                         "contact_id": "6281200000000@c.us", "contact_name": "Budi",
                         "is_typing": True, "chat_id": "6281200000000@c.us",
                         "timestamp": 1763092305123},
    "chat_state_updated": {"workspace_id": 1, "session_id": SESSION,
                           "chat_id": "6281200000000@c.us", "chat_state": "typing",
                           "last_seen": None, "timestamp": 1763092305123},
}


async def tracked(d: Daemon, ids: list[str]) -> str:
    campaign = await d.create_campaign(uuid="seed-promo")
    await d.register(campaign["uuid"], [
        {"recipient": f"62812000{i:05d}", "message_id": mid} for i, mid in enumerate(ids)])
    return campaign["uuid"]


async def metric(d: Daemon, line_start: str) -> float:
    status, text = await d.request("GET", "/metrics")
    assert status == 200
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@needs_node
async def test_the_seeds_own_signing_is_accepted_under_both_header_names(
        daemon_factory: Any) -> None:
    d = await daemon_factory(**{"webhooks.webjs.secret": SECRET})
    ids = ["true_6281200000000@c.us_3EB0AAAA000000000001",
           "true_6281200000001@c.us_3EB0AAAA000000000002"]
    uuid = await tracked(d, ids)
    first = await node_notify(d, "message_status_updated", ack_data(ids[0], 3))
    assert first["status"] == 200, first
    assert first["body"] == {"ok": True, "events": 1}
    second = await node_notify(d, "message_status_updated", ack_data(ids[1], 2),
                               header="X-Signature")
    assert second["status"] == 200, second

    async def counted() -> Any:
        stats = await d.stats(uuid)
        return (stats["total_read_count"], stats["total_delivered_count"]) == (1, 2) and stats

    await eventually(counted)
    # A body with non-ASCII text, encoded by node exactly as the service encodes it.
    sent = await node_notify(d, "message_sent", NOT_OURS["message_sent"])
    assert sent["status"] == 200, sent
    assert "☕" in sent["sent"]


@needs_node
async def test_a_wrong_stale_or_future_signature_is_refused_and_changes_nothing(
        daemon_factory: Any) -> None:
    d = await daemon_factory(**{"webhooks.webjs.secret": SECRET})
    mid = "true_6281200000000@c.us_3EB0BBBB000000000001"
    uuid = await tracked(d, [mid])
    before = await d.stats(uuid)
    wrong = await node_notify(d, "message_status_updated", ack_data(mid, 3), secret="guess")
    assert wrong["status"] == 401
    assert wrong["body"]["error"]["code"] == "bad_signature"
    stale = await node_notify(d, "message_status_updated", ack_data(mid, 3), skew=-301 - 60)
    assert stale["status"] == 401
    assert stale["body"]["error"]["code"] == "stale_timestamp"
    assert "old" in stale["body"]["error"]["message"]
    assert "webhooks.webjs.replay_window" in stale["body"]["error"]["message"]
    future = await node_notify(d, "message_status_updated", ack_data(mid, 3), skew=400,
                               header="X-Signature")
    assert future["status"] == 401
    assert "future" in future["body"]["error"]["message"]
    # Signed for one body, sent with another; a signature without its timestamp.
    body = json.dumps(webjs_ack(mid, 3)).encode()
    headers = seed_headers(SECRET, body)
    status, answer = await d.request("POST", "/webhooks/webjs", data=body.replace(b"3", b"4"),
                                     headers=headers)
    assert status == 401, answer
    del headers["X-Timestamp"]
    status, answer = await d.request("POST", "/webhooks/webjs", data=body, headers=headers)
    assert status == 401 and "X-Timestamp" in answer["error"]["message"]
    # The ignored events are refused just the same when unsigned.
    status, _ = await d.request("POST", "/webhooks/webjs", json={"event": "typing_indicator",
                                                                "data": {}})
    assert status == 401
    assert await d.stats(uuid) == before


@needs_node
async def test_the_replay_window_is_a_setting(daemon_factory: Any) -> None:
    d = await daemon_factory(**{"webhooks.webjs.secret": SECRET,
                                "webhooks.webjs.replay_window": 3600})
    mid = "true_6281200000000@c.us_3EB0CCCC000000000001"
    uuid = await tracked(d, [mid])
    late = await node_notify(d, "message_status_updated", ack_data(mid, 3), skew=-1800)
    assert late["status"] == 200, late
    await eventually(lambda: _read(d, uuid))


async def _read(d: Daemon, uuid: str) -> bool:
    return (await d.stats(uuid))["total_read_count"] == 1


async def test_x_api_key_is_an_alternative_credential(daemon_factory: Any) -> None:
    d = await daemon_factory(**{"webhooks.webjs.api_key": "the-seed-api-key"})
    mid = "true_6281200000000@c.us_3EB0DDDD000000000001"
    uuid = await tracked(d, [mid])
    doc = webjs_ack(mid, 3)
    status, _ = await d.post_json("/webhooks/webjs", doc, headers={"X-API-Key": "nope"})
    assert status == 401
    status, _ = await d.post_json("/webhooks/webjs", doc)
    assert status == 401  # a credential is configured: none given is refused
    status, body = await d.post_json("/webhooks/webjs", doc,
                                     headers={"X-API-Key": "the-seed-api-key"})
    assert status == 200, body
    await eventually(lambda: _read(d, uuid))
    # Through a proxy too: the key is a credential, loopback is not needed.
    status, body = await d.post_json("/webhooks/webjs", doc, headers={
        "X-API-Key": "the-seed-api-key", "X-Forwarded-For": "203.0.113.9"})
    assert status == 200, body


async def test_a_reload_replaces_the_secret_and_proxies_still_need_one(
        daemon_factory: Any) -> None:
    from web.keys import GUARD

    d = await daemon_factory()
    body = json.dumps({"event": "session_ready", "data": NOT_OURS["session_ready"]}).encode()
    status, answer = await d.request("POST", "/webhooks/webjs", data=body,
                                     headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 401 and answer["error"]["code"] == "secret_required"
    guard = d.server.app[GUARD]
    guard.reload(d.runtime.config.with_overrides(**{"webhooks.webjs.secret": "old-secret"}))
    headers = {**seed_headers("old-secret", body), "X-Forwarded-For": "203.0.113.9"}
    status, _ = await d.request("POST", "/webhooks/webjs", data=body, headers=headers)
    assert status == 200
    guard.reload(d.runtime.config.with_overrides(**{"webhooks.webjs.secret": "new-secret"}))
    status, _ = await d.request("POST", "/webhooks/webjs", data=body, headers=headers)
    assert status == 401
    status, _ = await d.request("POST", "/webhooks/webjs", data=body,
                                headers=seed_headers("new-secret", body))
    assert status == 200


async def test_every_event_that_is_not_ours_is_answered_2xx_and_ignored(
        daemon_factory: Any) -> None:
    d = await daemon_factory(**{"webhooks.webjs.secret": SECRET})
    mid = "true_6281200000000@c.us_3EB0EEEE000000000001"
    uuid = await tracked(d, [mid])
    before = await d.stats(uuid)
    for event, data in NOT_OURS.items():
        body = json.dumps({"event": event, "data": data}).encode()
        status, answer = await d.request("POST", "/webhooks/webjs", data=body,
                                         headers=seed_headers(SECRET, body))
        assert status == 200, (event, answer)
        assert answer == {"ok": True, "events": 0, "ignored": {event: 1}}
    # MobileActivityMonitor's envelope differs (no HMAC in the service; signed here).
    body = json.dumps({"event": "mobile_activity_detected", "session_id": SESSION,
                       "timestamp": "2025-11-29T10:00:00.000Z",
                       "data": {"device_type": "android", "message_id": mid,
                                "workspace_id": 1}}).encode()
    status, answer = await d.request("POST", "/webhooks/webjs", data=body,
                                     headers=seed_headers(SECRET, body))
    assert status == 200 and answer["ignored"] == {"mobile_activity_detected": 1}
    # An event name nobody knows yet is ignored too, counted as "other".
    body = json.dumps([{"event": "call_received", "data": {}},
                       {"event": "message_status_updated", "data": ack_data(mid, 2)},
                       {"event": "typing_indicator", "data": NOT_OURS["typing_indicator"]}]
                      ).encode()
    status, answer = await d.request("POST", "/webhooks/webjs", data=body,
                                     headers=seed_headers(SECRET, body))
    assert status == 200
    assert answer == {"ok": True, "events": 1,
                      "ignored": {"call_received": 1, "typing_indicator": 1}}

    async def delivered() -> bool:
        return (await d.stats(uuid))["total_delivered_count"] == 1

    await eventually(delivered)
    stats = await d.stats(uuid)
    assert {k: v for k, v in stats.items() if k.startswith("total_") and k not in
            ("total_delivered_count", "total_sent_count")} == {
        k: v for k, v in before.items() if k.startswith("total_") and k not in
        ("total_delivered_count", "total_sent_count")}
    name = 'campaignd_webhook_ignored_total{event="typing_indicator",source="webjs"}'
    assert await metric(d, name) == 2
    assert await metric(d, 'campaignd_webhook_ignored_total{event="other",source="webjs"}') == 1
    # Malformed bodies are still refused, naming the field.
    for bad, code, field in ((b"{not json", 400, None),
                             (b'{"data": {}}', 422, "event"),
                             (b'{"event": 7, "data": {}}', 422, "event"),
                             (b'[{"event": "typing_indicator"}, 5]', 422, "[1]")):
        status, answer = await d.request("POST", "/webhooks/webjs", data=bad,
                                         headers=seed_headers(SECRET, bad))
        assert status == code, (bad, answer)
        assert answer["error"].get("field") == field, answer
