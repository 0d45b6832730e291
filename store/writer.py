"""The one writer connection, on a thread of its own.

Every write to SQLite runs here, one after the other, on a plain `sqlite3` connection
(WAL). The loop hands work over and gets the answer back with ONE
`call_soon_threadsafe` per piece of work, instead of aiosqlite's hop per statement
(BEGIN, each statement, COMMIT, each its own round trip through the loop): under load
each loop iteration takes a while, and a commit that needs ten of them was what held
every webhook back (docs/BENCHMARKS.md).

Two queues: batchable items (the journal's waiting requests) and jobs (whole
transactions: checkpoints, registrations, the sender's rows). When the thread is free
it takes EVERY batchable item waiting and hands them to the batch function at once
(group commit), then runs at most one job, then looks at the items again. So a webhook
waits for at most one job in progress, never behind a queue of transactions (while
storage fails, each of those waits out the busy timeout), and jobs still run between
batches under any load.

A job or batch function runs with the connection and must not touch the loop except
through `call_soon_threadsafe` (what `post` does for its answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from core.aio import resolve

log = structlog.get_logger(__name__)

Job = Callable[[sqlite3.Connection], Any]
BatchFn = Callable[[sqlite3.Connection, list[Any]], None]


class WriterThread:
    def __init__(self, path: Path, pragmas: list[str], max_batch: int = 512) -> None:
        self.path = path
        self.pragmas = pragmas
        self.max_batch = max_batch
        self.batch_fn: BatchFn | None = None
        # One C-level queue for both kinds (a put is cheap and wakes the thread); the
        # thread sorts them: ("i", item) or ("j", (job, future)) or ("stop", None).
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._stopping = False
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self.conn: sqlite3.Connection | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._thread.start()
        await self.loop.run_in_executor(None, self._ready.wait)
        if self._open_error is not None:
            raise self._open_error

    def post_item(self, item: Any) -> None:
        """A batchable item (from the loop); the batch function answers it."""
        self._inbox.put(("i", item))

    def post(self, job: Job) -> asyncio.Future[Any]:
        """Run `job(conn)` on the writer thread; its result (or exception) in the future."""
        assert self.loop is not None
        if self._stopping:
            raise RuntimeError("the writer is stopped")
        future = self.loop.create_future()
        self._inbox.put(("j", (job, future)))
        return future

    async def stop(self) -> None:
        """Run what is queued, then close the connection and end the thread."""
        if self._stopping:
            return
        self._stopping = True
        self._inbox.put(("stop", None))
        if self._thread.is_alive():
            assert self.loop is not None
            await self.loop.run_in_executor(None, self._thread.join)

    # --- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in self.pragmas:
                conn.execute(pragma)
            self.conn = conn
        except BaseException as exc:  # reported by start()
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        items: list[Any] = []
        jobs: deque[tuple[Job, asyncio.Future[Any] | None]] = deque()
        stopping = False
        try:
            while True:
                # wait only when nothing is left to do, then take everything that came
                kind, value = (self._inbox.get() if not (items or jobs or stopping)
                               else ("", None))
                while True:
                    if kind == "i":
                        items.append(value)
                    elif kind == "j":
                        jobs.append(value)
                    elif kind == "stop":
                        stopping = True
                    try:
                        kind, value = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                if items:
                    batch, items = items[: self.max_batch], items[self.max_batch:]
                    self._batch(conn, batch)
                if jobs:
                    self._job(conn, *jobs.popleft())
                if stopping and not items and not jobs and self._inbox.empty():
                    break
        finally:
            with contextlib.suppress(Exception):
                conn.close()
            self.conn = None

    def _batch(self, conn: sqlite3.Connection, items: list[Any]) -> None:
        assert self.batch_fn is not None
        try:
            self.batch_fn(conn, items)
        except Exception:  # the batch function answers its items itself; a defect here
            log.exception("store.writer_batch_failed")

    def _job(self, conn: sqlite3.Connection, job: Job,
             future: asyncio.Future[Any] | None) -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = job(conn)
        except BaseException as exc:
            error = exc
        if future is not None:
            self.answer(future, result, error)

    def answer(self, future: asyncio.Future[Any], result: Any,
               error: BaseException | None = None) -> None:
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(resolve, future, result, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass
