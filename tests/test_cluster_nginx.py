"""A whole cluster on loopback (issue 14): a real Redis (Debian's redis-server), two
daemon processes configured from deploy/cluster/n1.toml and n2.toml, a real nginx
running deploy/cluster/nginx-cluster.conf with this run's ports, and Laravel Echo
(node, tests/js) connected to node n1.

Webhooks of both shards arrive through nginx by their node paths (as Meta's per-number
overrides send them), the API is routed by the uuid's prefix, Echo on n1 sees n2's
campaign live; n2 is killed with SIGKILL and started again, Redis is stopped and
started again; at the end Echo holds exactly the counters that were posted, and so do
the API and the list across nodes. No timing is asserted: every wait is for a state.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.cluster_helpers import RedisServer
from tests.conftest import webjs_ack
from tests.ports import free_port
from tests.proc import REPO, DaemonProcess
from tests.test_js_clients import JS_DIR, NODE, NodeClient
from tests.test_nginx import Nginx, call, certificate, tls_context

__all__ = ["certificate"]  # the module-scoped fixture, shared with tests/test_nginx.py

CLUSTER = REPO / "deploy" / "cluster"
TOKEN = "cluster-admin-token-0123456789"
SECRETS = {
    "webhooks.webjs.secret": "cluster-webjs-secret",
    "webhooks.waha.hmac_key": "cluster-waha-key",
    "webhooks.evolution.apikey": "cluster-evolution-key",
    "webhooks.cloud.app_secret": "cluster-cloud-secret",
    "webhooks.twilio.auth_token": "cluster-twilio-token",
    "pusher.app_secret": "cluster-pusher-secret",
}
COUNT = 30  # messages per campaign


def env_of(settings: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in settings.items():
        name = "CAMPAIGND_" + key.upper().replace(".", "__")
        if isinstance(value, (list, dict)):
            value = json.dumps(value) if isinstance(value, list) else "{" + ", ".join(
                f'{k} = "{v}"' for k, v in value.items()) + "}"
        out[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


class Node:
    """A daemon process from deploy/cluster/{name}.toml, adapted by environment only."""

    def __init__(self, folder: Path, name: str, ports: dict[str, int], redis: str) -> None:
        folder.mkdir(exist_ok=True)
        self.config = folder / "daemon.toml"
        shutil.copy(CLUSTER / f"{name}.toml", self.config)
        self.env = env_of({
            **SECRETS, "api.tokens": [{"token": TOKEN, "workspace": "*"}],
            "server.host": "127.0.0.1", "server.port": ports[name],
            "server.require_auth": True,  # as deploy/campaignd.service runs it
            "server.trusted_proxies": [],
            "store.path": str(folder / "campaignd.sqlite3"),
            "cluster.redis_url": redis, "cluster.reconnect_max": 0.5,
            "cluster.peers": {n: f"http://127.0.0.1:{p}" for n, p in ports.items()
                              if n != name},
            "log.format": "json"})
        self.env["CAMPAIGND_API__TOKENS"] = f'[{{ token = "{TOKEN}", workspace = "*" }}]'
        self.process: DaemonProcess | None = None
        self.start()

    def start(self) -> None:
        self.process = DaemonProcess(self.config, env=self.env)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None and self.process.proc.poll() is None:
            assert self.process.terminate() == 0


def cluster_site(ports: dict[str, int], cert: Path, key: Path) -> Any:
    """deploy/cluster/nginx-cluster.conf with this run's ports: every replacement must
    happen, so a changed file breaks this test loudly."""
    def site(https: int, http: int) -> str:
        text = (CLUSTER / "nginx-cluster.conf").read_text()
        replacements = {
            "10.0.0.1:8080": f"127.0.0.1:{ports['n1']}",
            "10.0.0.2:8080": f"127.0.0.1:{ports['n2']}",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
            "listen 80;": f"listen 127.0.0.1:{http};",
            "listen [::]:443 ssl http2;": "",
            "listen [::]:80;": "",
            "/etc/letsencrypt/live/campaigns.example.org/fullchain.pem": str(cert),
            "/etc/letsencrypt/live/campaigns.example.org/privkey.pem": str(key),
        }
        for old, new in replacements.items():
            assert old in text, f"nginx-cluster.conf no longer has {old!r}"
            text = text.replace(old, new)
        return text
    return site


@pytest.fixture
def cluster(tmp_path: Path, certificate: tuple[Path, Path]) -> Iterator[Any]:
    redis = RedisServer(tmp_path / "redis")
    ports = {"n1": free_port(), "n2": free_port()}
    nodes: dict[str, Node] = {}
    nginx = None
    try:
        for name in ports:
            nodes[name] = Node(tmp_path / name, name, ports, redis.url)
        nginx = Nginx(tmp_path / "nginx", 0, *certificate,
                      site_text=cluster_site(ports, *certificate))
        yield redis, nodes, nginx
    finally:
        if nginx is not None:
            nginx.stop()
        for node in nodes.values():
            node.stop()
        redis.stop()


def webjs_id(n: int) -> str:
    return f"true_6281100{n:05d}@c.us_3EB0A1{n:014X}"


def cloud_id(n: int) -> str:
    return f"wamid.HBgLNjI4MTIyMDAwMDAVAgARGBI{n:08X}"


def signed_webjs(n: int, level: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(webjs_ack(webjs_id(n), level)).encode()
    digest = hmac.new(SECRETS["webhooks.webjs.secret"].encode(), body, hashlib.sha256)
    return body, {"Content-Type": "application/json",
                  "X-Signature": f"sha256={digest.hexdigest()}"}


def signed_cloud(statuses: list[tuple[int, str]]) -> tuple[bytes, dict[str, str]]:
    """A Cloud API status webhook as Meta posts it to n2's override URL."""
    now = str(int(time.time()))
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881",
                         "phone_number_id": "106540352242922"},
            "statuses": [{"id": cloud_id(n), "status": status, "timestamp": now,
                          "recipient_id": f"6281220{n:05d}"} for n, status in statuses]}}]}]}
                      ).encode()
    digest = hmac.new(SECRETS["webhooks.cloud.app_secret"].encode(), body, hashlib.sha256)
    return body, {"Content-Type": "application/json",
                  "X-Hub-Signature-256": f"sha256={digest.hexdigest()}"}


