"""Two cluster nodes in one test process, a real Redis (Debian's redis-server), real
WebSocket clients (issue 14). The long form with separate processes, nginx, Laravel
Echo and kill -9 is tests/test_cluster_nginx.py.

What a user of a cluster checks: a client on one node sees another node's campaign at
once and live, to the exact numbers; nothing loops back; Redis going away leaves every
node serving its own clients and taking every webhook, and when Redis is back the
numbers catch up by themselves; requests that reach the wrong node are refused and
change nothing; the campaign list spans the nodes and says which one is missing.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from tests.cluster_helpers import RedisServer
from tests.conftest import Daemon, close_server, eventually, make_config, webjs_ack
from tests.ports import free_port
from tests.proc import REPO
from tests.test_pusher_protocol import Client, stats_frame
from web.app import make_app


def message_id(node: str, n: int) -> str:
    return f"true_6281{node[1:]:0>3}{n:05d}@c.us_3EB0{node.upper()}{n:012X}"


@pytest.fixture
def redis(tmp_path: Path) -> Any:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
async def nodes(tmp_path: Path, redis: RedisServer) -> AsyncIterator[Any]:
    """start(names) -> {name: Daemon}: nodes that know each other, on fixed free ports."""
    started: list[tuple[TestServer, ClientSession]] = []

    async def start(names: list[str], redis_url: str | None = None) -> dict[str, Daemon]:
        ports = {name: free_port() for name in names}
        out = {}
        for name in names:
            folder = tmp_path / name
            folder.mkdir()
            config = make_config(folder, **{
                "cluster.node": name, "cluster.redis_url": redis_url or redis.url,
                "cluster.reconnect_max": 0.3,
                "cluster.peers": {n: f"http://127.0.0.1:{p}" for n, p in ports.items()
                                  if n != name}})
            server = TestServer(make_app(config), host="127.0.0.1", port=ports[name],
                                shutdown_timeout=3)
            await server.start_server()
            session = ClientSession()
            started.append((server, session))
            out[name] = Daemon(server, session)
        return out

    yield start
    for server, session in reversed(started):
        await session.close()
        await close_server(server)


async def metrics(daemon: Daemon) -> str:
    status, text = await daemon.request("GET", "/metrics")
    assert status == 200
    return str(text)


async def linked(*daemons: Daemon, up: bool = True) -> None:
    want = "campaignd_cluster_redis_up 1.0" if up else "campaignd_cluster_redis_up 0.0"

    async def check() -> bool:
        return all([want in await metrics(d) for d in daemons])

    await eventually(check, timeout=15)


async def tracked_campaign(daemon: Daemon, node: str, name: str, count: int, base: int = 0
                           ) -> dict[str, Any]:
    status, body = await daemon.post_json(f"/n/{node}/api/campaigns", {
        "workspace_id": 1, "name": name, "uuid": name})
    assert status == 201, body
    campaign = body["campaign"]
    assert campaign["uuid"] == f"{node}-{name}"  # the node's name in front
    await daemon.register(campaign["uuid"], [
        {"recipient": f"6281{n:05d}", "message_id": message_id(node, n)}
        for n in range(base, base + count)])
    return campaign


async def ack(daemon: Daemon, node: str, n: int, level: int) -> None:
    status, body = await daemon.post_json(f"/n/{node}/webhooks/webjs",
                                          webjs_ack(message_id(node, n), level))
    assert (status, body) == (200, {"ok": True, "events": 1}), body


async def test_a_client_on_one_node_sees_another_nodes_campaign_at_once_and_exactly(
        nodes: Any) -> None:
    cluster = await nodes(["n1", "n2"])
    n1, n2 = cluster["n1"], cluster["n2"]
    await linked(n1, n2)
    campaign = await tracked_campaign(n2, "n2", "promo", 20)
    uuid = campaign["uuid"]
    await ack(n2, "n2", 0, 3)  # read, before anyone on n1 watches
    await eventually(lambda: _read_is(n2, uuid, 1))

    watcher = await Client.connect(n1)
    channel = f"campaign.{uuid}"
    assert (await watcher.subscribe(channel))["event"] == \
        "pusher_internal:subscription_succeeded"
    # The state on subscribe comes from n2, through Redis, at once.
    await watcher.until(stats_frame(channel, total_message_count=20, total_read_count=1))
    workspace = await Client.connect(n1)
    await workspace.subscribe("workspace.1")
    await workspace.until(stats_frame("workspace.1", total_read_count=1))

    for n in range(1, 20):  # live: webhooks on n2, its node path
        await ack(n2, "n2", n, 3 if n % 2 else 2)
    final = {"total_delivered_count": 20, "total_read_count": 11, "total_sent_count": 20}
    frame = await watcher.until(stats_frame(channel, **final), timeout=10)
    assert frame["data"]["campaign_uuid"] == uuid
    await workspace.until(stats_frame("workspace.1", **final), timeout=10)
    rows = await watcher.until(lambda f: f["event"] == "campaign.messages.updated")
    assert rows["data"]["campaign_uuid"] == uuid and rows["channel"] == channel

    # No echo: n1 delivered what n2 published and published nothing itself; n2 received
    # no push (its own come back from Redis and are dropped by their instance id).
    m1, m2 = await metrics(n1), await metrics(n2)
    assert re.search(r'campaignd_cluster_messages_total\{direction="received",type="push"\} '
                     r'[1-9]', m1), m1
    assert 'direction="published",type="push"' not in m1
    assert re.search(r'campaignd_cluster_messages_total\{direction="published",type="push"\} '
                     r'[1-9]', m2)
    assert 'direction="received",type="push"' not in m2
    # n2's own subscribers are served by n2 as before.
    local = await Client.connect(n2)
    await local.subscribe(channel)
    await local.until(stats_frame(channel, **final))
    for client in (watcher, workspace, local):
        await client.ws.close()


async def _read_is(daemon: Daemon, uuid: str, count: int) -> bool:
    return (await daemon.stats(uuid))["total_read_count"] == count


async def test_redis_down_keeps_local_push_and_ingest_and_cross_node_push_comes_back(
        nodes: Any, redis: RedisServer) -> None:
    cluster = await nodes(["n1", "n2"])
    n1, n2 = cluster["n1"], cluster["n2"]
    await linked(n1, n2)
    mine = await tracked_campaign(n1, "n1", "mine", 10)
    theirs = await tracked_campaign(n2, "n2", "theirs", 10)
    watcher = await Client.connect(n1)
    for uuid in (mine["uuid"], theirs["uuid"]):
        await watcher.subscribe(f"campaign.{uuid}")
    await watcher.until(stats_frame(f"campaign.{theirs['uuid']}", total_message_count=10))

    redis.stop()
    await linked(n1, n2, up=False)
    for n in range(10):  # every webhook is answered, on both nodes, without Redis
        await ack(n1, "n1", n, 3)
        await ack(n2, "n2", n, 2)
    # n1's own subscriber still sees n1's campaign live.
    await watcher.until(stats_frame(f"campaign.{mine['uuid']}", total_read_count=10))
    # A client that subscribes during the outage gets n2's state once Redis is back.
    late = await Client.connect(n1)
    await late.subscribe(f"campaign.{theirs['uuid']}")

    redis.start()
    await linked(n1, n2)
    final = stats_frame(f"campaign.{theirs['uuid']}", total_delivered_count=10,
                        total_read_count=0)
    await watcher.until(final, timeout=15)
    await late.until(final, timeout=15)
    # After the outage n2 also told live tables to reload their rows.
    resync = await watcher.until(lambda f: f["event"] == "campaign.messages.updated"
                                 and f["data"]["resync"] is True, timeout=15)
    assert resync["data"]["campaign_uuid"] == theirs["uuid"]
    for client in (watcher, late):
        await client.ws.close()


async def test_a_node_starts_without_redis_and_links_when_it_comes(
        nodes: Any, tmp_path: Path) -> None:
    later = free_port()
    cluster = await nodes(["n1"], redis_url=f"redis://127.0.0.1:{later}/0")
    n1 = cluster["n1"]
    campaign = await tracked_campaign(n1, "n1", "early", 2)
    await ack(n1, "n1", 0, 3)  # ingest does not wait for Redis
    await eventually(lambda: _read_is(n1, campaign["uuid"], 1))
    assert "campaignd_cluster_redis_up 0.0" in await metrics(n1)
    server = RedisServer(tmp_path / "late-redis", port=later)
    try:
        await linked(n1)
    finally:
        server.stop()


async def test_requests_for_another_node_are_refused_and_change_nothing(
        nodes: Any) -> None:
    cluster = await nodes(["n1", "n2"])
    n1, n2 = cluster["n1"], cluster["n2"]
    await tracked_campaign(n2, "n2", "theirs", 1)
    for method, path, doc in [
            ("POST", "/n/n2/webhooks/webjs", webjs_ack(message_id("n2", 0), 3)),
            ("POST", "/n/n2/api/campaigns", {"workspace_id": 1, "name": "x"}),
            ("POST", "/n/zz/webhooks/cloud", {"entry": []}),
            ("POST", "/api/campaigns", {"workspace_id": 1, "name": "x", "uuid": "n2-x"}),
            ("GET", "/api/campaigns/n2-theirs", None),
            ("POST", "/api/campaigns/n2-theirs/messages",
             {"messages": [{"recipient": "1", "message_id": "X1"}]})]:
        status, body = await n1.request(method, path, json=doc)
        assert status == 421 and body["error"]["code"] == "wrong_node", (path, body)
    assert "node n2" in body["error"]["message"]
    status, body = await n1.request("GET", "/api/campaigns")
    assert body["campaigns"] == []  # nothing was created on n1
    assert (await n2.stats("n2-theirs"))["total_read_count"] == 0  # nor counted on n2
    # A uuid of no known node is this node's, prefixed; one already prefixed is kept.
    for given, uuid in (("promo-1", "n1-promo-1"), ("n1-sale", "n1-sale"), (None, None)):
        doc = {"workspace_id": 1, "name": "x", **({"uuid": given} if given else {})}
        status, body = await n1.post_json("/api/campaigns", doc)
        assert status == 201, body
        assert body["campaign"]["uuid"] == uuid or (
            uuid is None and re.fullmatch(r"n1-[0-9a-f-]{36}", body["campaign"]["uuid"]))


async def test_the_campaign_list_spans_the_nodes_and_names_a_missing_one(
        nodes: Any) -> None:
    cluster = await nodes(["n1", "n2"])
    n1, n2 = cluster["n1"], cluster["n2"]
    for i in range(3):
        await tracked_campaign(n1, "n1", f"a{i}", 1, base=i)
        await tracked_campaign(n2, "n2", f"b{i}", 1, base=i)
    seen, cursor = [], None
    while True:
        query = "?limit=4" + (f"&cursor={cursor}" if cursor else "")
        status, body = await n1.request("GET", "/api/cluster/campaigns" + query)
        assert status == 200, body
        assert body["nodes"] == [{"node": "n1", "ok": True}, {"node": "n2", "ok": True}]
        seen += [(c["node"], c["uuid"]) for c in body["campaigns"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([("n1", f"n1-a{i}") for i in range(3)]
                                  + [("n2", f"n2-b{i}") for i in range(3)])
    assert seen[0] == ("n2", "n2-b2")  # newest first across nodes
    # A private channel of n2's campaign is signed on n1 (n2 says the token may see it).
    status, body = await n1.post_json("/broadcasting/auth", {
        "socket_id": "1.2", "channel_name": "private-campaign.n2-b0"})
    assert status == 200 and body["auth"].startswith("campaignd-key:"), body
    status, body = await n1.post_json("/broadcasting/auth", {
        "socket_id": "1.2", "channel_name": "private-campaign.n2-nothing"})
    assert status == 403, body

    await n2.session.close()
    await close_server(n2.server)  # n2 goes away
    status, body = await n1.request("GET", "/api/cluster/campaigns")
    assert status == 200
    assert [c["uuid"] for c in body["campaigns"]] == ["n1-a2", "n1-a1", "n1-a0"]
    assert body["nodes"][0] == {"node": "n1", "ok": True}
    assert body["nodes"][1]["node"] == "n2" and body["nodes"][1]["ok"] is False
    assert "did not answer" in body["nodes"][1]["error"]


async def test_a_single_node_is_as_before(daemon_factory: Any) -> None:
    daemon = await daemon_factory()
    status, body = await daemon.post_json("/n/n1/webhooks/webjs", webjs_ack("X", 3))
    assert status == 421 and "not in a cluster" in body["error"]["message"]
    campaign = await daemon.create_campaign(uuid="promo-1")
    assert campaign["uuid"] == "promo-1"
    status, body = await daemon.request("GET", "/api/cluster/campaigns")
    assert [c["uuid"] for c in body["campaigns"]] == ["promo-1"]
    assert body["nodes"] == [{"node": None, "ok": True}]
    status, body = await daemon.request("GET", "/page-config.json")
    assert body["cluster"] is None
    assert "campaignd_cluster" not in await metrics(daemon)
    # Nothing of Redis is loaded by a single node.
    code = ("import sys; from daemon.config import load_config; from web.app import make_app;"
            "make_app(load_config(None, environ={})); import daemon.serve, daemon.cli;"
            "assert 'redis' not in sys.modules, 'redis was imported'")
    done = await asyncio.to_thread(  # not on the loop: the daemon above keeps running
        subprocess.run, [sys.executable, "-c", code], cwd=REPO, capture_output=True,
        text=True, timeout=60)
    assert done.returncode == 0, done.stderr




async def listed(daemon: Daemon, workspace: int = 1) -> dict[str, str]:
    """A workspace's suppression list on a node: number -> source."""
    status, body = await daemon.request("GET", f"/api/workspaces/{workspace}/suppressions")
    assert status == 200, body
    return {e["number"]: e["source"] for e in body["suppressions"]}


