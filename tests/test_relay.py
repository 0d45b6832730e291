"""The relay (issue 16 item 3): campaignd in front of the seed's Laravel app.

A fake of the Laravel app (tests/fakes/seed.py) checks each relayed request exactly as
its VerifyWhatsAppHmac middleware does (the seed's signature within 300 s) and records
what it accepted, in arrival order. Every request campaignd answered 2xx must arrive
whole (the same bytes) and in order, also after the app was down for a while and after
a kill -9 of the real daemon process; a full backlog is answered 503.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import reliability_helpers as rh
from tests.conftest import Daemon, eventually
from tests.fakes.seed import FakeLaravel, seed_headers
from tests.proc import write_config

SECRET = "seed-hmac-secret-0123456789"  # the service's HMAC_SECRET, as campaignd checks it
SESSION = "webjs_1_1763079321_JSmiuJVF"


@pytest.fixture
async def laravel() -> AsyncIterator[FakeLaravel]:
    app = await FakeLaravel(secret="laravel-side-secret").start()
    yield app
    await app.stop()


def relay_settings(app: FakeLaravel, **more: Any) -> dict[str, Any]:
    return {"webhooks.webjs.secret": SECRET, "webhooks.webjs.forward_to": app.webhook_url,
            "webhooks.webjs.forward_secret": app.secret, "webhooks.forward_retry_max": 0.2,
            **more}


def seed_bodies(n: int, tag: str = "r") -> list[bytes]:
    """What the seed's service posts over a while: ACKs of campaign messages, and events
    that are not ours (sessions, QR codes, typing, sent messages)."""
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            doc = {"event": "message_status_updated", "data": {
                "workspace_id": 1, "session_id": SESSION, "ack_level": 2, "status": "sent",
                "message_id": f"true_62812{i:08d}@c.us_3EB0{tag.upper()}{i:012d}"}}
        elif kind == 1:
            doc = {"event": "typing_indicator", "data": {
                "workspace_id": 1, "session_id": SESSION, "chat_id": "62812@c.us",
                "is_typing": True, "seq": f"{tag}{i}"}}
        elif kind == 2:
            doc = {"event": "qr_code_generated", "data": {
                "workspace_id": 1, "session_id": SESSION, "qr_code": f"data:image/png;base64,{i}",
                "expires_in": 60, "qr_count": i}}
        else:
            doc = {"event": "message_sent", "data": {"workspace_id": 1, "session_id": SESSION,
                                                     "message": {"id": f"{tag}-{i}",
                                                                 "body": "Halo ☕"}}}
        out.append(json.dumps(doc, ensure_ascii=False).encode())
    return out


async def post_all(session: aiohttp.ClientSession, url: str, bodies: list[bytes],
                   secret: str = SECRET) -> None:
    """One after the other, as the service does for one chat: each gets its 2xx first."""
    for body in bodies:
        async with session.post(url, data=body, headers=seed_headers(secret, body)) as resp:
            assert resp.status == 200, await resp.text()


async def relay_status(d: Daemon) -> dict[str, Any]:
    status, body = await d.request("GET", "/api/relay")
    assert status == 200, body
    return body["relay"]


def metric_value(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_every_accepted_request_reaches_the_app_whole_in_order_and_signed(
        daemon_factory: Any, laravel: FakeLaravel) -> None:
    d = await daemon_factory(**relay_settings(laravel))
    bodies = seed_bodies(24)
    await post_all(d.session, d.url("/webhooks/webjs"), bodies)
    # Refused requests are not relayed: a bad signature, a malformed ACK.
    status, _ = await d.request("POST", "/webhooks/webjs", data=bodies[0],
                                headers=seed_headers("wrong", bodies[0]))
    assert status == 401
    bad = b'{"event": "message_status_updated", "data": {"ack_level": 2}}'
    status, _ = await d.request("POST", "/webhooks/webjs", data=bad,
                                headers=seed_headers(SECRET, bad))
    assert status == 422

    async def arrived() -> bool:
        return len(laravel.received) >= len(bodies)

    await eventually(arrived, timeout=20)
    assert laravel.bodies() == bodies  # the same bytes, in the order they were answered
    assert laravel.refused == []
    first = laravel.received[0].headers
    assert first["Content-Type"] == "application/json"
    assert first["X-Instance-Url"] == "http://localhost:3001"  # Laravel stores it
    assert first["User-Agent"] == "WhatsApp-WebJS-Service/1.0"
    # Signed with the Laravel app's secret, not passed on with the service's signature.
    assert first["X-HMAC-Signature"] != seed_headers(SECRET, bodies[0])["X-HMAC-Signature"]
    status, text = await d.request("GET", "/metrics")
    assert metric_value(text, 'campaignd_relay_forwarded_total{source="webjs"}') == 24
    assert metric_value(text, 'campaignd_relay_backlog{source="webjs"}') == 0

    async def drained() -> Any:
        state = (await relay_status(d))["webjs"]
        return state["backlog"] == 0 and state["forwarded"] == 24 and state

    state = await eventually(drained)
    assert state["failures"] == 0 and state["forward_to"] == laravel.webhook_url


async def test_each_attempt_is_signed_with_a_fresh_timestamp(daemon_factory: Any,
                                                             laravel: FakeLaravel) -> None:
    """The service's timestamp is 200 s old when it arrives (allowed by campaignd's 300 s
    window); an app that allows only 100 s still accepts the relayed copy."""
    laravel.signature_ttl = 100
    d = await daemon_factory(**relay_settings(laravel))
    body = seed_bodies(1)[0]
    status, _ = await d.request("POST", "/webhooks/webjs", data=body,
                                headers=seed_headers(SECRET, body, int(time.time()) - 200))
    assert status == 200

    async def arrived() -> bool:
        return laravel.bodies() == [body]

    await eventually(arrived, timeout=20)
    assert laravel.refused == []  # the app's 100 s window took it: a fresh timestamp


async def test_the_app_down_for_a_while_then_back_gets_the_whole_backlog_in_order(
        daemon_factory: Any, laravel: FakeLaravel) -> None:
    d = await daemon_factory(**relay_settings(laravel))
    before = seed_bodies(4, "a")
    await post_all(d.session, d.url("/webhooks/webjs"), before)
    await eventually(lambda: _count(laravel, 4), timeout=20)
    await laravel.stop()  # connections refused from now on
    during = seed_bodies(30, "b")
    await post_all(d.session, d.url("/webhooks/webjs"), during)  # 2xx without the app

    async def failing() -> Any:
        state = (await relay_status(d)).get("webjs", {})
        return state.get("failing") and state["backlog"] == 30 and state

    state = await eventually(failing, timeout=20)
    assert state["last_error"] and state["oldest_age"] >= 0
    status, text = await d.request("GET", "/metrics")
    assert metric_value(text, 'campaignd_relay_backlog{source="webjs"}') == 30
    assert metric_value(text, 'campaignd_relay_failures_total{reason="connection",'
                              'source="webjs"}') >= 1
    # An app that answers 503 (maintenance mode) is retried just the same.
    laravel.answer_status = 503
    await laravel.start()
    await eventually(lambda: _refused(laravel), timeout=20)
    laravel.answer_status = 200
    await eventually(lambda: _count(laravel, 34), timeout=30)
    assert laravel.bodies() == before + during

    async def recovered() -> Any:
        state = (await relay_status(d))["webjs"]
        return not state["failing"] and state["backlog"] == 0 and state

    await eventually(recovered)


async def _count(app: FakeLaravel, n: int) -> bool:
    return len(app.received) >= n


async def _refused(app: FakeLaravel) -> bool:
    return any(status == 503 for status, _ in app.refused)


async def test_a_full_backlog_answers_503_and_stores_nothing(daemon_factory: Any,
                                                            laravel: FakeLaravel) -> None:
    await laravel.stop()
    d = await daemon_factory(**relay_settings(laravel, **{"webhooks.forward_max_backlog": 5}))
    campaign = await d.create_campaign(uuid="bound")
    mid = "true_6281200000000@c.us_3EB0FULL00000000001"
    await d.register("bound", [{"recipient": "6281200000000", "message_id": mid}])
    bodies = seed_bodies(5, "f")
    await post_all(d.session, d.url("/webhooks/webjs"), bodies)
    ack = json.dumps({"event": "message_status_updated", "data": {
        "message_id": mid, "ack_level": 3, "session_id": SESSION}}).encode()
    status, answer = await d.request("POST", "/webhooks/webjs", data=ack,
                                     headers=seed_headers(SECRET, ack))
    assert status == 503, answer
    assert answer["error"]["code"] == "relay_backlog_full"
    await eventually(lambda: _backlog_metric(d, 5))
    async with d.session.post(d.url("/webhooks/webjs"), data=ack,
                              headers=seed_headers(SECRET, ack)) as resp:
        assert resp.status == 503 and int(resp.headers["Retry-After"]) > 0
    assert (await d.stats(campaign["uuid"]))["total_read_count"] == 0  # nothing applied
    await laravel.start()
    await eventually(lambda: _count(laravel, 5), timeout=30)

    async def accepted_again() -> bool:  # the gateway retries; now there is room
        async with d.session.post(d.url("/webhooks/webjs"), data=ack,
                                  headers=seed_headers(SECRET, ack)) as resp:
            return resp.status == 200

    await eventually(accepted_again, timeout=20)
    await eventually(lambda: _count(laravel, 6), timeout=20)
    assert laravel.bodies() == [*bodies, ack]

    async def read() -> bool:
        return (await d.stats("bound"))["total_read_count"] == 1

    await eventually(read)


async def _backlog_metric(d: Daemon, n: int) -> bool:
    _, text = await d.request("GET", "/metrics")
    return metric_value(text, 'campaignd_relay_backlog_full_total{source="webjs"}') >= 1 and \
        metric_value(text, 'campaignd_relay_backlog{source="webjs"}') == n


async def test_cloud_api_callbacks_are_relayed_with_x_hub_signature_256(
        daemon_factory: Any, laravel: FakeLaravel) -> None:
    import hashlib
    import hmac

    d = await daemon_factory(**{"webhooks.cloud.app_secret": "meta-app-secret",
                                "webhooks.cloud.forward_to": laravel.url + "/cloud/webhook",
                                "webhooks.cloud.forward_secret": laravel.secret})
    bodies = []
    for i in range(3):
        body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1",
                           "changes": [{"field": "messages", "value": {
                               "messaging_product": "whatsapp", "statuses": [{
                                   "id": f"wamid.RELAY{i}", "status": "delivered",
                                   "timestamp": "1750000000",
                                   "recipient_id": "6281200000000"}]}}]}]}).encode()
        signature = "sha256=" + hmac.new(b"meta-app-secret", body, hashlib.sha256).hexdigest()
        status, _ = await d.request("POST", "/webhooks/cloud", data=body, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": signature})
        assert status == 200
        bodies.append(body)
    await eventually(lambda: _count(laravel, 3), timeout=20)
    assert laravel.bodies() == bodies and laravel.refused == []


# --- a real daemon process killed with SIGKILL ----------------------------------------


async def test_kill_9_with_a_backlog_loses_nothing(tmp_path: Path) -> None:
    """The app is down, the daemon answers 2xx to everything and is killed with SIGKILL;
    restarted with the app back, every answered request arrives, in order."""
    app = await FakeLaravel(secret="laravel-side-secret").start()
    port = app.port
    await app.stop()
    config = write_config(tmp_path, **relay_settings(app))
    proc = await rh.start(config)
    bodies = seed_bodies(60, "k")
    try:
        async with aiohttp.ClientSession() as session:
            await post_all(session, proc.url + "/webhooks/webjs", bodies)
        await rh.kill(proc)
        app = FakeLaravel(secret="laravel-side-secret", port=port)
        await app.start()
        proc = await rh.start(config)
        await eventually(lambda: _count(app, 60), timeout=60)
        assert app.bodies() == bodies
        assert app.refused == []
    finally:
        await rh.kill(proc)
        await app.stop()


async def test_kill_9_while_relaying_delivers_everything_at_least_once_in_order(
        tmp_path: Path) -> None:
    """The app is up and takes requests as they come; SIGKILL right after the last 2xx.
    After the restart every answered request has arrived; one delivered just before the
    kill may come again (at least once), never out of order."""
    app = await FakeLaravel(secret="laravel-side-secret").start()
    config = write_config(tmp_path, **relay_settings(app))
    proc = await rh.start(config)
    bodies = seed_bodies(80, "m")
    try:
        async with aiohttp.ClientSession() as session:
            await post_all(session, proc.url + "/webhooks/webjs", bodies)
        await rh.kill(proc)
        proc = await rh.start(config)

        async def complete() -> bool:
            return set(app.bodies()) >= set(bodies)

        await eventually(complete, timeout=60)
        await eventually(lambda: _idle(proc.url), timeout=30)
        received = app.bodies()
        assert list(dict.fromkeys(received)) == bodies  # first arrivals: in order
        # What came before the kill is a prefix; after the restart the relay resumes at a
        # request it may have delivered already and goes on in order to the end.
        cut = next((n for n, (a, b) in enumerate(zip(received, bodies, strict=False))
                    if a != b), len(bodies))
        if cut < len(received):
            resumed_at = bodies.index(received[cut])
            assert resumed_at <= cut and received[cut:] == bodies[resumed_at:]
        else:
            assert received == bodies
    finally:
        await rh.kill(proc)
        await app.stop()


async def _idle(base: str) -> bool:
    async with aiohttp.ClientSession() as session:
        status, body = await rh.call(session, "GET", base + "/api/relay")
        return status == 200 and body["relay"]["webjs"]["backlog"] == 0


async def test_laravel_url_pointed_at_campaignd_keeps_the_services_other_calls_working(
        daemon_factory: Any, laravel: FakeLaravel) -> None:
    """The service appends its paths to LARAVEL_URL; with LARAVEL_URL = campaignd/laravel
    its webhooks are ours (and relayed) and its other calls reach Laravel as before."""
    d = await daemon_factory(**relay_settings(laravel))
    body = seed_bodies(1)[0]
    status, answer = await d.request("POST", "/laravel/api/whatsapp/webhooks/webjs",
                                     data=body, headers=seed_headers(SECRET, body))
    assert status == 200 and answer == {"ok": True, "events": 1}
    await eventually(lambda: _count(laravel, 1), timeout=20)
    assert laravel.bodies() == [body]
    # AccountRestoration at the service's start: Laravel's answer, as it is.
    status, answer = await d.request("GET", "/laravel/api/whatsapp/accounts/active",
                                     headers={"X-API-Key": "laravel-api-token"})
    assert status == 200 and answer["data"][0]["session_id"] == SESSION
    status, answer = await d.request("GET", "/laravel/api/whatsapp/accounts/active",
                                     headers={"X-API-Key": "wrong"})
    assert status == 401 and answer == {"error": "Unauthorized"}
    sync = json.dumps({"whatsapp_account_id": 1, "workspace_id": 1, "chats": []}).encode()
    status, answer = await d.request("POST", "/laravel/api/whatsapp/chats/sync", data=sync,
                                     headers=seed_headers(SECRET, sync))
    assert status == 202 and answer == {"status": "queued"}
    assert laravel.received[-1].path == "/api/whatsapp/chats/sync"
    assert laravel.received[-1].body == sync
    # Nothing else of the app is reachable through campaignd.
    for path in ("/laravel/admin", "/laravel/api/whatsapp/%2e%2e/%2e%2e/admin"):
        status, answer = await d.request("GET", path)
        assert status == 404, (path, answer)
    await laravel.stop()
    status, answer = await d.request("GET", "/laravel/api/whatsapp/accounts/active",
                                     headers={"X-API-Key": "laravel-api-token"})
    assert status == 502 and answer["error"]["code"] == "app_unreachable"


async def test_without_a_laravel_relay_nothing_is_passed_through(daemon_factory: Any) -> None:
    d = await daemon_factory()
    status, answer = await d.request("GET", "/laravel/api/whatsapp/accounts/active")
    assert status == 404 and "webhooks.webjs.forward_to" in answer["error"]["message"]


async def test_a_request_the_app_refuses_as_malformed_is_set_aside_and_the_rest_go_on(
        daemon_factory: Any, laravel: FakeLaravel) -> None:
    """One request the app answers 422 (Laravel's validation) must not hold every later
    one forever: after webhooks.forward_set_aside_after attempts it is set aside, kept
    whole, counted, and sent again on the operator's requeue. A refusal that is the
    setting's to fix (401: wrong forward_secret) keeps the queue waiting, as before."""
    d = await daemon_factory(**relay_settings(laravel, **{
        "webhooks.forward_retry_max": 0.05, "webhooks.forward_set_aside_after": 3}))
    bodies = seed_bodies(5, tag="aside")
    bodies[1] = bodies[1].replace(b'"typing_indicator"', b'"typing_indicator", "x": "BAD"')
    laravel.refuse_containing = b'"BAD"'
    async with aiohttp.ClientSession() as session:
        await post_all(session, d.url("/webhooks/webjs"), bodies)

    async def passed_on() -> Any:
        state = (await relay_status(d))["webjs"]
        return state["backlog"] == 0 and state["set_aside"] == 1 and state
    state = await eventually(passed_on, timeout=15)
    assert laravel.bodies() == bodies[:1] + bodies[2:]  # in order, without the bad one
    assert state["last_set_aside"].startswith("HTTP 422")
    assert [s for s, _ in laravel.refused] == [422, 422, 422]
    [(body,)] = await d.runtime.store.fetchall("SELECT body FROM relay_set_aside")
    assert bytes(body) == bodies[1]
    _, text = await d.request("GET", "/metrics")
    assert metric_value(text, 'campaignd_relay_set_aside_total{source="webjs"}') == 1

    laravel.refuse_containing = None  # the app is fixed: send it again
    status, answer = await d.post_json("/api/relay/webjs/requeue", {})
    assert (status, answer) == (200, {"source": "webjs", "requeued": 1})
    await eventually(lambda: _got(laravel, 5), timeout=15)
    assert laravel.bodies()[-1] == bodies[1]
    assert (await relay_status(d))["webjs"]["set_aside"] == 0

    # a wrong forward_secret (401) is retried, never set aside: the queue waits for it
    right, laravel.secret = laravel.secret, "another-secret"
    more = seed_bodies(2, tag="wait")
    async with aiohttp.ClientSession() as session:
        await post_all(session, d.url("/webhooks/webjs"), more)
    await eventually(lambda: _refused_with(laravel, 401, 5), timeout=15)
    state = (await relay_status(d))["webjs"]
    assert (state["set_aside"], state["backlog"]) == (0, 2)
    laravel.secret = right
    await eventually(lambda: _got(laravel, 7), timeout=15)
    assert laravel.bodies()[-2:] == more


async def _got(app: FakeLaravel, n: int) -> bool:
    return len(app.received) >= n


async def _refused_with(app: FakeLaravel, status: int, n: int) -> bool:
    return sum(1 for s, _ in app.refused if s == status) >= n
