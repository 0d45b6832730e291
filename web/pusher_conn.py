"""One Pusher WebSocket connection: its channels, its bounded outbox, its writer task.

The fan-out never awaits a client: it puts frames into each subscriber's outbox and
returns. The outbox keeps only the LATEST frame per (channel, event, campaign) key, and
merges row batches by row, so a slow reader gets the latest state when it drains and
its memory stays bounded by what it subscribed to. One writer task per connection
drains the outbox; only it writes to the socket.
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
from daemon.metrics import Metrics

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


class RowsEntry:
    """A row batch waiting in an outbox; later batches merge into it row by row."""

    __slots__ = ("channel", "push", "resync", "rows", "text")

    def __init__(self, push: Push, channel: str, text: str | None) -> None:
        self.push = push
        self.channel = channel
        self.rows: dict[int, dict[str, Any]] = push.rows or {}
        self.resync = bool(push.payload.get("resync"))
        self.text = text  # the shared encoding while nothing was merged in

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

    def encode(self) -> str:
        if self.text is None:
            payload = {**self.push.payload,
                       "rows": [self.rows[r] for r in sorted(self.rows)],
                       "resync": self.resync}
            self.text = frame(self.push.event, payload, self.channel)
        return self.text


class Connection:
    def __init__(self, ws: web.WebSocketResponse, socket_id: str, transport: Any,
                 metrics: Metrics, max_rows: int, now: float) -> None:
        self.ws = ws
        self.socket_id = socket_id
        self.transport = transport
        self.metrics = metrics
        self.max_rows = max_rows
        self.channels: set[str] = set()
        self.outbox: OrderedDict[Key, str | RowsEntry] = OrderedDict()
        self.wake = asyncio.Event()
        self.last_seen = now
        self.ping_sent: float | None = None
        self.closing = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self.writer = asyncio.get_running_loop().create_task(self._write_loop())

    # --- the outbox -------------------------------------------------------------------

    def put(self, key: Key, text: str) -> None:
        """Queue a frame; a frame waiting under the same key is replaced."""
        if self.closing:
            return
        if self.outbox.pop(key, None) is not None:
            self.metrics.ws_frames.labels("coalesced").inc()
        self.outbox[key] = text
        self.wake.set()

    def put_rows(self, key: Key, push: Push, channel: str, text: str) -> None:
        if self.closing:
            return
        waiting = self.outbox.pop(key, None)
        if isinstance(waiting, RowsEntry):
            self.metrics.ws_frames.labels("coalesced").inc()
            self.outbox[key] = waiting.merge(push, self.max_rows)
        else:
            self.outbox[key] = RowsEntry(push, channel, text)
        self.wake.set()

    def send_control(self, event: str, data: Any, channel: str | None = None) -> None:
        """Protocol frames (pong, errors, subscription replies): latest per kind too."""
        self.put((channel or "", event, ""), frame(event, data, channel))

    async def _write_loop(self) -> None:
        ws, outbox, sent = self.ws, self.outbox, self.metrics.ws_frames.labels("sent")
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while outbox:
                    _, entry = outbox.popitem(last=False)
                    text = entry if isinstance(entry, str) else entry.encode()
                    await ws.send_str(text)  # waits only when THIS client is slow
                    sent.inc()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client went away mid-write
            log.debug("pusher.write_failed", socket_id=self.socket_id, error=str(exc))
            self.abort()

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