async def echo_on(node_port: int, channels: list[str]) -> NodeClient:
    if NODE is None or not (JS_DIR / "node_modules" / "laravel-echo").exists():
        pytest.fail("node and tests/js/node_modules are needed (scripts/test-deps.sh)")
    opts = {"lib": "echo", "echo": "2", "broadcaster": "reverb", "host": "127.0.0.1",
            "port": node_port, "key": "campaignd-key", "token": TOKEN, "lifetime": 300,
            "event": "campaign.statistics.updated", "channels": channels}
    proc = await asyncio.create_subprocess_exec(
        NODE, str(JS_DIR / "client.mjs"), json.dumps(opts), cwd=JS_DIR, env=dict(os.environ),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    return NodeClient(proc)


@pytest.mark.timeout(240)
async def test_two_nodes_behind_nginx_with_redis_echo_sees_everything_exactly(
        cluster: Any, certificate: tuple[Path, Path]) -> None:
    redis, nodes, nginx = cluster
    auth = {"Authorization": f"Bearer {TOKEN}"}
    base = nginx.url
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=tls_context(certificate[0]))) as s:

        async def post(path: str, signed: tuple[bytes, dict[str, str]]) -> tuple[int, Any]:
            return await call(s, "POST", base + path, data=signed[0], headers=signed[1])

        # Campaigns are made on their node (node path), then reached by their uuid.
        uuids = {}
        for node, name, ids in (("n1", "a", webjs_id), ("n2", "b", cloud_id)):
            status, body = await call(s, "POST", f"{base}/n/{node}/api/campaigns",
                                      headers=auth, json={"workspace_id": 1, "name": name,
                                                          "uuid": name})
            assert status == 201, body
            uuids[node] = body["campaign"]["uuid"]
            assert uuids[node] == f"{node}-{name}"
            status, body = await call(s, "POST", f"{base}/api/campaigns/{uuids[node]}/messages",
                                      headers=auth, json={"messages": [
                                          {"recipient": f"62811{n:05d}", "message_id": ids(n)}
                                          for n in range(COUNT)]})
            assert (status, body["registered"]) == (201, COUNT), body
        theirs = f"private-campaign.{uuids['n2']}"

        # Echo on n1 watches n2's campaign and the workspace (private channels, token).
        n1_port = int(nodes["n1"].process.url.rsplit(":", 1)[1])
        echo = await echo_on(n1_port, [theirs, "private-workspace.1"])
        try:
            await echo.subscribed(theirs, "private-workspace.1")
            await echo.reach([theirs], total_message_count=COUNT)  # n2's state, at once

            # Both shards' webhooks through nginx: n1's webjs service, n2's Cloud API number.
            for n in range(10):
                status, body = await post("/n/n1/webhooks/webjs", signed_webjs(n, 3))
                assert status == 200, body
            status, body = await post("/n/n2/webhooks/cloud",
                                      signed_cloud([(n, "delivered") for n in range(10)]))
            assert (status, body) == (200, {"ok": True, "events": 10})
            await echo.reach([theirs], total_delivered_count=10, total_read_count=0)

            # kill -9 of n2 right after its 2xx: nothing it acknowledged is lost.
            for n in range(10, 20):
                status, body = await post("/n/n2/webhooks/cloud", signed_cloud([(n, "read")]))
                assert status == 200, body
            nodes["n2"].kill()
            status, _ = await post("/n/n2/webhooks/cloud", signed_cloud([(20, "read")]))
            assert status == 502  # refused while n2 is down: Meta retries it later
            nodes["n2"].start()
            await echo.reach([theirs], total_delivered_count=20, total_read_count=10)

            # Redis goes away: both nodes take every webhook, n1 keeps pushing its own.
            redis.stop()
            for n in range(20, COUNT):
                status, body = await post("/n/n2/webhooks/cloud", signed_cloud([(n, "read")]))
                assert status == 200, body
            for n in range(10, COUNT):
                status, body = await post("/n/n1/webhooks/webjs", signed_webjs(n, 3))
                assert status == 200, body
            await echo.until(lambda line: line["type"] == "event"
                             and line["channel"] == "private-workspace.1"
                             and line["data"]["campaign_uuid"] == uuids["n1"]
                             and line["data"]["statistics"]["total_read_count"] == COUNT)
            redis.start()
            # ...and once Redis is back, n2's numbers reach n1's client by themselves.
            final = {"total_message_count": COUNT, "total_delivered_count": COUNT,
                     "total_read_count": COUNT - 10, "total_failed_count": 0}
            await echo.reach([theirs], **final)
        finally:
            await echo.stop()

        # The API through nginx, routed by the uuid's prefix, says the same.
        for node, read in (("n1", COUNT), ("n2", COUNT - 10)):
            status, body = await call(s, "GET", f"{base}/api/campaigns/{uuids[node]}",
                                      headers=auth)
            assert status == 200, body
            stats = body["campaign"]["statistics"]
            assert (stats["total_delivered_count"], stats["total_read_count"]) == (COUNT, read)
        status, body = await call(s, "GET", f"{base}/api/cluster/campaigns", headers=auth)
        assert status == 200 and all(n["ok"] for n in body["nodes"]), body
        assert sorted((c["node"], c["uuid"]) for c in body["campaigns"]) == [
            ("n1", uuids["n1"]), ("n2", uuids["n2"])]
    log = (nginx.folder / "access.log").read_text()
    assert log.count("/n/n2/webhooks/cloud") >= 22 and log.count("/n/n1/webhooks/webjs") >= 30
