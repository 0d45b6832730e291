"""The Pusher protocol at /app/{key}, spoken by aiohttp's WebSocket client to a real daemon.

Every test posts real webhooks (fixture shapes) and checks what a subscriber sees.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from typing import Any

import aiohttp
import pytest

from actors.broadcaster import (
    PACE_FACTOR,
    QUIET_FLOOR,
    ROWS_EVENT,
    STATS_EVENT,
    STATUS_EVENT,
    BroadcasterActor,
    Flush,
    Pace,
    Push,
    Snapshot,
)
from actors.messages import CampaignChanged, CampaignStatusChanged
from core.metrics import Metrics
from domain.records import CampaignInfo
from tests.conftest import Daemon, eventually, fixture_json, webjs_ack

TOKEN_1 = "token-for-workspace-1-abcdef"
TOKEN_ALL = "token-for-every-workspace-xyz"
TOKENS = [{"token": TOKEN_1, "workspace": 1}, {"token": TOKEN_ALL, "workspace": "*"}]


def serialized(n: int) -> str:
    return f"true_62812000{n:05d}@c.us_3EB0{n:016X}"


async def campaign_with_messages(daemon: Daemon, count: int, workspace_id: int = 1
                                 ) -> dict[str, Any]:
    campaign = await daemon.create_campaign(workspace_id=workspace_id)
    await daemon.register(campaign["uuid"], [
        {"recipient": f"62812000{n:05d}", "message_id": serialized(n)} for n in range(count)])
    return campaign


class Client:
    """A Pusher protocol client over aiohttp's WebSocket client."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.socket_id: str = hello["data"]["socket_id"]

    @classmethod
    async def connect(cls, daemon: Daemon, key: str = "campaignd-key",
                      session: aiohttp.ClientSession | None = None) -> Client:
        ws = await (session or daemon.session).ws_connect(
            daemon.url(f"/app/{key}?protocol=7&client=js&version=8.4.0"))
        hello = await receive(ws)
        assert hello["event"] == "pusher:connection_established", hello
        return cls(ws, hello)

    async def send(self, event: str, data: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps({"event": event, "data": data}))

    async def subscribe(self, channel: str, auth: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"channel": channel}
        if auth is not None:
            data["auth"] = auth
        await self.send("pusher:subscribe", data)
        return await self.next()

    async def refused(self, channel: str, auth: str | None = None) -> dict[str, Any]:
        """Subscribe expecting a refusal: `pusher:error`, then the channel's
        `pusher:subscription_error` (what Echo's `.error()` receives)."""
        error = await self.subscribe(channel, auth)
        assert error["event"] == "pusher:error", error
        failed = await self.next()
        assert failed["event"] == "pusher:subscription_error", failed
        assert failed["channel"] == channel
        assert failed["data"]["error"] == error["data"]["message"]
        return error["data"] | {"status": failed["data"]["status"]}

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        return await receive(self.ws, timeout)

    async def until(self, check: Any, timeout: float = 5.0) -> dict[str, Any]:
        """Read frames until one satisfies `check`; the others are skipped."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next(timeout)
                if check(frame):
                    return frame


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict[str, Any]:
    msg = await ws.receive(timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    frame = json.loads(msg.data)
    assert isinstance(frame["data"], str), "server data must be a JSON-encoded string"
    frame["data"] = json.loads(frame["data"])
    return frame


def stats_frame(channel: str, **expected: int) -> Any:
    def check(frame: dict[str, Any]) -> bool:
        return (frame["event"] == "campaign.statistics.updated"
                and frame.get("channel") == channel
                and all(frame["data"]["statistics"][k] == v for k, v in expected.items()))
    return check


async def test_handshake_gives_socket_id_and_activity_timeout(daemon: Daemon) -> None:
    client = await Client.connect(daemon)
    assert re.fullmatch(r"\d+\.\d+", client.socket_id)
    assert client.hello["data"]["activity_timeout"] == 30
    await client.send("pusher:ping", {})
    assert (await client.next())["event"] == "pusher:pong"
    _, metrics = await daemon.request("GET", "/metrics")
    assert "campaignd_websocket_connections 1.0" in metrics
    assert re.search(r'campaignd_websocket_frames_total\{outcome="sent"\} [2-9]', metrics)
    await client.ws.close()

    async def no_connections() -> bool:
        _, metrics = await daemon.request("GET", "/metrics")
        return "campaignd_websocket_connections 0.0" in metrics

    await eventually(no_connections)


async def test_unknown_key_is_closed_with_4001(daemon: Daemon) -> None:
    ws = await daemon.session.ws_connect(daemon.url("/app/not-our-key?protocol=7"))
    frame = await receive(ws)
    assert frame["event"] == "pusher:error" and frame["data"]["code"] == 4001
    msg = await ws.receive(5)
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4001


async def test_subscribe_sends_current_state_then_live_changes(daemon: Daemon) -> None:
    campaign = await campaign_with_messages(daemon, 4)
    uuid, channel = campaign["uuid"], f"campaign.{campaign['uuid']}"
    client = await Client.connect(daemon)
    ok = await client.subscribe(channel)
    assert ok == {"event": "pusher_internal:subscription_succeeded", "channel": channel,
                  "data": {}}
    state = await client.until(stats_frame(channel))  # a live push may come first
    assert set(state["data"]) == {"campaign_id", "campaign_uuid", "statistics", "timestamp"}
    assert state["data"]["campaign_id"] == campaign["id"]
    assert state["data"]["campaign_uuid"] == uuid
    assert state["data"]["statistics"]["total_message_count"] == 4
    assert state["data"]["statistics"]["total_sent_count"] == 4

    for n, ack in ((0, 2), (1, 3), (2, -1)):
        status, _ = await daemon.post_json("/webhooks/webjs", webjs_ack(serialized(n), ack))
        assert status == 200
    final = await client.until(stats_frame(channel, total_delivered_count=2, total_read_count=1,
                                           total_failed_count=1))
    stats = final["data"]["statistics"]
    assert stats["total_sent_count"] == 3
    assert stats["delivery_rate"] == 66.7 and stats["progress"] == 100.0
    assert stats["updated_at"].endswith("Z")
    assert stats == await daemon.stats(uuid) | {"updated_at": stats["updated_at"]}

    # Someone subscribing now gets the current numbers at once, without any new change.
    late = await Client.connect(daemon)
    await late.subscribe(channel)
    state = await late.next()
    assert state["event"] == "campaign.statistics.updated"
    assert state["data"]["statistics"] == stats


async def test_rows_are_pushed_on_the_campaign_channel(daemon: Daemon) -> None:
    campaign = await campaign_with_messages(daemon, 3)
    client = await Client.connect(daemon)
    await client.subscribe(f"campaign.{campaign['uuid']}")
    await daemon.post_json("/webhooks/webjs", webjs_ack(serialized(1), 3))
    await daemon.post_json("/webhooks/webjs", webjs_ack(serialized(2), -1))
    seen: dict[int, dict[str, Any]] = {}

    def both_rows(frame: dict[str, Any]) -> bool:
        if frame["event"] == "campaign.messages.updated":
            assert frame["data"]["campaign_uuid"] == campaign["uuid"]
            seen.update({r["row"]: r for r in frame["data"]["rows"]})
        return seen.get(1, {}).get("status") == "read" and 2 in seen

    await client.until(both_rows)
    assert seen[1]["level"] == "read" and seen[1]["failed"] is False
    assert seen[1]["timestamps"]["read"] and seen[1]["timestamps"]["delivered"]
    assert seen[2]["status"] == "failed" and seen[2]["failure_reason"]
    assert seen[2]["timestamps"]["failed"]


async def test_workspace_channel_gets_every_campaign_and_status_changes(
        daemon: Daemon) -> None:
    first = await campaign_with_messages(daemon, 1)
    cloud = fixture_json("cloud_status_sent.json")
    wamid = cloud["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]
    second = await daemon.create_campaign(workspace_id=1, name="Second")
    await daemon.register(second["uuid"], [{"recipient": "16505551234", "message_id": wamid}])
    await daemon.create_campaign(workspace_id=2)  # another workspace: not on workspace.1
    client = await Client.connect(daemon)
    await client.subscribe("workspace.1")
    uuids: set[str] = set()

    def both_campaigns(frame: dict[str, Any]) -> bool:
        assert frame["channel"] == "workspace.1"
        uuids.add(frame["data"]["campaign_uuid"])
        return len(uuids) == 2

    await client.until(both_campaigns)
    assert uuids == {first["uuid"], second["uuid"]}

    status, _ = await daemon.post_json("/webhooks/cloud", cloud)
    assert status == 200
    frame = await client.until(lambda f: f["event"] == "campaign.statistics.updated"
                               and f["data"]["campaign_uuid"] == second["uuid"]
                               and f["data"]["statistics"]["total_queued_count"] == 0
                               and f["data"]["statistics"]["time_to_deliver"] is not None
                               and f["data"]["statistics"]["total_sent_count"] == 1)
    assert frame["data"]["campaign_id"] == second["id"]


async def test_unsubscribe_stops_events(daemon: Daemon) -> None:
    campaign = await campaign_with_messages(daemon, 2)
    channel = f"campaign.{campaign['uuid']}"
    client = await Client.connect(daemon)
    await client.subscribe(channel)
    await client.next()  # state
    await client.subscribe("workspace.1")
    await client.next()  # state
    await client.send("pusher:unsubscribe", {"channel": channel})
    await daemon.post_json("/webhooks/webjs", webjs_ack(serialized(0), 2))
    seen: list[dict[str, Any]] = []

    def record(frame: dict[str, Any]) -> bool:
        seen.append(frame)
        return stats_frame("workspace.1", total_delivered_count=1)(frame)

    await client.until(record)
    # The campaign channel's frames for this change would be queued before the
    # workspace one; earlier states (sent before the unsubscribe) may come, this may not.
    after = [f for f in seen if f.get("channel") == channel and (
        f["event"] == "campaign.messages.updated"
        or f["data"]["statistics"]["total_delivered_count"] == 1)]
    assert after == []


async def test_private_channels_need_a_token_of_that_workspace(daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"api.tokens": TOKENS})
    campaign = await campaign_with_messages_as(daemon, 2, workspace_id=1)
    foreign = await campaign_with_messages_as(daemon, 1, workspace_id=2)
    client = await Client.connect(daemon)

    async def auth(channel: str, token: str | None, form: bool = True) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        doc = {"socket_id": client.socket_id, "channel_name": channel}
        kw: dict[str, Any] = {"data": doc} if form else {"json": doc}
        return await daemon.request("POST", "/broadcasting/auth", headers=headers, **kw)

    status, body = await auth("private-workspace.1", TOKEN_1)
    assert status == 200 and body["auth"].startswith("campaignd-key:")
    ok = await client.subscribe("private-workspace.1", body["auth"])
    assert ok["event"] == "pusher_internal:subscription_succeeded"
    state = await client.next()
    assert state["channel"] == "private-workspace.1"
    assert state["data"]["campaign_uuid"] == campaign["uuid"]

    private_campaign = f"private-campaign.{campaign['uuid']}"
    status, body = await auth(private_campaign, TOKEN_1, form=False)
    assert status == 200
    await client.subscribe(private_campaign, body["auth"])
    await client.next()  # state
    await daemon.post_json("/webhooks/webjs", webjs_ack(serialized(1001), 3),
                           headers={"Authorization": f"Bearer {TOKEN_1}"})
    await client.until(stats_frame(private_campaign, total_read_count=1))

    # Refused: no token, another workspace, another workspace's campaign, public channel.
    assert (await auth("private-workspace.1", None))[0] == 401
    assert (await auth("private-workspace.1", "wrong-token-wrong-token"))[0] == 401
    status, body = await auth("private-workspace.2", TOKEN_1)
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert (await auth(f"private-campaign.{foreign['uuid']}", TOKEN_1))[0] == 403
    assert (await auth("private-campaign.no-such-campaign", TOKEN_1))[0] == 403
    assert (await auth("workspace.1", TOKEN_1))[0] == 403
    assert (await auth(f"private-campaign.{foreign['uuid']}", TOKEN_ALL))[0] == 200

    # A forged or borrowed signature is refused on the socket.
    other = await Client.connect(daemon)
    _, body = await auth("private-workspace.2", TOKEN_ALL)  # signed for client, not other
    refused = await other.refused("private-workspace.2", body["auth"])
    assert refused["code"] == 4009 and refused["status"] == 403
    refused = await other.refused("private-workspace.2")
    assert refused["code"] == 4009 and refused["status"] == 403
    await other.send("pusher:ping", {})
    assert (await other.next())["event"] == "pusher:pong"  # still connected


async def campaign_with_messages_as(daemon: Daemon, count: int, workspace_id: int
                                    ) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN_ALL}"}
    status, body = await daemon.post_json(
        "/api/campaigns", {"workspace_id": workspace_id, "name": "P"}, headers=headers)
    assert status == 201, body
    campaign = body["campaign"]
    status, body = await daemon.post_json(
        f"/api/campaigns/{campaign['uuid']}/messages",
        {"messages": [{"recipient": f"6281{workspace_id}{n:04d}",
                       "message_id": serialized(workspace_id * 1000 + n)}
                      for n in range(count)]}, headers=headers)
    assert status == 201, body
    return campaign


async def test_public_channels_can_be_forbidden(daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"pusher.allow_public_channels": False})
    client = await Client.connect(daemon)
    refused = await client.refused("workspace.1")
    assert refused["code"] == 4009 and refused["status"] == 403
    _, body = await daemon.post_json("/broadcasting/auth", {
        "socket_id": client.socket_id, "channel_name": "private-workspace.1"})
    ok = await client.subscribe("private-workspace.1", body["auth"])
    assert ok["event"] == "pusher_internal:subscription_succeeded"


async def test_bad_frames_and_limits_are_refused_without_disconnecting(
        daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"pusher.max_subscriptions": 2,
                                     "pusher.max_frame_bytes": 1024})
    client = await Client.connect(daemon)
    await client.ws.send_str("not json")
    assert (await client.next())["data"]["code"] == 4300
    assert (await client.refused("presence-room.1"))["status"] == 400
    await client.subscribe("workspace.1")
    await client.subscribe("workspace.2")
    refused = await client.refused("workspace.3")
    assert "limit 2" in refused["message"]
    await client.send("client-typing", {"channel": "workspace.1"})
    assert (await client.next())["event"] == "pusher:error"
    await client.send("pusher:ping", {"padding": "x" * 2000})  # over max_frame_bytes
    msg = await client.ws.receive(5)
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009


async def test_silent_client_is_pinged_then_closed_with_4201(daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"pusher.activity_timeout": 1, "pusher.pong_timeout": 1})
    client = await Client.connect(daemon)
    assert client.hello["data"]["activity_timeout"] == 1
    assert (await client.next())["event"] == "pusher:ping"
    msg = await client.ws.receive(10)  # we do not answer
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4201
    answering = await Client.connect(daemon)
    assert (await answering.next())["event"] == "pusher:ping"
    await answering.send("pusher:pong", {})
    assert (await answering.next())["event"] == "pusher:ping"  # pinged again, not closed


async def test_shutdown_closes_sockets_with_4200(daemon_factory: Any) -> None:
    daemon = await daemon_factory()
    client = await Client.connect(daemon)
    await client.subscribe("workspace.1")
    # A client that never reads (nor answers the close) must not hold the shutdown.
    stuck = await SlowClient.connect(daemon, "workspace.1")
    try:
        closing = asyncio.ensure_future(daemon.server.close())
        msg = await client.ws.receive(10)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4200
        await client.ws.close()
        await closing
    finally:
        stuck.close()


class SlowClient:
    """A WebSocket client with a tiny receive buffer that stops reading after subscribing."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def connect(cls, daemon: Daemon, channel: str) -> SlowClient:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # Small segments, like a poor mobile link: the server's kernel then keeps a small
        # send buffer for us too, so what we do not read piles up in the daemon.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (daemon.server.host, daemon.server.port))
        await loop.sock_sendall(sock, (
            b"GET /app/campaignd-key?protocol=7 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ))
        payload = json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}})
        await loop.sock_sendall(sock, _masked_text_frame(payload.encode()))
        return cls(sock)

    async def read_all_frames(self, until: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Now read: parse every server frame until one satisfies `until`."""
        loop = asyncio.get_running_loop()
        buf = b""
        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                chunk = await loop.sock_recv(self.sock, 65536)
                assert chunk, "the server closed the slow connection"
                buf += chunk
                if b"\r\n\r\n" in buf and buf.startswith(b"HTTP/"):
                    buf = buf.split(b"\r\n\r\n", 1)[1]
                while len(buf) >= 2 and not buf.startswith(b"HTTP/"):
                    size, start = buf[1] & 0x7F, 2
                    if size == 126:
                        size, start = int.from_bytes(buf[2:4], "big"), 4
                    elif size == 127:
                        size, start = int.from_bytes(buf[2:10], "big"), 10
                    if len(buf) < start + size:
                        break
                    frame = json.loads(buf[start:start + size])
                    frame["data"] = json.loads(frame["data"])
                    frames.append(frame)
                    buf = buf[start + size:]
                    if until(frame):
                        return frames

    def close(self) -> None:
        self.sock.close()


def _masked_text_frame(payload: bytes) -> bytes:
    assert len(payload) < 126
    mask = b"\x01\x02\x03\x04"
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.timeout(90)
async def test_slow_consumer_does_not_delay_a_fast_one(daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"pusher.coalesce_ms": 0})
    total = 300
    campaign = await campaign_with_messages(daemon, total)
    channel = f"campaign.{campaign['uuid']}"
    slow = await SlowClient.connect(daemon, channel)
    fast = await Client.connect(daemon)
    await fast.subscribe(channel)
    try:
        # Every ACK is its own webhook and (coalesce_ms = 0) its own push: far more
        # bytes than the slow client's buffers hold.
        for ack in (1, 2, 3):
            for start in range(0, total, 50):
                await asyncio.gather(*(
                    daemon.post_json("/webhooks/webjs", webjs_ack(serialized(n), ack))
                    for n in range(start, start + 50)))
        final = await fast.until(stats_frame(channel, total_read_count=total), timeout=30)
        assert final["data"]["statistics"]["total_delivered_count"] == total

        _, metrics = await daemon.request("GET", "/metrics")
        coalesced = re.search(
            r'campaignd_websocket_frames_total\{outcome="coalesced"\} (\S+)', metrics)
        assert coalesced and float(coalesced.group(1)) > 0, "the slow client never lagged"

        # When it drains, the slow client ends with the exact final state.
        frames = await slow.read_all_frames(stats_frame(channel, total_read_count=total))
        assert frames[0]["event"] == "pusher:connection_established"
        assert frames[-1]["data"]["statistics"]["total_delivered_count"] == total
    finally:
        slow.close()


# --- the broadcaster's coalescing, driven message by message ----------------------------



async def pushes_until_marker(ref: Any, got: list[Push], info: CampaignInfo) -> list[Push]:
    """The broadcaster's pushes since the last call: everything told before is handled
    once a marker snapshot told after it comes back."""
    got.clear()
    ref.tell(Snapshot("1.1", "marker", ((info, {}),)))

    async def marker_back() -> bool:
        return any(p.channels == ("marker",) for p in got)

    await eventually(marker_back)
    return [p for p in got if p.channels != ("marker",)]

async def test_broadcaster_pushes_first_change_at_once_then_the_latest_per_window() -> None:
    """A window so long it never ends by itself: `Flush` ends it, as the loop timer would."""
    got: list[Push] = []
    ref = BroadcasterActor.start(asyncio.get_running_loop(), got.extend, Metrics(),
                                 coalesce_ms=600_000, max_rows=250)
    info = CampaignInfo(1, "c-1", 7, "Promo")

    def changed(delivered: int, row: int) -> CampaignChanged:
        state = (row, 3, 0, 3, None, 1.0, 1.0, 2.0, None, None, None)
        return CampaignChanged(info, {"total_delivered_count": delivered}, (state,))

    async def settled() -> list[Push]:
        return await pushes_until_marker(ref, got, info)

    try:
        for n in range(3):
            ref.tell(changed(n, n))
        first = await settled()
        assert [(p.event, p.channels) for p in first] == [
            (STATS_EVENT, ("campaign.c-1", "private-campaign.c-1", "workspace.7",
                           "private-workspace.7")),
            (ROWS_EVENT, ("campaign.c-1", "private-campaign.c-1"))]
        assert first[0].payload["statistics"] == {"total_delivered_count": 0}
        assert first[0].payload["campaign_id"] == 1

        ref.tell(Flush(1))  # the window ends: the latest state, rows merged
        latest = await settled()
        assert latest[0].payload["statistics"] == {"total_delivered_count": 2}
        assert [r["row"] for r in latest[1].payload["rows"]] == [1, 2]
        assert latest[1].payload["rows"][0]["timestamps"]["delivered"].endswith(".000Z")

        ref.tell(Flush(1))  # a quiet window closes: the next change goes out at once
        assert await settled() == []
        ref.tell(changed(5, 0))
        assert (await settled())[0].payload["statistics"] == {"total_delivered_count": 5}

        ref.tell(changed(6, 1))  # waits in the window ...
        ref.tell(CampaignStatusChanged(info, "completed", "processing", {"x": 1}))
        pushes = await settled()  # ... and goes out before the status change
        assert [p.event for p in pushes] == [STATS_EVENT, ROWS_EVENT, STATUS_EVENT]
        assert pushes[0].payload["statistics"] == {"total_delivered_count": 6}
        assert pushes[2].payload["status"] == "completed"
        # Never older numbers than already pushed; the sender's own fields are kept.
        assert pushes[2].payload["statistics"] == {"x": 1, "total_delivered_count": 6}
        assert pushes[2].payload["previous"] == "processing"

        # The last pushed statistics carried the sender's progress of that moment; the
        # status change's own progress is newer (the campaign has nothing left to send).
        state = (3, 3, 0, 3, None, 1.0, 1.0, 2.0, None, None, None)
        ref.tell(Flush(1))
        ref.tell(CampaignChanged(info, {"total_delivered_count": 7,
                                        "total_remaining_count": 1}, (state,)))
        ref.tell(CampaignStatusChanged(info, "completed", "processing",
                                       {"total_delivered_count": 6,
                                        "total_remaining_count": 0}))
        status = [p for p in await settled() if p.event == STATUS_EVENT][-1]
        assert status.payload["statistics"] == {"total_delivered_count": 7,
                                                "total_remaining_count": 0}
    finally:
        ref.stop()


def test_a_costly_fan_out_widens_the_window_and_a_cheap_one_keeps_coalesce_ms() -> None:
    """Pacing (actors/broadcaster.py): the window is `coalesce_ms`, or PACE_FACTOR times
    what the loop's recent fan-outs took when that is longer, never beyond the cap."""
    pace = Pace()
    loop = asyncio.new_event_loop()
    loop.close()  # never run: the actor is not started, only asked for its window
    actor = BroadcasterActor(loop, lambda pushes: None, Metrics(),
                             coalesce_ms=100, max_rows=250, pace=pace, pace_cap=2.0)
    assert actor.window_seconds() == 0.1  # nobody watching: as configured
    pace.delivered(0.002)  # a few subscribers: a push costs the loop ~2 ms
    assert actor.window_seconds() == 0.1
    pace.delivered(0.2)
    pace.delivered(0.2)  # thousands: 150 ms smoothed, so the window is 3 x that
    assert actor.window_seconds() == pytest.approx(PACE_FACTOR * pace.seconds)
    assert 0.3 < actor.window_seconds() < 2.0
    pace.delivered(60.0)  # a stalled loop never holds the numbers back beyond the cap
    assert actor.window_seconds() == 2.0


async def test_a_change_inside_a_paced_window_waits_for_the_window_to_end() -> None:
    """With coalesce_ms = 1 a second change would go out at once after 1 ms; a fan-out
    that cost the loop a lot holds it in the window until `Flush` (the loop's timer)."""
    got: list[Push] = []
    pace = Pace()
    pace.seconds = 100.0
    ref = BroadcasterActor.start(asyncio.get_running_loop(), got.extend, Metrics(),
                                 coalesce_ms=1, max_rows=250, pace=pace, pace_cap=600.0)
    info = CampaignInfo(1, "c-1", 7, "Promo")

    async def settled() -> list[Push]:
        return await pushes_until_marker(ref, got, info)

    try:
        ref.tell(CampaignChanged(info, {"total_delivered_count": 1}, ()))
        assert [p.payload["statistics"] for p in await settled()] == [
            {"total_delivered_count": 1}]  # the first change: at once
        await asyncio.sleep(0.01)  # far longer than coalesce_ms
        ref.tell(CampaignChanged(info, {"total_delivered_count": 2}, ()))
        assert await settled() == []  # held: the paced window is still open
        ref.tell(Flush(1))
        assert [p.payload["statistics"] for p in await settled()] == [
            {"total_delivered_count": 2}]  # the final state goes out when it ends
    finally:
        ref.stop()



class _TimerLoop:
    """Stands in for the event loop of a broadcaster driven by hand on a clock the test
    moves: hand-overs run at once, timers fire when the test moves the clock past them."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Any]] = []  # (due, callback)
        self.actor: BroadcasterActor | None = None

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
        callback(*args)

    def call_later(self, delay: float, callback: Any) -> None:
        self.timers.append((self.now + delay, callback))

    def move_to(self, now: float) -> None:
        """Fire every timer due by `now`, each at its own time, and hand the actor the
        `Flush` it tells."""
        assert self.actor is not None
        while True:
            due = [t for t in self.timers if t[0] <= now + 1e-9]
            if not due:
                break
            timer = min(due, key=lambda t: t[0])
            self.timers.remove(timer)
            self.now = max(self.now, timer[0])
            timer[1]()
            self.actor.on_receive(self.actor.actor_inbox.get_nowait().message)
        self.now = now


def _paced_broadcaster(pushed: list[Push]) -> tuple[BroadcasterActor, _TimerLoop]:
    """An unstarted broadcaster whose fan-outs cost 2 s (so its windows last 6 s and may
    end quiet after 4 s), coalesce_ms = 1,000. Slow, in round numbers: no float fuzz."""
    pace = Pace()
    pace.seconds = 2.0
    loop = _TimerLoop()
    actor = BroadcasterActor(loop, pushed.extend, Metrics(),  # type: ignore[arg-type]
                             coalesce_ms=1000, max_rows=250, pace=pace, pace_cap=600.0,
                             clock=lambda: loop.now)
    loop.actor = actor
    return actor, loop


def test_a_paced_window_ends_once_the_flood_is_quiet_not_at_its_full_length() -> None:
    """The last ACKs of a flood: the state goes out an interval after the last change
    (and past the floor), not when the 6 s window ends. This is what keeps the
    2,000-subscriber fan-out's final counters within a second on a slow machine."""
    pushed: list[Push] = []
    actor, loop = _paced_broadcaster(pushed)
    info = CampaignInfo(1, "c-1", 7, "Promo")
    assert actor.window_seconds() == pytest.approx(PACE_FACTOR * 2.0)
    actor.on_receive(CampaignChanged(info, {"total_delivered_count": 1}, ()))
    assert len(pushed) == 1  # the first change: at once
    assert loop.timers[0][0] == pytest.approx(QUIET_FLOOR * 2.0)  # first look at 4 s
    for step in range(1, 8):  # the flood: a change every 0.5 s, the last at 3.5 s
        loop.move_to(0.5 * step)
        actor.on_receive(CampaignChanged(info, {"total_delivered_count": 1 + step}, ()))
    loop.move_to(4.4)
    assert len(pushed) == 1  # at 4 s it had been quiet for 0.5 s only
    loop.move_to(4.6)
    assert [p.payload["statistics"] for p in pushed[1:]] == [{"total_delivered_count": 8}]
    loop.move_to(50.0)
    assert len(pushed) == 2  # nothing more to say: the next window closes empty


def test_a_paced_window_under_a_steady_flood_lasts_its_length() -> None:
    """While changes keep coming the pacing holds: one push per 6 s window, however
    often it is looked at. The push's own fan-out holds the loop for 2 s: one change
    committed before it trickles in at 0.125 s, then none until the loop is free again.
    That quiet does not end the window (the floor)."""
    pushed: list[Push] = []
    actor, loop = _paced_broadcaster(pushed)
    info = CampaignInfo(1, "c-1", 7, "Promo")
    actor.on_receive(CampaignChanged(info, {"total_delivered_count": 0}, ()))
    loop.move_to(0.125)
    count = 1
    actor.on_receive(CampaignChanged(info, {"total_delivered_count": count}, ()))
    for step in range(1, 24):  # a change every 0.5 s from 2.5 s on
        loop.move_to(0.5 * step)
        if loop.now > 2.0:
            count += 1
            actor.on_receive(CampaignChanged(info, {"total_delivered_count": count}, ()))
    assert [p.payload["statistics"]["total_delivered_count"] for p in pushed] == [0, 8]
    loop.move_to(20.0)  # the flood is over: its last state, and no more
    assert [p.payload["statistics"]["total_delivered_count"] for p in pushed] == [0, 8, 20]
