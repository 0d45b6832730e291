"""One Pusher WebSocket connection: its channels, its bounded outbox, its writer task.

The fan-out never awaits a client: it puts frames into each subscriber's outbox and
returns. The outbox keeps only the LATEST frame per (channel, event, campaign) key, and
merges row batches by row, so a slow reader gets the latest state when it drains and
its memory stays bounded by what it subscribed to.

Frames are built once per channel as finished RFC 6455 text frames (server frames are
unmasked, and we never negotiate compression) and shared by every subscriber. `flush`
puts all of a connection's waiting frames on its transport in one write (one system
call per connection per push, and a write never blocks). When a client's transport
buffer goes over its high-water mark, asyncio pauses it: the connection stops writing
and its drain task waits for the buffer to empty, while new states coalesce in the
outbox. A slow client thus holds at most one transport buffer plus its outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Any

import orjson
import structlog
from aiohttp import web

from actors.broadcaster import Push
from core.metrics import Metrics

log = structlog.get_logger(__name__)

CLOSE_TIMEOUT = 2.0  # seconds a close may take before the socket is simply dropped
Key = tuple[str, str, str]  # (channel, event, subject)


def frame(event: str, data: Any, channel: str | None = None) -> str:
    """A server frame: `data` is sent as a JSON-encoded string, as the protocol wants."""
    doc: dict[str, Any] = {"event": event}
    if channel is not None:
        doc["channel"] = channel
    doc["data"] = data if isinstance(data, str) else orjson.dumps(data).decode()
    return orjson.dumps(doc).decode()


def error_frame(code: int | None, message: str) -> str:
    return frame("pusher:error", {"code": code, "message": message})


def ws_frame(text: str) -> bytes:
    """A complete, unmasked WebSocket text frame (RFC 6455 5.2) carrying `text`."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


class RowsEntry:
    """A row batch waiting in an outbox; later batches merge into it row by row."""

    __slots__ = ("channel", "data", "push", "resync", "rows")

    def __init__(self, push: Push, channel: str, data: bytes | None) -> None:
        self.push = push
        self.channel = channel
        self.rows: dict[int, dict[str, Any]] = push.rows or {}
        self.resync = bool(push.payload.get("resync"))
        self.data = data  # the shared frame while nothing was merged in

    def merge(self, push: Push, max_rows: int) -> RowsEntry:
        merged = RowsEntry(push, self.channel, None)
        merged.resync = self.resync or merged.resync
        if not merged.resync:
            merged.rows = {**self.rows, **(push.rows or {})}  # copy: the dicts are shared
            if len(merged.rows) > max_rows:
                merged.rows, merged.resync = {}, True
        else:
            merged.rows = {}
        return merged

    def encode(self) -> bytes:
        if self.data is None:
            payload = {**self.push.payload,
                       "rows": [self.rows[r] for r in sorted(self.rows)],
                       "resync": self.resync}
            self.data = ws_frame(frame(self.push.event, payload, self.channel))
        return self.data


class Connection:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request, socket_id: str,
                 metrics: Metrics, max_rows: int, now: float) -> None:
        self.ws = ws
        self.socket_id = socket_id
        self.remote = True  # set by the hub: came through a proxy or from another host
        self.transport = request.transport
        self.stream = request.writer
        self.metrics = metrics
        # the labelled counters, looked up once (labels() per frame was ~6 % of the loop
        # in a 2,000-subscriber fan-out)
        self._sent = metrics.ws_frames.labels("sent")
        self._coalesced = metrics.ws_frames.labels("coalesced")
        self.max_rows = max_rows
        self.channels: set[str] = set()
        self.outbox: OrderedDict[Key, bytes | RowsEntry] = OrderedDict()
        self.wake = asyncio.Event()
        self.last_seen = now
        self.ping_sent: float | None = None
        self.closing = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self.draining = False  # the transport is paused: wait before writing more
        self.writer = asyncio.get_running_loop().create_task(self._drain_loop())

    # --- the outbox -------------------------------------------------------------------

    def put(self, key: Key, data: bytes) -> None:
        """Queue a frame (see `ws_frame`); a frame waiting under the same key is replaced.

        Nothing is written until `flush`, so a fan-out can fill every outbox first.
        """
        if self.closing:
            return
        if self.outbox.pop(key, None) is not None:
            self._coalesced.inc()
        self.outbox[key] = data

    def put_rows(self, key: Key, entry: RowsEntry) -> None:
        """Queue a row batch; one waiting under the same key absorbs it, row by row."""
        if self.closing:
            return
        waiting = self.outbox.pop(key, None)
        if isinstance(waiting, RowsEntry):
            self._coalesced.inc()
            entry = waiting.merge(entry.push, self.max_rows)
        self.outbox[key] = entry

    def send_control(self, event: str, data: Any, channel: str | None = None,
                     per_channel: bool = True) -> None:
        """Protocol frames (pong, errors, subscription replies): latest per kind too.

        `per_channel=False` keeps one frame of this kind whatever the channel, for
        replies to channels the client does not hold (bounded even if it never reads).
        """
        key = ((channel or "") if per_channel else "", event, "")
        self.put(key, ws_frame(frame(event, data, channel)))
        self.flush()

    def flush(self) -> None:
        """Write everything waiting in one go, unless this client's buffer is full."""
        outbox = self.outbox
        if self.draining or not outbox or self.closing:
            return
        transport = self.transport
        if self.ws.closed or transport is None or transport.is_closing():
            outbox.clear()
            return
        if len(outbox) == 1:  # the usual case in a fan-out: the shared frame as it is
            _, entry = outbox.popitem()
            data = entry if isinstance(entry, bytes) else entry.encode()
            frames = 1
        else:
            chunks = [e if isinstance(e, bytes) else e.encode() for e in outbox.values()]
            outbox.clear()
            data, frames = b"".join(chunks), len(chunks)
        try:
            transport.write(data)
        except Exception as exc:  # the client went away
            log.debug("pusher.write_failed", socket_id=self.socket_id, error=str(exc))
            self.abort()
            return
        self._sent.inc(frames)
        if transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
            self.draining = True  # asyncio paused the transport: wait for it
            self.wake.set()

    async def _drain_loop(self) -> None:
        """Wait for a paused transport to drain, then write what waited meanwhile."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                await self.stream.drain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("pusher.drain_failed", socket_id=self.socket_id, error=str(exc))
                self.abort()
                return
            self.draining = False
            self.flush()

    # --- liveness and closing ---------------------------------------------------------

    def seen(self, now: float) -> None:
        self.last_seen = now
        self.ping_sent = None

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self, code: int, reason: str) -> None:
        """Close with a Pusher close code; a client that does not answer is dropped."""
        if self.closing:
            return
        self.closing = True
        self.outbox.clear()
        self.writer.cancel()
        for task in list(self.tasks):
            task.cancel()
        try:
            await asyncio.wait_for(
                self.ws.close(code=code, message=reason.encode(), drain=False), CLOSE_TIMEOUT)
        except (TimeoutError, ConnectionError, RuntimeError):
            self.abort()
        except asyncio.CancelledError:
            self.abort()
            raise

    def abort(self) -> None:
        self.closing = True
        self.outbox.clear()
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.abort()