async def test_an_opt_out_on_any_node_keeps_every_node_from_messaging_the_number(
        nodes: Any, redis: RedisServer) -> None:
    """SPEC 6.4 across nodes: a workspace's numbers are spread over the nodes (sharded by
    gateway account), so a stop that reaches one node is listed on every node, with the
    node it came from; nothing loops back; a node that joins later gets the list; a stop
    made while Redis is down is shared when it is back."""
    cluster = await nodes(["n1", "n2"])
    n1, n2 = cluster["n1"], cluster["n2"]
    # an operator's stop on n1; a recipient's STOP reply to n2's campaign on n2
    status, _ = await n1.post_json("/api/workspaces/1/suppressions",
                                   {"number": "+62 811 0000 001", "reason": "complained"})
    assert status == 201
    await tracked_campaign(n2, "n2", "promo", 3)
    status, _ = await n2.post_json("/n/n2/webhooks/webjs", {
        "event": "message_received", "data": {"message": {
            "id": "false_628100001@c.us_3EB0STOP0001", "from": "628100001@c.us",
            "body": "STOP", "timestamp": int(time.time()), "from_me": False,
            "chat_type": "private", "type": "chat"}}})
    assert status == 200
    on_n1 = {"628110000001": "api", "628100001": "webjs@n2"}
    on_n2 = {"628110000001": "api@n1", "628100001": "webjs"}
    await eventually(lambda: _listed_is(n1, on_n1), timeout=15)
    await eventually(lambda: _listed_is(n2, on_n2), timeout=15)
    for d in (n1, n2):  # what the sender asks before each send
        assert d.runtime.suppressions.is_suppressed(1, "+62 811 0000 001")
        assert d.runtime.suppressions.is_suppressed(1, "628100001@c.us")
        await d.runtime.checkpoint()  # another node's fact is listed, never queued again
        assert await d.runtime.store.fetchall(
            "SELECT fact_id FROM stops_outbox WHERE fact_id LIKE 'cluster/%'") == []

    n3 = (await nodes(["n3"]))["n3"]  # joins later: reads what was shared before it
    await eventually(lambda: _listed_is(n3, {"628110000001": "api@n1",
                                             "628100001": "webjs@n2"}), timeout=15)

    redis.stop()
    status, _ = await n1.post_json("/api/workspaces/1/suppressions",
                                   {"number": "628110000002"})
    assert status == 201  # taken and listed on n1 without Redis
    assert (await listed(n1))["628110000002"] == "api"
    redis.start()
    await eventually(lambda: _listed_is(n2, {**on_n2, "628110000002": "api@n1"}), timeout=20)
    assert await listed(n1) == {**on_n1, "628110000002": "api"}  # nothing came back


