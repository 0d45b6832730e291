"""Opt-outs shared by every node of a cluster (SPEC 6.4 across the nodes of SPEC 11).

Each node keeps the suppression list of the workspaces it serves, but a workspace's
numbers may be spread over several nodes (they are sharded by gateway account), and a
STOP that reaches one node must keep every node from messaging that number. So every
stop / start fact a node lists is handed to the others through a Redis stream
(`{cluster.channel}:stops`):

- out: the facts wait in `stops_outbox` (queued by the transaction that lists them,
  store/stops_outbox.py) until Redis took them, so a fact listed while Redis is down, or
  just before a kill -9, is shared when Redis is back;
- in: each node reads the stream from where it stopped (its cursor in `meta`), and
  journals the other nodes' facts as operator facts (`via` MANUAL, id
  `cluster/{node}/{workspace}/{fact}`, source `{their source}@{node}`): from there they
  are a fact like any other, applied by the ingest actor, replayed after a crash, and
  decided with the local ones by the same rule (the latest fact wins). A fact read twice
  (a crash between journaling it and moving the cursor) is the same fact: counted once.
  Facts from another node are not shared again, so nothing loops.
- withdrawn: a fact no longer listed in a workspace on its node (its reply was credited
  to another workspace's message after all) is queued as `WITHDRAWN` (migration 0023),
  and the others journal it as the same operator fact listed nowhere, which removes it.

A stream keeps what a node missed while it was down or still to be started, unlike
pub/sub; the stream is capped (`MAX_STREAM` entries, about 100 bytes each), so a node
that was away for longer than that many stops should be given the list through the
suppression API (docs/cluster.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import orjson
import structlog

from actors.redis_link import redis_client, why
from domain.inbound import MANUAL, START, STOP, InboundEvent
from store.db import StoreUnavailable
from store.journal import Journal
from store.migrations import WITHDRAWN
from store.stops_outbox import SharedFact, StopsOutbox

log = structlog.get_logger(__name__)

BATCH = 500
MAX_STREAM = 1_000_000
PUBLISH_EVERY = 0.5  # seconds between looks at the outbox when it was empty
READ_BLOCK_MS = 2000
PREFIX = "cluster/"


def stream_key(channel: str) -> str:
    return f"{channel}:stops"


def encode(node: str, fact: SharedFact) -> bytes:
    return orjson.dumps({"node": node, **fact._asdict()})


def decode(node: str, data: Any) -> tuple[str, InboundEvent] | None:
    """Another node's fact as the operator fact this node journals, with its journal
    source (`api@n1`); None for this node's own, and for anything that is not a
    well-formed fact (logged, skipped)."""
    try:
        doc = orjson.loads(data)
        origin, fact = doc["node"], SharedFact(**{k: doc[k] for k in SharedFact._fields})
    except (orjson.JSONDecodeError, KeyError, TypeError):
        log.warning("cluster.stop_unreadable", data=repr(data)[:200])
        return None
    if origin == node:
        return None
    if not (isinstance(origin, str) and isinstance(fact.fact_id, str)
            and isinstance(fact.workspace_id, int) and isinstance(fact.number, str)
            and fact.number.isdigit() and isinstance(fact.at, int | float)
            and fact.kind in (STOP, START, WITHDRAWN) and isinstance(fact.source, str)
            and (fact.reason is None or isinstance(fact.reason, str))):
        log.warning("cluster.stop_unreadable", data=repr(data)[:200])
        return None
    withdrawn = fact.kind == WITHDRAWN  # listed nowhere: no workspace (actors/ingest.py)
    return f"{fact.source}@{origin}", InboundEvent(
        f"{PREFIX}{origin}/{fact.workspace_id}/{fact.fact_id}",
        STOP if withdrawn else fact.kind, MANUAL, float(fact.at), fact.number,
        None if withdrawn else fact.workspace_id, reason=fact.reason)


class SharedStops:
    """A runtime extension, on cluster nodes only: the outbox to Redis, Redis to the
    journal. Starts even with Redis down and keeps trying (like the push link)."""

    def __init__(self, node: str, redis_url: str, channel: str, outbox: StopsOutbox,
                 journal: Journal, reconnect_max: float = 5.0) -> None:
        self.node = node
        self.redis_url = redis_url
        self.key = stream_key(channel)
        self.outbox = outbox
        self.journal = journal
        self.reconnect_max = reconnect_max
        self.shared = 0  # facts handed to Redis by this process
        self.received = 0  # other nodes' facts journaled here by this process
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)

    async def _run(self) -> None:
        delay = 0.1
        failures = 0
        while True:
            client = redis_client(self.redis_url, socket_timeout=READ_BLOCK_MS / 1000 + 5)
            try:
                if await self.outbox.begin_sharing():
                    log.info("cluster.stops_sharing_begun",
                             note="the stops listed here before are shared with the others")
                await client.ping()
                delay, failures = 0.1, 0
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._publish(client))
                    group.create_task(self._read(client))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or storage away: try again later
                failures += 1
                if failures == 1 or failures % 20 == 0:  # the push link warns of Redis
                    log.info("cluster.stops_paused", error=why(exc), attempts=failures,
                             note="stops listed here wait in stops_outbox until Redis is back")
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.aclose(), 1.0)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.reconnect_max)

    async def _publish(self, client: Any) -> None:
        """This node's facts, oldest first, each removed once Redis has it."""
        while True:
            waiting = await self.outbox.waiting(BATCH)
            if not waiting:
                await asyncio.sleep(PUBLISH_EVERY)
                continue
            async with client.pipeline(transaction=False) as pipe:
                for _, fact in waiting:
                    pipe.xadd(self.key, {"f": encode(self.node, fact)}, maxlen=MAX_STREAM,
                              approximate=True)
                await pipe.execute()
            await self.outbox.shared(waiting[-1][0])
            self.shared += len(waiting)
            log.debug("cluster.stops_shared", facts=len(waiting))

    async def _read(self, client: Any) -> None:
        """The other nodes' facts, journaled (durable) before the cursor moves past them."""
        cursor = await self.outbox.read_cursor()
        while True:
            answer = await client.xread({self.key: cursor}, count=BATCH, block=READ_BLOCK_MS)
            entries = answer[0][1] if answer else []
            if not entries:
                continue
            by_source: dict[str, list[InboundEvent]] = {}
            for _, fields in entries:
                found = decode(self.node, fields.get(b"f", b""))
                if found is not None:
                    by_source.setdefault(found[0], []).append(found[1])
            for source, events in by_source.items():
                await self.journal.append(source, events)
                self.received += len(events)
                log.info("cluster.stops_received", source=source, facts=len(events))
            last = entries[-1][0]
            cursor = last.decode() if isinstance(last, bytes) else str(last)
            await self.outbox.set_read_cursor(cursor)


class UnsharedStops:
    """A runtime extension, on nodes outside any cluster: nothing to share stops with,
    so none is queued (a node that left a cluster drops what it had queued)."""

    def __init__(self, outbox: StopsOutbox) -> None:
        self.outbox = outbox

    async def start(self) -> None:
        try:
            await self.outbox.end_sharing()
        except StoreUnavailable as exc:  # storage failing at start: try at the next one
            log.warning("cluster.stops_outbox_not_cleared", error=str(exc))

    async def stop(self) -> None:
        pass
