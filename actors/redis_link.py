"""This node's link to Redis pub/sub: one channel every node of the cluster publishes to
and reads (as Laravel Reverb scales), through redis-py's asyncio client.

The link lives on the event loop and never makes anyone wait for Redis: `publish`
only appends to a list (a writer task sends it, pipelined), and a node whose link is
down goes on serving its own clients and every webhook. The link reconnects by itself
with a doubling backoff (0.1 s up to cluster.reconnect_max, with jitter); each time it
is up again it calls `on_up`, so the owner can say hello and ask for what it missed:
pub/sub is at most once and keeps nothing (docs/cluster.md). Its state is a gauge
(`campaignd_cluster_redis_up`) and one log line per change.

redis is imported when the link starts, so a single node never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog
from prometheus_client import Counter, Gauge

from core.metrics import Metrics

log = structlog.get_logger(__name__)

MAX_QUEUED = 10_000  # messages waiting for the writer; beyond, the oldest are dropped
KEEPALIVE = 5.0  # seconds of silence before the reader pings Redis
BATCH = 256  # messages per pipelined round trip


def masked_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class LinkMetrics:
    """The link's metrics, registered only on a cluster node."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.up = Gauge("campaignd_cluster_redis_up", "1 while this node's link to Redis "
                        "(live push across nodes) is up, else 0.", registry=r)
        self.connects = Counter("campaignd_cluster_redis_connects", "Times the link to Redis "
                                "was established (the first time and after each outage).",
                                registry=r)
        self.messages = Counter("campaignd_cluster_messages", "Cluster messages by direction "
                                "(published; received; dropped: not published because Redis "
                                "was down or slow) and type (push, hello, state).",
                                ["direction", "type"], registry=r)


class RedisLink:
    """Publish to and read from one Redis pub/sub channel; a runtime extension."""

    def __init__(self, url: str, channel: str, metrics: LinkMetrics,
                 on_message: Callable[[bytes], None], on_up: Callable[[], None],
                 reconnect_max: float = 5.0) -> None:
        self.url = url
        self.channel = channel
        self.metrics = metrics
        self.on_message = on_message
        self.on_up = on_up
        self.reconnect_max = reconnect_max
        self.up = False
        self.down_since: float | None = time.monotonic()
        self._queue: list[tuple[bytes, str]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background: a daemon starts even with Redis down."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        # A cancellation can be swallowed while a connection closes (asyncio.wait_for in
        # Python 3.11, client cleanup): cancel until the task is really done.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        self._set_up(False, None)

    # --- publishing -------------------------------------------------------------------

    def publish(self, data: bytes, kind: str) -> bool:
        """Queue a message for every node; False (and counted) while the link is down."""
        if not self.up:
            self.metrics.messages.labels("dropped", kind).inc()
            return False
        if len(self._queue) >= MAX_QUEUED:  # Redis is slower than we publish: the newest win
            _, old_kind = self._queue.pop(0)
            self.metrics.messages.labels("dropped", old_kind).inc()
        self._queue.append((data, kind))
        self._wake.set()
        return True

    # --- the connection -----------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.1
        failures = 0
        while not self._stopping:
            client = redis_client(self.url, socket_timeout=10.0)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                first = await pubsub.get_message(timeout=5.0)
                if not first or first.get("type") != "subscribe":
                    raise ConnectionError(f"no subscribe confirmation from Redis ({first!r})")
                failures = 0
                delay = 0.1
                self._set_up(True, None)
                try:
                    self.on_up()
                except Exception:
                    log.exception("cluster.on_up_failed")
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._read(pubsub))
                    group.create_task(self._write(client))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an ExceptionGroup from the task group included
                failures += 1
                self._set_up(False, why(exc), failures)
            finally:
                self._queue.clear()  # at most once: a node that missed them asks again
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 1.0)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.aclose(), 1.0)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.reconnect_max)

    async def _read(self, pubsub: Any) -> None:
        """Hand every message to on_message; ping when quiet, give up when Redis is mute."""
        silent_since = time.monotonic()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=KEEPALIVE)
            now = time.monotonic()
            if message is None:
                if pinged and now - silent_since > 3 * KEEPALIVE:
                    raise TimeoutError(f"Redis did not answer a ping for {3 * KEEPALIVE:g} s")
                if not pinged:
                    await pubsub.ping()
                    pinged = True
                continue
            silent_since, pinged = now, False
            if message.get("type") != "message":
                continue  # pong, subscribe confirmations
            try:
                self.on_message(message["data"])
            except Exception:  # one bad message must not drop the link
                log.exception("cluster.message_failed")

    async def _write(self, client: Any) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
                async with client.pipeline(transaction=False) as pipe:
                    for data, _ in batch:
                        pipe.publish(self.channel, data)
                    await pipe.execute()
                for _, kind in batch:
                    self.metrics.messages.labels("published", kind).inc()

    def _set_up(self, up: bool, error: str | None, attempt: int = 0) -> None:
        if up == self.up:
            # Down from the start (first attempt), or still down: a reminder now and then.
            if not up and (attempt == 1 or (attempt and attempt % 20 == 0)):
                log.warning("cluster.redis_down" if attempt == 1 else "cluster.redis_still_down",
                            redis=masked_url(self.url), attempts=attempt, error=error,
                            note="live push stays on this node until Redis is back; "
                                 "webhooks and the API are not affected")
            return
        self.up = up
        self.metrics.up.set(1 if up else 0)
        if up:
            self.metrics.connects.inc()
            down = time.monotonic() - self.down_since if self.down_since else None
            self.down_since = None
            log.info("cluster.redis_up", redis=masked_url(self.url), channel=self.channel,
                     down_seconds=round(down, 3) if down is not None else None)
        else:
            self.down_since = time.monotonic()
            if error is not None:
                log.warning("cluster.redis_down", redis=masked_url(self.url), error=error,
                            note="live push stays on this node until Redis is back; "
                                 "webhooks and the API are not affected")


def redis_client(url: str, socket_timeout: float) -> Any:
    """A client for one connection attempt: no retries of its own (the caller reconnects
    with backoff and says so), a 2 s connect time-out, keepalive. redis-py is imported
    here, so a single node never loads it."""
    import redis.asyncio as aioredis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2.0,
                                   socket_timeout=socket_timeout, socket_keepalive=True)


def why(exc: BaseException) -> str:
    """A connection error in a few words (the first of a task group's), for the log."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