async def _listed_is(daemon: Daemon, want: dict[str, str], workspace: int = 1) -> bool:
    found = await listed(daemon, workspace)
    return found == want


async def test_a_stop_credited_to_another_workspace_after_all_moves_on_every_node(
        nodes: Any) -> None:
    """A STOP that quotes a message not registered yet is credited to the number's latest
    campaign message (workspace 1) and shared so; when the quoted message is registered
    in workspace 2's campaign, the stop moves there, on its node and on the others (before,
    the others kept it listed in workspace 1 as well)."""
    cluster = await nodes(["n1", "n2"])
    n1, n2 = cluster["n1"], cluster["n2"]
    await tracked_campaign(n2, "n2", "promo", 3)  # workspace 1: 628100000 .. 628100002
    status, body = await n2.post_json("/n/n2/api/campaigns", {
        "workspace_id": 2, "name": "other", "uuid": "other"})
    assert status == 201, body
    quoted = "true_628100001@c.us_3EB0LATER000000001"
    status, _ = await n2.post_json("/n/n2/webhooks/webjs", {
        "event": "message_received", "data": {"message": {
            "id": "false_628100001@c.us_3EB0STOP0002", "from": "628100001@c.us",
            "body": "STOP", "timestamp": int(time.time()), "from_me": False,
            "chat_type": "private", "type": "chat", "quoted_message_id": quoted}}})
    assert status == 200
    await eventually(lambda: _listed_is(n1, {"628100001": "webjs@n2"}), timeout=15)

    await n2.register("n2-other", [{"recipient": "628100001", "message_id": quoted}])
    await eventually(lambda: _listed_is(n2, {}), timeout=15)
    assert await listed(n2, 2) == {"628100001": "webjs"}
    await eventually(lambda: _listed_is(n1, {}), timeout=15)  # withdrawn there too
    await eventually(lambda: _listed_is(n1, {"628100001": "webjs@n2"}, 2), timeout=15)
    for d in (n1, n2):
        assert not d.runtime.suppressions.is_suppressed(1, "628100001")
        assert d.runtime.suppressions.is_suppressed(2, "628100001")
