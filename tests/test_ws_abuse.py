"""WebSocket abuse at /app/{key} (SPEC 3.3, 5; issue 7.5).

A client that never reads, one that floods pings or subscriptions, thousands of
connections opened and dropped at once, frames over `pusher.max_frame_bytes`: another
client still gets its frames, and what the daemon holds for the abuser stays bounded.
The bounds are asserted on outcomes (frames received, connections open, bytes held),
never on time.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import struct
from typing import Any

import aiohttp
import pytest

from tests.conftest import Daemon, eventually
from tests.test_pusher_protocol import (
    Client,
    SlowClient,
    campaign_with_messages,
    serialized,
    stats_frame,
    webjs_ack,
)
from web.pusher import HUB, Hub

HANDSHAKE = (b"GET /app/campaignd-key?protocol=7 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def client_frame(payload: bytes, opcode: int = 0x1, fin: bool = True,
                 claimed: int | None = None) -> bytes:
    """A masked client frame (RFC 6455 5.2) of any size; `claimed` lies about the length."""
    size = len(payload) if claimed is None else claimed
    first = (0x80 if fin else 0) | opcode
    if size < 126:
        header = bytes((first, 0x80 | size))
    elif size < 65536:
        header = bytes((first, 0x80 | 126)) + struct.pack(">H", size)
    else:
        header = bytes((first, 0x80 | 127)) + struct.pack(">Q", size)
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def pusher(event: str, data: dict[str, Any]) -> bytes:
    return client_frame(json.dumps({"event": event, "data": data}).encode())


async def raw_connect(daemon: Daemon, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (daemon.server.host, daemon.server.port))
    await loop.sock_sendall(sock, HANDSHAKE)
    return sock


async def read_close_code(sock: socket.socket) -> int | None:
    """Read server frames until a close frame; its code (None if the socket just ends)."""
    loop = asyncio.get_running_loop()
    buf = b""
    async with asyncio.timeout(10):
        while True:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                return None
            buf += chunk
            if buf.startswith(b"HTTP/") and b"\r\n\r\n" in buf:
                buf = buf.split(b"\r\n\r\n", 1)[1]
            while len(buf) >= 2 and not buf.startswith(b"HTTP/"):
                size, start = buf[1] & 0x7F, 2
                if size == 126:
                    size, start = struct.unpack(">H", buf[2:4])[0], 4
                elif size == 127:
                    size, start = struct.unpack(">Q", buf[2:10])[0], 10
                if len(buf) < start + size:
                    break
                if buf[0] & 0x0F == 0x8:
                    return struct.unpack(">H", buf[start:start + 2])[0]
                buf = buf[start + size:]


def hub_of(daemon: Daemon) -> Hub:
    return daemon.server.app[HUB]


def held_bytes(conn: Any) -> tuple[int, int]:
    """What the daemon holds for one connection: (outbox entries, transport buffer)."""
    transport = conn.transport
    buffered = transport.get_write_buffer_size() if transport is not None else 0
    return len(conn.outbox), buffered


async def watch(daemon: Daemon, socket_ids: set[str], peak: dict[str, int],
                stop: asyncio.Event) -> None:
    """Sample what the daemon holds for the abusers while the test runs."""
    hub = hub_of(daemon)
    while not stop.is_set():
        for sid, conn in list(hub.connections.items()):
            if sid in socket_ids:
                continue
            entries, buffered = held_bytes(conn)
            peak["entries"] = max(peak.get("entries", 0), entries)
            peak["buffered"] = max(peak.get("buffered", 0), buffered)
            peak["tasks"] = max(peak.get("tasks", 0), len(conn.tasks))
        await asyncio.sleep(0.005)


async def post_acks(daemon: Daemon, count: int, ack: int) -> None:
    for start in range(0, count, 50):
        results = await asyncio.gather(*(
            daemon.post_json("/webhooks/webjs", webjs_ack(serialized(n), ack))
            for n in range(start, min(count, start + 50))))
        assert all(status == 200 for status, _ in results)


# --- a client that never reads --------------------------------------------------------------

@pytest.mark.timeout(120)
async def test_a_client_that_never_reads_holds_bounded_memory(daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"pusher.coalesce_ms": 0})
    total = 400
    campaign = await campaign_with_messages(daemon, total)
    channel = f"campaign.{campaign['uuid']}"
    others = [await daemon.create_campaign() for _ in range(10)]
    readers = [await Client.connect(daemon) for _ in range(2)]
    for reader in readers:
        await reader.subscribe(channel)
    # Three clients that never read, on every channel that moves: the campaign's (stats
    # and rows) and the workspace's (stats of every campaign).
    stuck = [await SlowClient.connect(daemon, channel) for _ in range(3)]
    for s in stuck:
        await asyncio.get_running_loop().sock_sendall(s.sock, pusher(
            "pusher:subscribe", {"channel": "workspace.1"}))
    peak: dict[str, int] = {}
    stop = asyncio.Event()
    watcher = asyncio.ensure_future(watch(daemon, {r.socket_id for r in readers}, peak, stop))
    try:
        for ack in (1, 2, 3):
            await post_acks(daemon, total, ack)
            for other in others:  # the workspace channel carries these too
                await daemon.register(other["uuid"], [
                    {"recipient": "1", "message_id": f"{other['uuid']}-{ack}"}])
        for reader in readers:  # the readers got everything, to the last state
            await reader.until(stats_frame(channel, total_read_count=total), timeout=60)
        stop.set()
        await watcher
        print(f"never-reading clients: peak {peak}")  # figures for docs/reliability.md
        # Pushes are coalesced per (channel, event, campaign): an outbox never holds more
        # entries than that, however many changes there were (1,200 ACKs, 30 registrations).
        assert 0 < peak["entries"] <= 3 + 2 * (1 + len(others)) + 6, peak
        # The transport buffer holds at most one write past asyncio's high-water mark.
        assert peak["buffered"] <= 512 * 1024, peak
        hub = hub_of(daemon)
        assert len(hub.connections) == 5  # the stuck ones are still connected
        _, metrics = await daemon.request("GET", "/metrics")
        assert 'campaignd_websocket_frames_total{outcome="coalesced"}' in metrics
        # When one finally reads, it gets the final state, not a backlog.
        frames = await stuck[0].read_all_frames(stats_frame(channel, total_read_count=total),
                                                timeout=30)
        assert frames[-1]["data"]["statistics"]["total_delivered_count"] == total
        assert len(frames) < 3 * total, len(frames)
    finally:
        stop.set()
        for s in stuck:
            s.close()


# --- floods ------------------------------------------------------------------------------------

@pytest.mark.timeout(120)
async def test_ping_and_subscribe_floods_do_not_starve_others(daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"pusher.max_subscriptions": 10})
    campaign = await campaign_with_messages(daemon, 10)
    channel = f"campaign.{campaign['uuid']}"
    reader = await Client.connect(daemon)
    await reader.subscribe(channel)
    await reader.next()  # the current state
    loop = asyncio.get_running_loop()
    flood = 20_000
    pings = await raw_connect(daemon, rcvbuf=4096)
    subs = await raw_connect(daemon, rcvbuf=4096)
    peak: dict[str, int] = {}
    stop = asyncio.Event()
    watcher = asyncio.ensure_future(watch(daemon, {reader.socket_id}, peak, stop))
    ping = pusher("pusher:ping", {})
    subscribe_frames = [
        pusher("pusher:subscribe", {"channel": channel}),
        pusher("pusher:unsubscribe", {"channel": channel}),
        pusher("pusher:subscribe", {"channel": "workspace.1"}),
        pusher("pusher:subscribe", {"channel": "private-workspace.2", "auth": "x:y"}),
        pusher("pusher:subscribe", {"channel": "presence-nope"}),
        pusher("pusher:subscribe", {"channel": f"workspace.{os.getpid()}"}),
    ]
    try:
        senders = asyncio.gather(
            loop.sock_sendall(pings, ping * flood),
            loop.sock_sendall(subs, b"".join(subscribe_frames) * (flood // 6)))
        # Meanwhile the reader's campaign moves; it sees every step.
        await post_acks(daemon, 10, 2)
        await reader.until(stats_frame(channel, total_delivered_count=10), timeout=30)
        await post_acks(daemon, 10, 3)
        await reader.until(stats_frame(channel, total_read_count=10), timeout=30)
        await senders
        # Both flooders are still connected: a flood of valid frames is not a reason to
        # close, and what waits for them is coalesced per kind of frame.
        hub = hub_of(daemon)
        assert len(hub.connections) == 3
        stop.set()
        await watcher
        print(f"flooders: peak {peak}")
        assert peak["entries"] <= 12, peak
        assert peak["tasks"] <= 64, peak  # subscribe replies do not pile up work
        status, _ = await daemon.request("GET", "/healthz")
        assert status == 200
    finally:
        stop.set()
        pings.close()
        subs.close()


# --- thousands of connections at once -------------------------------------------------------

@pytest.mark.timeout(300)
async def test_5000_connections_opened_and_dropped_at_once(daemon_factory: Any) -> None:
    count = int(os.environ.get("CAMPAIGND_WS_STORM", "5000"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * count + 512  # both ends live in this process
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            try:  # root may raise the hard limit too
                resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            except (ValueError, OSError) as exc:
                pytest.fail(f"needs {need} file descriptors, the hard limit is {hard} and "
                            f"cannot be raised ({exc}): run as root or `ulimit -Hn {need}`")
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    try:
        daemon = await daemon_factory()
        campaign = await campaign_with_messages(daemon, 5)
        channel = f"campaign.{campaign['uuid']}"
        loop = asyncio.get_running_loop()
        hub = hub_of(daemon)
        socks: list[socket.socket] = []
        subscribe = pusher("pusher:subscribe", {"channel": channel})

        async def opened() -> socket.socket:
            sock = await raw_connect(daemon)
            reply = b""
            while b"\r\n\r\n" not in reply:  # the 101: the daemon has the connection
                chunk = await loop.sock_recv(sock, 4096)
                assert chunk, reply
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 101"), reply[:100]
            await loop.sock_sendall(sock, subscribe)
            return sock

        # In batches below the listen backlog (128), so no handshake waits on a SYN retry.
        for start in range(0, count, 100):
            socks.extend(await asyncio.gather(*(opened() for _ in range(
                min(100, count - start)))))
        try:
            await eventually(lambda: _at_least(hub, count), timeout=120, interval=0.1)
        except AssertionError:
            subscribed = sum(1 for c in hub.connections.values() if c.channels)
            raise AssertionError(f"{len(hub.connections)} connected, {subscribed} "
                                 f"subscribed of {count}") from None
        # Dropped at once, half with a reset, half with a plain close.
        for i, s in enumerate(socks):
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        observer = await Client.connect(daemon)
        await observer.subscribe(channel)
        await post_acks(daemon, 5, 2)
        frame = await observer.until(stats_frame(channel, total_delivered_count=5),
                                     timeout=60)
        assert frame["data"]["campaign_uuid"] == campaign["uuid"]
        # Every dropped connection is forgotten: only the observer is left.
        await eventually(lambda: _exactly(hub, 1), timeout=120, interval=0.1)
        assert hub.subscribers[channel] == {hub.connections[observer.socket_id]}
        _, metrics = await daemon.request("GET", "/metrics")
        assert "campaignd_websocket_connections 1.0" in metrics
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _at_least(hub: Hub, n: int) -> bool:
    return sum(1 for c in hub.connections.values() if c.channels) >= n


async def _exactly(hub: Hub, n: int) -> bool:
    return len(hub.connections) == n


# --- frames over the size limit ---------------------------------------------------------------

async def test_frames_over_the_limit_close_with_1009(daemon_factory: Any) -> None:
    limit = 2048
    daemon = await daemon_factory(**{"pusher.max_frame_bytes": limit})
    campaign = await campaign_with_messages(daemon, 3)
    channel = f"campaign.{campaign['uuid']}"
    reader = await Client.connect(daemon)
    await reader.subscribe(channel)
    over = json.dumps({"event": "pusher:subscribe",
                       "data": {"channel": channel, "pad": "x" * limit}}).encode()
    attacks = {
        "text frame over the limit": client_frame(over),
        "binary frame over the limit": client_frame(b"\x00" * (limit + 1), opcode=0x2),
        "fragments that add up over the limit": (
            client_frame(over[:limit // 2], fin=False)
            + client_frame(over[limit // 2:limit], opcode=0x0, fin=False)
            + client_frame(over[limit:], opcode=0x0)),
        "a header that claims 2^62 bytes": client_frame(b"{}", claimed=2**62),
    }
    loop = asyncio.get_running_loop()
    for name, data in attacks.items():
        sock = await raw_connect(daemon)
        try:
            await loop.sock_sendall(sock, data)
            assert await read_close_code(sock) == 1009, name
        finally:
            sock.close()
    # A frame just under the limit is fine, and the reader never noticed anything.
    async with aiohttp.ClientSession() as session:
        client = await Client.connect(daemon, session=session)
        await client.send("pusher:ping", {"pad": "x" * (limit - 100)})
        assert (await client.next())["event"] == "pusher:pong"
    await post_acks(daemon, 3, 2)
    await reader.until(stats_frame(channel, total_delivered_count=3))
    assert len(hub_of(daemon).connections) == 1


async def test_connections_over_max_connections_are_closed_with_4100(
        daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"pusher.max_connections": 20})
    hub = hub_of(daemon)
    socks = [await raw_connect(daemon) for _ in range(19)]
    observer = await Client.connect(daemon)  # the 20th
    await eventually(lambda: _exactly(hub, 20))
    try:
        extra = [await raw_connect(daemon) for _ in range(5)]
        for sock in extra:
            assert await read_close_code(sock) == 4100
            sock.close()
        # the open ones are untouched; when one leaves, there is room again
        assert (await observer.subscribe("workspace.1"))["event"] == \
            "pusher_internal:subscription_succeeded"
        socks.pop().close()
        await eventually(lambda: _exactly(hub, 19))
        again = await Client.connect(daemon)
        assert again.socket_id in hub.connections
    finally:
        for sock in socks:
            sock.close()


# --- the daemon as a process: its RSS while clients never read -----------------------------

def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def rss_with_stuck_clients(tmp_path: Any, messages: int, stuck_count: int) -> dict[str, Any]:
    """Run a daemon process, park `stuck_count` never-reading clients on the busiest
    channels, post three ACKs per message and return the RSS figures."""
    from tests.proc import DaemonProcess, write_config

    # Long ping timeouts: the stuck clients must stay for the whole run, not be dropped
    # as silent (which is what the daemon does to them otherwise, 4201).
    proc = DaemonProcess(write_config(tmp_path, **{
        "pusher.coalesce_ms": 0, "pusher.activity_timeout": 600,
        "pusher.pong_timeout": 600}))
    stuck: list[socket.socket] = []
    loop = asyncio.get_running_loop()
    try:
        async with aiohttp.ClientSession(proc.url) as http:
            async def post(path: str, doc: Any) -> None:
                async with http.post(path, json=doc) as resp:
                    assert resp.status in (200, 201), await resp.text()

            async with http.post("/api/campaigns", json={"workspace_id": 1,
                                                         "name": "rss"}) as resp:
                uuid = (await resp.json())["campaign"]["uuid"]
            for start in range(0, messages, 1000):
                await post(f"/api/campaigns/{uuid}/messages", {"messages": [
                    {"recipient": f"62812{n:07d}", "message_id": serialized(n)}
                    for n in range(start, min(messages, start + 1000))]})
            host, port = proc.url.removeprefix("http://").rsplit(":", 1)
            for _ in range(stuck_count):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.setblocking(False)
                await loop.sock_connect(sock, (host, int(port)))
                await loop.sock_sendall(sock, HANDSHAKE + pusher(
                    "pusher:subscribe", {"channel": f"campaign.{uuid}"}) + pusher(
                    "pusher:subscribe", {"channel": "workspace.1"}))
                stuck.append(sock)
            reader = await http.ws_connect("/app/campaignd-key?protocol=7")
            await reader.send_json({"event": "pusher:subscribe",
                                    "data": {"channel": f"campaign.{uuid}"}})

            async def acks(ack: int, numbers: range) -> None:
                for start in range(numbers.start, numbers.stop, 50):
                    await asyncio.gather(*(
                        post("/webhooks/webjs", webjs_ack(serialized(n), ack))
                        for n in range(start, min(numbers.stop, start + 50))))

            warm = max(1, messages // 10)
            await acks(1, range(0, warm))  # warm-up: buffers, caches and stuck sockets fill
            before = rss_bytes(proc.proc.pid)
            await acks(1, range(warm, messages))
            await acks(2, range(0, messages))
            await acks(3, range(0, messages))
            async with asyncio.timeout(60):  # the reader gets the final state
                async for msg in reader:
                    frame = json.loads(msg.data)
                    if frame["event"] == "campaign.statistics.updated" and json.loads(
                            frame["data"])["statistics"]["total_read_count"] == messages:
                        break
            after = rss_bytes(proc.proc.pid)
            async with http.get("/metrics") as resp:
                metrics = await resp.text()
            await reader.close()
        return {"before": before, "after": after, "metrics": metrics,
                "frames_if_queued": 3 * messages * 3 * stuck_count}
    finally:
        for sock in stuck:
            sock.close()
        assert proc.terminate() == 0


async def check_rss(tmp_path: Any, messages: int, stuck_count: int) -> None:
    figures = await rss_with_stuck_clients(tmp_path, messages, stuck_count)
    growth = figures["after"] - figures["before"]
    print(f"RSS with {stuck_count} never-reading clients, {3 * messages} ACKs: "
          f"{figures['before'] / 2**20:.1f} MB -> {figures['after'] / 2**20:.1f} MB")
    # Had every frame been queued for them, the stuck clients alone would hold
    # frames_if_queued frames of ~300+ bytes each: 200 MB in the short run.
    assert growth < 48 * 2**20, figures
    assert f"campaignd_websocket_connections {stuck_count + 1}.0" in figures["metrics"]


@pytest.mark.timeout(180)
async def test_daemon_rss_stays_flat_while_clients_never_read(tmp_path: Any) -> None:
    await check_rss(tmp_path, messages=3000, stuck_count=25)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_daemon_rss_stays_flat_while_clients_never_read_long(tmp_path: Any) -> None:
    await check_rss(tmp_path, messages=50_000, stuck_count=200)
