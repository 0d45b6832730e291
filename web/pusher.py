"""Pusher Channels protocol v7 at `/app/{key}`, and `POST /broadcasting/auth` (SPEC 3.3).

The `Hub` lives on the event loop: it owns the connections and who subscribed to what,
and receives finished pushes from the broadcaster actor (actors/broadcaster.py) through
`loop.call_soon_threadsafe`. Fan-out only fills per-connection outboxes (see
web/pusher_conn.py), so no client can delay another. docs/live.md is the user's view.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from typing import Any, Protocol

import orjson
import structlog
from aiohttp import WSMsgType, web

from actors.broadcaster import (
    ROWS_EVENT,
    STATS_EVENT,
    Broadcaster,
    Pace,
    Push,
    Snapshot,
    SnapshotReply,
)
from actors.messages import GetStatistics
from actors.runtime import Runtime
from core.config import Config
from domain.records import CampaignInfo
from web.auth import Guard
from web.cluster import PEERS
from web.common import UUID_RE, present_campaign, read_json_object
from web.errors import ApiError, json_response
from web.keys import GUARD, RUNTIME
from web.pusher_conn import Connection, RowsEntry, error_frame, frame, ws_frame

log = structlog.get_logger(__name__)

CHANNEL_RE = re.compile(
    r"^(private-)?(?:campaign\.(?P<uuid>[A-Za-z0-9][A-Za-z0-9_-]{0,63})"
    r"|workspace\.(?P<ws>[0-9]{1,15}))$")
SOCKET_ID_RE = re.compile(r"^\d{1,20}\.\d{1,20}$")
WORKSPACE_SNAPSHOT_CAMPAIGNS = 20  # campaigns whose state a workspace subscriber gets
# pusher:error codes (the connection stays open) and close codes.
ERR_UNAUTHORIZED = 4009
ERR_REFUSED = 4300
CLOSE_UNKNOWN_KEY = 4001
CLOSE_PROTOCOL = 4007
CLOSE_OVER_CAPACITY = 4100
CLOSE_RECONNECT = 4200
CLOSE_PONG = 4201


def sign(config: Config, socket_id: str, channel: str) -> str:
    """`key:hex(HMAC-SHA256(secret, socket_id:channel))`, as pusher-js expects."""
    digest = hmac.new(config["pusher.app_secret"].encode(),
                      f"{socket_id}:{channel}".encode(), hashlib.sha256).hexdigest()
    return f"{config['pusher.app_key']}:{digest}"


class ClusterPort(Protocol):
    """Live push across nodes (web/cluster_push.py), set on a cluster node only."""

    def published(self, pushes: list[Push]) -> None: ...

    def want_campaign(self, uuid: str) -> None: ...

    def want_workspace(self, workspace: int) -> None: ...


class Hub:
    def __init__(self, rt: Runtime, guard: Guard) -> None:
        self.rt = rt
        self.guard = guard
        self.config = rt.config
        self.metrics = rt.metrics
        self.connections: dict[str, Connection] = {}
        self.subscribers: dict[str, set[Connection]] = {}
        self.cluster: ClusterPort | None = None
        self.pace = Pace()  # what fan-outs cost the loop: the broadcaster paces by it
        self.broadcaster = Broadcaster(self.deliver_local, rt.bus, rt.metrics,
                                       rt.config["pusher.coalesce_ms"],
                                       rt.config["pusher.max_rows_per_event"], self.pace)
        self.closing = False
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # (socket id, channel) whose current state is being fetched -> fetch again when
        # done: a client re-subscribing in a loop gets one state request at a time (not a
        # task and a database read per frame), and still the state after its last one.
        self._state_pending: dict[tuple[str, str], bool] = {}

    # --- fan-out (on the loop, called by the broadcaster) -----------------------------

    def watches_rows(self, uuid: str) -> bool:
        """Whether a client here watches the campaign's rows (read from actor threads:
        one dict lookup each, safe under the GIL)."""
        subscribers = self.subscribers
        return f"campaign.{uuid}" in subscribers or f"private-campaign.{uuid}" in subscribers

    def deliver_local(self, pushes: list[Push]) -> None:
        """This node's pushes: to its own subscribers first, then to the other nodes."""
        self.deliver(pushes)
        if self.cluster is not None:
            self.cluster.published(pushes)

    def deliver(self, pushes: list[Push]) -> None:
        started = time.perf_counter()
        broadcast = False
        touched: set[Connection] = set()
        for push in pushes:
            if push.target is not None:
                conn = self.connections.get(push.target)
                if conn is not None and push.channels[0] in conn.channels:
                    self._put(conn, push, push.channels[0])
                    touched.add(conn)
                continue
            for channel in push.channels:
                subs = self.subscribers.get(channel)
                if not subs:
                    continue
                # Built once per channel, shared by every subscriber's outbox.
                data = ws_frame(frame(push.event, push.payload, channel))
                key = (channel, push.event, push.subject)
                if push.rows is None:
                    for conn in subs:
                        conn.put(key, data)
                else:
                    entry = RowsEntry(push, channel, data)
                    for conn in subs:
                        conn.put_rows(key, entry)
                touched.update(subs)
                broadcast = True
        for conn in touched:  # one write per connection for all of these pushes
            conn.flush()
        if broadcast:  # a state sent to one new subscriber says nothing of the fan-out
            self.pace.delivered(time.perf_counter() - started)

    def _put(self, conn: Connection, push: Push, channel: str) -> None:
        data = ws_frame(frame(push.event, push.payload, channel))
        key = (channel, push.event, push.subject)
        if push.rows is None:
            conn.put(key, data)
        else:
            conn.put_rows(key, RowsEntry(push, channel, data))

    # --- connections ------------------------------------------------------------------

    def add(self, ws: web.WebSocketResponse, request: web.Request) -> Connection:
        socket_id = f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**9)}"
        while socket_id in self.connections:
            socket_id = f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**9)}"
        conn = Connection(ws, request, socket_id, self.metrics,
                          self.config["pusher.max_rows_per_event"], _now())
        conn.remote = self.guard.is_remote(request)
        self.connections[socket_id] = conn
        self.metrics.ws_connections.inc()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return conn

    def remove(self, conn: Connection) -> None:
        if self.connections.pop(conn.socket_id, None) is None:
            return
        self.metrics.ws_connections.dec()
        for channel in conn.channels:
            self._unsubscribe(conn, channel)
        conn.channels.clear()
        conn.closing = True
        conn.writer.cancel()
        for task in list(conn.tasks):
            task.cancel()

    async def close_all(self, code: int, reason: str) -> None:
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        conns = list(self.connections.values())
        if conns:
            log.info("pusher.closing_connections", connections=len(conns), code=code)
            await asyncio.gather(*(c.close(code, reason) for c in conns),
                                 return_exceptions=True)

    async def _sweep(self) -> None:
        """Ping clients silent for activity_timeout; close those that never answer."""
        activity = float(self.config["pusher.activity_timeout"])
        pong = float(self.config["pusher.pong_timeout"])
        tick = max(0.05, min(1.0, activity / 4, pong / 4))
        while self.connections:
            await asyncio.sleep(tick)
            now = _now()
            for conn in list(self.connections.values()):
                if conn.closing:
                    continue
                if conn.ping_sent is not None:
                    if now - conn.ping_sent >= pong:
                        self._background(conn.close(CLOSE_PONG, "Pong reply not received"))
                elif now - conn.last_seen >= activity:
                    conn.ping_sent = now
                    conn.send_control("pusher:ping", {})

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- client frames ----------------------------------------------------------------

    def handle(self, conn: Connection, text: str) -> None:
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            conn.send_control("pusher:error", {"code": ERR_REFUSED,
                                               "message": "a frame must be a JSON object"})
            return
        event = doc.get("event") if isinstance(doc, dict) else None
        if not isinstance(event, str):
            conn.send_control("pusher:error", {"code": ERR_REFUSED,
                                               "message": "a frame needs an 'event' string"})
            return
        data = doc.get("data")
        if isinstance(data, str):  # some clients encode data twice; accept both
            try:
                data = orjson.loads(data)
            except orjson.JSONDecodeError:
                data = {}
        data = data if isinstance(data, dict) else {}
        if event == "pusher:ping":
            conn.send_control("pusher:pong", {})
        elif event == "pusher:pong":
            pass  # already counted as liveness
        elif event == "pusher:subscribe":
            self._subscribe(conn, data)
        elif event == "pusher:unsubscribe":
            channel = data.get("channel")
            if isinstance(channel, str) and channel in conn.channels:
                conn.channels.discard(channel)
                self._unsubscribe(conn, channel)
        elif event.startswith("client-"):
            conn.send_control("pusher:error", {
                "code": ERR_REFUSED, "message": "client events are not supported"})
        else:
            conn.send_control("pusher:error", {"code": ERR_REFUSED,
                                               "message": f"unknown event {event[:50]!r}"})

    def _refuse(self, conn: Connection, code: int, message: str, channel: str | None = None
                ) -> None:
        """`pusher:error` as Reverb sends it; for a channel also `pusher:subscription_error`
        on it, which pusher-js hands to the channel's error callbacks (Echo's `.error()`)."""
        conn.send_control("pusher:error", {"code": code, "message": message})
        if channel is not None:
            status = 403 if code == ERR_UNAUTHORIZED else 400
            conn.send_control("pusher:subscription_error",
                              {"type": "AuthError" if status == 403 else "SubscriptionError",
                               "error": message, "status": status}, channel,
                              per_channel=False)

    def _subscribe(self, conn: Connection, data: dict[str, Any]) -> None:
        channel = data.get("channel")
        if not isinstance(channel, str) or not channel:
            self._refuse(conn, ERR_REFUSED, "pusher:subscribe needs a channel")
            return
        match = CHANNEL_RE.match(channel)
        if match is None:
            self._refuse(conn, ERR_REFUSED, f"unknown channel {channel[:100]!r}: use "
                         "campaign.{uuid} or workspace.{id}, optionally private-",
                         channel[:200])
            return
        private = channel.startswith("private-")
        if not private and not self.guard.allow_public_channels:
            self._refuse(conn, ERR_UNAUTHORIZED, f"public channels are disabled: subscribe "
                         f"to private-{channel} with an auth signature", channel)
            return
        if not private and conn.remote and self.guard.tokens.open_:
            advice = ("public channels through a proxy or from another host need API "
                      "tokens: set api.tokens and subscribe to private- channels")
            self.guard.warn_once("api.tokens (public channels)", advice)
            self._refuse(conn, ERR_UNAUTHORIZED, advice, channel)
            return
        if private and conn.remote and self.guard.pusher_secret_is_default:
            advice = ("private channels through a proxy or from another host need your own "
                      "pusher.app_secret (the built-in one is public)")
            self.guard.warn_once("pusher.app_secret", advice)
            self._refuse(conn, ERR_UNAUTHORIZED, advice, channel)
            return
        if private:
            auth = data.get("auth")
            expected = sign(self.config, conn.socket_id, channel)
            if not isinstance(auth, str) or not hmac.compare_digest(
                    auth.encode(), expected.encode()):
                self._refuse(conn, ERR_UNAUTHORIZED,
                             f"Connection is unauthorized: invalid auth for {channel}", channel)
                return
        if channel not in conn.channels:
            if len(conn.channels) >= self.config["pusher.max_subscriptions"]:
                self._refuse(conn, ERR_REFUSED, "too many subscriptions on one connection "
                             f"(limit {self.config['pusher.max_subscriptions']})", channel)
                return
            conn.channels.add(channel)
            self.subscribers.setdefault(channel, set()).add(conn)
        conn.send_control("pusher_internal:subscription_succeeded", {}, channel)
        pending = (conn.socket_id, channel)
        if pending in self._state_pending:
            self._state_pending[pending] = True
            return
        self._state_pending[pending] = False
        conn.spawn(self._state(conn, channel, match))

    async def _state(self, conn: Connection, channel: str, match: re.Match[str]) -> None:
        """The channel's current state; fetched again if the client re-subscribed meanwhile."""
        pending = (conn.socket_id, channel)
        try:
            while True:
                self._state_pending[pending] = False
                if match.group("uuid"):
                    await self._campaign_state(conn, channel, match.group("uuid"))
                else:
                    await self._workspace_state(conn, channel, int(match.group("ws")))
                if not self._state_pending.get(pending):
                    return
        finally:
            self._state_pending.pop(pending, None)

    def _unsubscribe(self, conn: Connection, channel: str) -> None:
        subs = self.subscribers.get(channel)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.subscribers[channel]
        # Whatever waited for this channel is no longer wanted.
        for key in [k for k in conn.outbox if k[0] == channel]:
            del conn.outbox[key]

    # --- state on subscribe (through the broadcaster, ordered with live pushes) -------

    async def _campaign_state(self, conn: Connection, channel: str, uuid: str) -> None:
        rt = self.rt
        try:
            campaign = await rt.campaigns.get(uuid)
            if campaign is None and self.cluster is not None and not conn.closing:
                # Another node's campaign (or none): its node pushes its current state
                # to every subscriber, through Redis, in order with its live pushes.
                self.cluster.want_campaign(uuid)
                return
            if campaign is None or conn.closing:
                return
            info = CampaignInfo(campaign["no"], uuid, campaign["workspace_id"],
                                campaign["name"])
            target, tell = conn.socket_id, self.broadcaster.tell

            def forward(stats: dict[str, Any]) -> None:  # in the campaign actor's thread
                tell(Snapshot(target, channel, ((info, stats),)))

            await rt.ask(lambda r: GetStatistics(
                info.no, SnapshotReply(r.loop, r.future, forward)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("pusher.state_failed", channel=channel, error=repr(exc))

    async def _workspace_state(self, conn: Connection, channel: str, workspace: int) -> None:
        rt = self.rt
        if self.cluster is not None:
            self.cluster.want_workspace(workspace)  # the other nodes' campaigns in it
        try:
            rows = await rt.campaigns.list(workspace, None, None, WORKSPACE_SNAPSHOT_CAMPAIGNS)
            if conn.closing or not rows:
                return
            items = tuple(
                (CampaignInfo(r["no"], r["uuid"], r["workspace_id"], r["name"]),
                 present_campaign(r, rt.board.get(r["no"]))["statistics"])
                for r in reversed(rows))
            self.broadcaster.tell(Snapshot(conn.socket_id, channel, items))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("pusher.state_failed", channel=channel, error=repr(exc))


def _now() -> float:
    return asyncio.get_running_loop().time()


HUB: web.AppKey[Hub] = web.AppKey("pusher_hub", Hub)


# --- routes ------------------------------------------------------------------------------


async def websocket(request: web.Request) -> web.StreamResponse:
    rt: Runtime = request.app[RUNTIME]
    hub = request.app[HUB]
    config = rt.config
    ws = web.WebSocketResponse(max_msg_size=config["pusher.max_frame_bytes"],
                               compress=False, writer_limit=32 * 1024)
    await ws.prepare(request)
    if not hmac.compare_digest(request.match_info["key"].encode(),
                               config["pusher.app_key"].encode()):
        await ws.send_str(error_frame(CLOSE_UNKNOWN_KEY, "Application does not exist"))
        await ws.close(code=CLOSE_UNKNOWN_KEY, message=b"Application does not exist")
        return ws
    protocol = request.query.get("protocol", "7")
    if protocol not in ("5", "6", "7"):
        await ws.send_str(error_frame(CLOSE_PROTOCOL, "Unsupported protocol version"))
        await ws.close(code=CLOSE_PROTOCOL, message=b"Unsupported protocol version")
        return ws
    if hub.closing:
        await ws.close(code=CLOSE_RECONNECT, message=b"Server shutting down")
        return ws
    if len(hub.connections) >= config["pusher.max_connections"]:
        await ws.send_str(error_frame(CLOSE_OVER_CAPACITY, "Over capacity"))
        await ws.close(code=CLOSE_OVER_CAPACITY, message=b"Over capacity")
        return ws
    conn = hub.add(ws, request)
    conn.send_control("pusher:connection_established", {
        "socket_id": conn.socket_id, "activity_timeout": config["pusher.activity_timeout"]})
    try:
        async for msg in ws:
            conn.seen(_now())
            if msg.type is WSMsgType.TEXT:
                try:
                    hub.handle(conn, msg.data)
                except Exception:  # a bug must not drop the client's other channels
                    log.exception("pusher.frame_failed", socket_id=conn.socket_id)
                    conn.send_control("pusher:error", {"code": ERR_REFUSED,
                                                       "message": "the frame could not be "
                                                       "handled; it is logged"})
            elif msg.type is WSMsgType.BINARY:
                conn.send_control("pusher:error", {"code": ERR_REFUSED,
                                                   "message": "frames must be text (JSON)"})
    finally:
        hub.remove(conn)
    return ws


async def broadcasting_auth(request: web.Request) -> web.Response:
    """Sign a private channel for a holder of an API token of that workspace."""
    rt: Runtime = request.app[RUNTIME]
    principal = request.app[GUARD].api_principal(request)
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        fields: dict[str, Any] = {k: form.get(k) for k in ("socket_id", "channel_name")}
    else:
        fields = await read_json_object(request)
    socket_id, channel = fields.get("socket_id"), fields.get("channel_name")
    if not isinstance(socket_id, str) or not SOCKET_ID_RE.match(socket_id):
        raise ApiError(422, "invalid_field", "socket_id must look like 123.456 (the socket "
                       "id of the connection)", "socket_id")
    if not isinstance(channel, str) or not channel:
        raise ApiError(422, "invalid_field", "channel_name is required", "channel_name")
    match = CHANNEL_RE.match(channel)
    if match is None or not channel.startswith("private-"):
        raise ApiError(403, "forbidden", "only private-campaign.{uuid} and "
                       "private-workspace.{id} channels are signed here", "channel_name")
    if match.group("ws"):
        allowed = principal.sees(int(match.group("ws")))
    else:
        uuid = match.group("uuid")
        campaign = await rt.campaigns.get(uuid) if UUID_RE.match(uuid) else None
        allowed = campaign is not None and principal.sees(campaign["workspace_id"])
        if campaign is None and rt.config["cluster.node"] and UUID_RE.match(uuid):
            # Another node's campaign (its live pushes reach this node through Redis):
            # that node says whether this token may see it.
            allowed = await request.app[PEERS].sees(request, uuid)
    if not allowed:  # the same answer for another workspace's and a missing campaign
        raise ApiError(403, "forbidden", f"this token may not subscribe to {channel}",
                       "channel_name")
    return json_response({"auth": sign(rt.config, socket_id, channel)})


def setup(app: web.Application, rt: Runtime) -> None:
    """Routes, the broadcaster extension, and closing every socket with 4200 on shutdown."""
    hub = Hub(rt, app[GUARD])
    app[HUB] = hub
    if rt.config["pusher.allow_public_channels"] and not rt.config.on_loopback:
        log.warning("pusher.public_channels_open", host=rt.config["server.host"],
                    hint="anyone who reaches this port can watch workspace.{id} and "
                         "campaign.{uuid}; set pusher.allow_public_channels = false to "
                         "require private- channels")
    rt.extensions.append(hub.broadcaster)
    if not rt.config["cluster.node"]:  # on a cluster, other nodes' clients may watch
        rt.rows_watched = hub.watches_rows
    app.router.add_get("/app/{key}", websocket)
    app.router.add_post("/broadcasting/auth", broadcasting_auth)

    async def on_shutdown(app: web.Application) -> None:
        await hub.close_all(CLOSE_RECONNECT, "Server shutting down")

    app.on_shutdown.append(on_shutdown)


__all__ = ["HUB", "ROWS_EVENT", "STATS_EVENT", "Hub", "setup", "sign"]
