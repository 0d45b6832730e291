"""Loopback is not a credential (issue 17): a request that came through a reverse proxy,
or from a peer listed in server.trusted_proxies, is remote whatever its socket says.

These run a real daemon on loopback (IPv4 and IPv6) and send what nginx would forward.
The same with a real nginx in front: tests/test_nginx.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from tests.conftest import Daemon, close_server, eventually, make_config, webjs_ack
from web.app import make_app

# What a reverse proxy adds; any one of them makes a request remote.
PROXY_HEADERS = [
    {"X-Forwarded-For": "203.0.113.9"},
    {"X-Real-IP": "203.0.113.9"},
    {"Forwarded": "for=203.0.113.9;proto=https"},
    {"X-Forwarded-Proto": "https"},
    {"X-Forwarded-Host": "campaigns.example.org"},
    {"Via": "1.1 proxy"},
    {"x-forwarded-for": "127.0.0.1"},  # a proxy header naming loopback is still a proxy
]


async def seq_and_total(d: Daemon) -> tuple[int, int]:
    """The journal's next sequence number and the total messages of every campaign."""
    status, body = await d.request("GET", "/api/campaigns")
    assert status == 200, body
    total = sum(c["statistics"]["total_message_count"] for c in body["campaigns"])
    return d.runtime.journal.next_seq, total


async def tracked_campaign(d: Daemon) -> None:
    await d.create_campaign(uuid="guard-1")
    await d.register("guard-1", [{"recipient": "628111", "message_id": "GUARD-A"}])

    async def listed() -> bool:  # the list reads the campaigns' last published numbers
        return (await seq_and_total(d))[1] == 1

    await eventually(listed)


@pytest.mark.parametrize("headers", PROXY_HEADERS, ids=lambda h: next(iter(h)))
async def test_a_proxied_request_needs_credentials_and_changes_nothing(
        daemon: Daemon, headers: dict[str, str]) -> None:
    await tracked_campaign(daemon)
    before = await seq_and_total(daemon)

    status, body = await daemon.request("GET", "/api/campaigns", headers=headers)
    assert status == 401 and body["error"]["code"] == "token_required", body
    assert "api.tokens" in body["error"]["message"]
    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "X", "message": "hi", "recipients": ["6281"],
        "start": True}, headers=headers)
    assert status == 401, body
    status, body = await daemon.post_json("/webhooks/webjs", webjs_ack("GUARD-A", 3),
                                          headers=headers)
    assert status == 401 and body["error"]["code"] == "secret_required", body
    assert "webhooks.webjs.secret" in body["error"]["message"]
    cloud = {"object": "whatsapp_business_account", "entry": []}
    status, body = await daemon.post_json("/webhooks/cloud", cloud, headers=headers)
    assert status == 401 and "webhooks.cloud.app_secret" in body["error"]["message"]
    status, body = await daemon.request("GET", "/page-config.json", headers=headers)
    assert status == 401, body
    status, body = await daemon.post_json("/broadcasting/auth", {
        "socket_id": "1.2", "channel_name": "private-workspace.1"}, headers=headers)
    assert status == 401, body

    assert await seq_and_total(daemon) == before
    # The same requests straight from this machine work as before: loopback stays easy.
    status, body = await daemon.post_json("/webhooks/webjs", webjs_ack("GUARD-A", 3))
    assert status == 200 and body == {"ok": True, "events": 1}


async def test_a_trusted_proxy_peer_is_remote_even_without_headers(daemon_factory: Any) -> None:
    d = await daemon_factory(**{"server.trusted_proxies": ["127.0.0.0/8"]})
    status, body = await d.request("GET", "/api/campaigns")
    assert status == 401 and "api.tokens" in body["error"]["message"]
    status, body = await d.post_json("/webhooks/webjs", webjs_ack("X", 3))
    assert status == 401 and "webhooks.webjs.secret" in body["error"]["message"]
    # Another network listed as trusted does not make a loopback peer remote.
    other = await daemon_factory(**{"server.trusted_proxies": ["10.0.0.0/8"]})
    status, _ = await other.request("GET", "/api/campaigns")
    assert status == 200


async def test_with_credentials_a_proxied_request_works(daemon_factory: Any) -> None:
    token = "guard-admin-token-0123456789"
    d = await daemon_factory(**{"api.tokens": [{"token": token, "workspace": "*"}],
                                "webhooks.webjs.secret": "guard-webjs-secret"})
    headers = {"X-Forwarded-For": "203.0.113.9", "Authorization": f"Bearer {token}"}
    status, body = await d.post_json("/api/campaigns", {"workspace_id": 1, "name": "P",
                                                        "uuid": "guard-2"}, headers=headers)
    assert status == 201, body
    status, body = await d.post_json("/webhooks/webjs", webjs_ack("NOPE", 3),
                                     headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 401 and body["error"]["code"] == "bad_signature"  # a secret is set


async def test_the_refusal_is_logged_once_per_setting(daemon: Daemon) -> None:
    headers = {"X-Forwarded-For": "203.0.113.9"}
    with capture_logs() as logs:
        for _ in range(3):
            await daemon.request("GET", "/api/campaigns", headers=headers)
            await daemon.post_json("/webhooks/webjs", webjs_ack("X", 3), headers=headers)
    refused = [e for e in logs if e["event"] == "auth.remote_refused"]
    assert sorted(e["setting"] for e in refused) == ["api.tokens", "webhooks.webjs.secret"]
    assert all("set " + e["setting"] in e["advice"] for e in refused)


async def subscribe(url: str, channel: str, auth: str | None = None,
                    headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Connect, subscribe to one channel, return the answer to the subscription."""
    async with aiohttp.ClientSession() as session, session.ws_connect(
            url, headers=headers or {}) as ws:
        hello = json.loads((await ws.receive(timeout=10)).data)
        assert hello["event"] == "pusher:connection_established"
        data: dict[str, Any] = {"channel": channel}
        if auth is not None:
            data["auth"] = auth
        await ws.send_str(json.dumps({"event": "pusher:subscribe", "data": data}))
        while True:
            frame = json.loads((await ws.receive(timeout=10)).data)
            if frame["event"] in ("pusher:error", "pusher_internal:subscription_succeeded"):
                if isinstance(frame.get("data"), str):
                    frame["data"] = json.loads(frame["data"])
                return frame


async def test_websocket_public_and_default_secret_channels_refuse_proxied_clients(
        daemon: Daemon) -> None:
    from web.pusher import sign

    url = daemon.url("/app/campaignd-key?protocol=7").replace("http", "ws", 1)
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    ok = await subscribe(url, "workspace.1")
    assert ok["event"] == "pusher_internal:subscription_succeeded"
    refused = await subscribe(url, "workspace.1", headers=proxied)
    assert refused["event"] == "pusher:error" and refused["data"]["code"] == 4009
    assert "api.tokens" in refused["data"]["message"]
    # The built-in secret is public: a proxied client signing with it gets nothing either.
    config = daemon.runtime.config
    forged = sign(config, "1.1", "private-workspace.1")  # socket id does not matter here
    refused = await subscribe(url, "private-workspace.1", forged, headers=proxied)
    assert refused["data"]["code"] == 4009 and "pusher.app_secret" in refused["data"]["message"]


async def test_ipv6_loopback_is_local_and_proxied_ipv6_is_remote(tmp_path: Path) -> None:
    server = TestServer(make_app(make_config(tmp_path)), host="::1", port=0,
                        shutdown_timeout=3)
    try:
        await server.start_server()
    except OSError as exc:  # pragma: no cover - a machine without IPv6 loopback
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        async with ClientSession() as session:
            d = Daemon(server, session)
            assert d.url("/").startswith("http://[::1]:")
            status, _ = await d.request("GET", "/api/campaigns")
            assert status == 200
            status, body = await d.request("GET", "/api/campaigns",
                                           headers={"X-Forwarded-For": "2001:db8::9"})
            assert status == 401 and "api.tokens" in body["error"]["message"]
    finally:
        await close_server(server)
