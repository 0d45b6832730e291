"""A real nginx running deploy/nginx-campaignd.conf in front of a real daemon (issue 17).

nginx runs as a foreground process with its own prefix and a config made here: the
site file from deploy/ with its ports, upstream and certificate paths replaced (loopback
ports chosen at run time, a self-signed certificate made with openssl). Without
credentials every route and the WebSocket refuse what comes through nginx and nothing
changes; with them (the systemd unit's mode, server.require_auth) the page, the API,
webhooks and Laravel Echo all work through it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import fixture_bytes, webjs_ack
from tests.ports import free_port
from tests.proc import REPO, DaemonProcess, write_config
from tests.test_js_clients import JS_DIR, NODE, NodeClient, counters

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
OPENSSL = shutil.which("openssl")
SITE = REPO / "deploy" / "nginx-campaignd.conf"



@pytest.fixture(autouse=True)
def _nginx_is_installed() -> None:
    """The only proof that the shipped site works behind nginx: without nginx or openssl
    the tests fail (never skip); scripts/test-deps.sh installs both."""
    if NGINX is None or OPENSSL is None:
        pytest.fail("nginx and openssl are needed: run scripts/test-deps.sh (make test "
                    "does) as root to install Debian's nginx and openssl")

TOKEN = "nginx-admin-token-0123456789"
SECRETS = {
    "webhooks.webjs.secret": "nginx-webjs-secret",
    "webhooks.waha.hmac_key": "nginx-waha-key",
    "webhooks.evolution.apikey": "nginx-evolution-key",
    "webhooks.cloud.app_secret": "nginx-cloud-secret",
    "webhooks.twilio.auth_token": "nginx-twilio-token",
    "pusher.app_secret": "nginx-pusher-secret",
}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([OPENSSL or "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def site_for_test(upstream: int, https: int, http: int, cert: Path, key: Path) -> str:
    """deploy/nginx-campaignd.conf with this run's ports and certificate: every
    replacement must happen, so a changed site file breaks this test loudly."""
    text = SITE.read_text()
    replacements = {
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
        "listen 80;": f"listen 127.0.0.1:{http};",
        "listen [::]:443 ssl http2;": "",
        "listen [::]:80;": "",
        "/etc/letsencrypt/live/campaigns.example.org/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/campaigns.example.org/privkey.pem": str(key),
    }
    for old, new in replacements.items():
        assert old in text, f"{SITE} no longer has {old!r}"
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx in the foreground with its own prefix, config, logs and temp folders."""

    def __init__(self, folder: Path, upstream: int, cert: Path, key: Path,
                 site_text: Any = None) -> None:
        """`site_text(https_port, http_port)`: another site file (tests/test_cluster_nginx.py)."""
        folder.mkdir()
        self.folder = folder
        self.port = free_port()
        site = folder / "campaignd.conf"
        site.write_text(site_text(self.port, free_port()) if site_text is not None else
                        site_for_test(upstream, self.port, free_port(), cert, key))
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temp = "\n".join(f"    {name}_temp_path {folder}/{name};" for name in
                         ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (folder / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {folder}/nginx.pid;\n"
            f"error_log {folder}/error.log info;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n    access_log {folder}/access.log;\n{temp}\n"
            f"    include {site};\n}}\n")
        self.proc = subprocess.Popen(
            [NGINX or "nginx", "-p", str(folder), "-c", str(folder / "nginx.conf"),
             "-e", str(folder / "error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited: {self.proc.stderr.read().decode()}"
                                     if self.proc.stderr else "nginx exited")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("nginx did not listen") from None
                time.sleep(0.05)
        self.url = f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


@pytest.fixture
def front(tmp_path: Path, certificate: tuple[Path, Path]) -> Iterator[Any]:
    """front(settings) -> a daemon with these settings and nginx before it."""
    started: list[tuple[DaemonProcess, Nginx | None]] = []

    def start(settings: dict[str, Any]) -> tuple[DaemonProcess, Nginx]:
        daemon_dir = tmp_path / "daemon"
        daemon_dir.mkdir()
        daemon = DaemonProcess(write_config(daemon_dir, **settings))
        started.append((daemon, None))
        nginx = Nginx(tmp_path / "nginx", int(daemon.url.rsplit(":", 1)[1]), *certificate)
        started[-1] = (daemon, nginx)
        return daemon, nginx

    yield start
    for daemon, nginx in started:
        if nginx is not None:
            nginx.stop()
        if daemon.proc.poll() is None:
            assert daemon.terminate() == 0


def tls_context(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def call(session: aiohttp.ClientSession, method: str, url: str, **kw: Any
               ) -> tuple[int, Any]:
    async with session.request(method, url, **kw) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


async def ws_answer(session: aiohttp.ClientSession, url: str, channel: str,
                    auth: str | None = None) -> dict[str, Any]:
    async with session.ws_connect(url) as ws:
        hello = json.loads((await ws.receive(timeout=10)).data)
        assert hello["event"] == "pusher:connection_established"
        data: dict[str, Any] = {"channel": channel, **({"auth": auth} if auth else {})}
        await ws.send_str(json.dumps({"event": "pusher:subscribe", "data": data}))
        while True:
            frame = json.loads((await ws.receive(timeout=10)).data)
            if frame["event"] in ("pusher:error", "pusher_internal:subscription_succeeded"):
                if isinstance(frame.get("data"), str):
                    frame["data"] = json.loads(frame["data"])
                return frame


def state(daemon: DaemonProcess) -> tuple[Any, ...]:
    """The journal's rows and every campaign's counters, read beside the daemon."""
    import sqlite3

    conn = sqlite3.connect(f"file:{daemon.config.parent / 'campaignd.sqlite3'}?mode=ro",
                           uri=True)
    try:
        return (conn.execute("SELECT seq FROM journal ORDER BY seq").fetchall(),
                conn.execute("SELECT COUNT(*) FROM campaigns").fetchone(),
                conn.execute("SELECT uuid, status FROM campaigns ORDER BY no").fetchall())
    finally:
        conn.close()


async def test_without_credentials_nothing_passes_nginx_and_nothing_changes(
        front: Any, certificate: tuple[Path, Path]) -> None:
    daemon, nginx = front({})
    direct = daemon.url
    async with aiohttp.ClientSession() as local:
        # Straight from this machine it is as easy as ever (make run, demo, tests).
        status, _ = await call(local, "POST", f"{direct}/api/campaigns",
                               json={"workspace_id": 1, "name": "Local", "uuid": "local"})
        assert status == 201
        status, _ = await call(local, "POST", f"{direct}/api/campaigns/local/messages",
                               json={"messages": [{"recipient": "628", "message_id": "N-1"}]})
        assert status == 201
    before = state(daemon)
    sent = {"workspace_id": 1, "name": "Spam", "message": "hi", "recipients": ["628111"],
            "start": True}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=tls_context(certificate[0]))) as s:
        base = nginx.url
        for method, path, kw in [
                ("POST", "/api/campaigns", {"json": sent}),
                ("GET", "/api/campaigns", {}),
                ("GET", "/api/campaigns/local", {}),
                ("GET", "/api/campaigns/local/export.csv", {}),
                ("GET", "/page-config.json", {}),
                ("POST", "/broadcasting/auth",
                 {"json": {"socket_id": "1.2", "channel_name": "private-workspace.1"}}),
                ("POST", "/webhooks/webjs", {"json": webjs_ack("N-1", 3)}),
                ("POST", "/webhooks/cloud", {"data": fixture_bytes("cloud_status_failed.json"),
                                             "headers": {"Content-Type": "application/json"}}),
                ("POST", "/webhooks/waha", {"data": fixture_bytes("waha_message_ack.json"),
                                            "headers": {"Content-Type": "application/json"}}),
                ("POST", "/webhooks/evolution",
                 {"data": fixture_bytes("evolution_messages_update.json"),
                  "headers": {"Content-Type": "application/json"}}),
                ("POST", "/webhooks/twilio",
                 {"data": fixture_bytes("twilio_status_read.form"),
                  "headers": {"Content-Type": "application/x-www-form-urlencoded"}})]:
            status, body = await call(s, method, base + path, **kw)
            assert status == 401, (path, status, body)
            setting = body["error"]["message"].rsplit("set ", 1)[1]
            assert setting.startswith(("api.tokens", "webhooks.")), (path, body)
        status, _ = await call(s, "GET", base + "/metrics")
        assert status == 404  # stays on loopback
        status, page = await call(s, "GET", base + "/")
        assert status == 200 and "<html" in page.lower()  # static files only

        ws = base.replace("https", "wss") + "/app/campaignd-key?protocol=7"
        refused = await ws_answer(s, ws, "workspace.1")
        assert refused["data"]["code"] == 4009 and "api.tokens" in refused["data"]["message"]
        from daemon.config import load_config
        from web.pusher import sign
        forged = sign(load_config(None, environ={}), "1.1", "private-workspace.1")
        refused = await ws_answer(s, ws, "private-workspace.1", forged)
        assert refused["data"]["code"] == 4009
    assert state(daemon) == before
    log = (nginx.folder / "access.log").read_text()
    assert log.count(" 401 ") >= 11  # they really went through nginx


def sign_webjs(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRETS["webhooks.webjs.secret"].encode(), body, hashlib.sha256)
    return {"Content-Type": "application/json", "X-Signature": f"sha256={digest.hexdigest()}"}


def sign_cloud(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRETS["webhooks.cloud.app_secret"].encode(), body, hashlib.sha256)
    return {"Content-Type": "application/json",
            "X-Hub-Signature-256": f"sha256={digest.hexdigest()}"}


async def test_with_credentials_page_api_webhooks_and_echo_work_through_nginx(
        front: Any, certificate: tuple[Path, Path]) -> None:
    # The systemd unit's mode: every secret required at start.
    daemon, nginx = front({**SECRETS, "server.require_auth": True,
                           "api.tokens": [{"token": TOKEN, "workspace": "*"}],
                           "server.max_body_bytes": 40 * 1024 * 1024})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    base = nginx.url
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=tls_context(certificate[0]))) as s:
        status, page = await call(s, "GET", base + "/")
        assert status == 200 and "<html" in page.lower()
        status, config = await call(s, "GET", base + "/page-config.json")
        assert status == 200 and config["auth_required"] is True
        status, _ = await call(s, "GET", base + "/static/app.js")
        assert status == 200
        status, body = await call(s, "GET", base + "/api/campaigns")
        assert status == 401  # a token is needed, through nginx or not

        status, body = await call(s, "POST", base + "/api/campaigns", headers=auth, json={
            "workspace_id": 1, "name": "Through nginx", "uuid": "proxied"})
        assert status == 201, body
        ids = ["true_628111@c.us_3EB0AAAA",
               "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA"]
        status, body = await call(s, "POST", base + "/api/campaigns/proxied/messages",
                                  headers=auth, json={"messages": [
                                      {"recipient": "628111", "message_id": ids[0]},
                                      {"recipient": "16505551234", "message_id": ids[1]}]})
        assert status == 201, body

        echo = await start_echo(nginx, certificate[0], ["private-workspace.1"])
        try:
            await echo.subscribed("private-workspace.1")
            ack = json.dumps(webjs_ack(ids[0], 3)).encode()
            status, body = await call(s, "POST", base + "/webhooks/webjs", data=ack,
                                      headers=sign_webjs(ack))
            assert (status, body) == (200, {"ok": True, "events": 1})
            cloud = fixture_bytes("cloud_status_failed.json")
            status, body = await call(s, "POST", base + "/webhooks/cloud", data=cloud,
                                      headers=sign_cloud(cloud))
            assert (status, body) == (200, {"ok": True, "events": 1})
            status, body = await call(s, "POST", base + "/webhooks/webjs", data=ack,
                                      headers={"Content-Type": "application/json"})
            assert status == 401 and body["error"]["code"] == "bad_signature"
            # Echo, through wss:// and nginx, sees the counters move.
            await echo.reach(["private-workspace.1"], total_read_count=1,
                             total_failed_count=1)
        finally:
            await echo.stop()

        status, body = await call(s, "GET", base + "/api/campaigns/proxied", headers=auth)
        stats = body["campaign"]["statistics"]
        assert (stats["total_read_count"], stats["total_failed_count"]) == (1, 1)
        async with s.get(base + "/api/campaigns/proxied/export.csv", headers=auth) as resp:
            assert resp.status == 200 and (await resp.text()).count("\n") == 3
        # A large body (the seed's media webhooks) passes nginx's limit.
        big = json.dumps({**webjs_ack(ids[0], 3), "padding": "x" * (30 * 1024 * 1024)}
                         ).encode()
        status, body = await call(s, "POST", base + "/webhooks/webjs", data=big,
                                  headers=sign_webjs(big))
        assert status == 200, body


async def start_echo(nginx: Nginx, cert: Path, channels: list[str]) -> NodeClient:
    if NODE is None or not (JS_DIR / "node_modules" / "laravel-echo").exists():
        pytest.fail("node and tests/js/node_modules are needed for the Echo step: run "
                    "scripts/test-deps.sh (make test does) as root")
    opts = {"lib": "echo", "echo": "2", "broadcaster": "reverb", "tls": True,
            "host": "127.0.0.1", "port": nginx.port, "key": "campaignd-key",
            "event": "campaign.statistics.updated", "token": TOKEN, "channels": channels}
    proc = await asyncio.create_subprocess_exec(
        NODE, str(JS_DIR / "client.mjs"), json.dumps(opts), cwd=JS_DIR,
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(cert)},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    return NodeClient(proc)


__all__ = ["counters"]
