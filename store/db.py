"""The SQLite connections: one writer, one reader, both through aiosqlite (WAL).

All writes go through the writer connection (Datasette's one-writer rule).
`Store.transaction` runs several statements as one transaction and holds the write gate
exclusively, so nothing interleaves with it; `Store.execute_atomic` runs one statement
in autocommit mode and holds the gate shared, so several journal commits can be queued
on the writer thread back to back (pipelined) without a round trip through the loop
between them. The gate is first come, first served (neither kind starves the other),
except while storage is failing: then a journal commit does not queue behind
transactions that will each wait out the busy timeout only to fail too; it tries at
once, so a webhook gets its 503 within about two busy timeouts, however long a lock
lasts. A failing write raises `StoreUnavailable`; the caller
answers 503 and the next transaction simply tries again, so the daemon recovers by
itself when the disk has room again or the lock is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import sqlite3
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from store.migrations import migrate
from store.schema import PRAGMAS, SCHEMA, SCHEMA_VERSION

log = structlog.get_logger(__name__)

# A step of a transaction that reads as well as writes (store/aggregates.py `recount`):
# called with the writer connection between the statements before and after it.
Step = Callable[[aiosqlite.Connection], Awaitable[None]]
# (sql, params, many), or (step, (), False)
Statement = tuple[str | Step, Sequence[Any] | Iterable[Sequence[Any]], bool]


class StoreUnavailable(Exception):
    """Storage cannot take writes right now (read-only, disk full, locked, ...)."""


class Store:
    def __init__(self, path: Path, busy_timeout_ms: int = 2000, synchronous: str = "FULL"):
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        self.writer: aiosqlite.Connection | None = None
        self.reader: aiosqlite.Connection | None = None
        self._gate = asyncio.Condition()
        self._exclusive = False  # a transaction is open
        self._shared = 0  # single statements in flight
        self._tickets = itertools.count()
        self._waiting: dict[int, bool] = {}  # ticket -> exclusive?, in arrival order
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    @property
    def healthy(self) -> bool:
        return self.writer is not None and self.last_error is None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = await self._connect()
        await self.writer.executescript(SCHEMA)
        await self.writer.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        applied = await migrate(self.writer)
        if applied:
            log.info("store.migrated", path=str(self.path), migrations=applied)
        self.reader = await self._connect()
        log.info("store.opened", path=str(self.path), synchronous=self.synchronous)

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        await conn.execute(f"PRAGMA synchronous={self.synchronous}")
        await conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        return conn

    async def close(self) -> None:
        for conn in (self.reader, self.writer):
            if conn is not None:
                try:
                    await conn.close()
                except Exception as exc:  # closing must not stop the shutdown sequence
                    log.warning("store.close_failed", error=str(exc))
        self.reader = self.writer = None

    async def transaction(self, statements: Iterable[Statement]) -> None:
        """Run statements as one transaction; StoreUnavailable when storage fails.

        Shielded: a caller that is cancelled (a timeout, shutdown) does not cut the
        transaction in half. Without that, BEGIN could stay open on the writer
        connection and swallow the next journal commit into a transaction that is
        never committed.
        """
        await _shielded(self._transaction(list(statements)))

    async def _transaction(self, statements: list[Statement]) -> None:
        if self.writer is None:
            raise StoreUnavailable("the database is closed")
        async with self._exclusive_gate():
            conn = self.writer
            try:
                await conn.execute("BEGIN IMMEDIATE")
                for sql, params, many in statements:
                    if callable(sql):
                        await sql(conn)
                    elif many:
                        await conn.executemany(sql, params)  # type: ignore[arg-type]
                    else:
                        await conn.execute(sql, params)  # type: ignore[arg-type]
                await conn.execute("COMMIT")
            except (sqlite3.IntegrityError, asyncio.CancelledError):
                await self._rollback()
                raise
            except (sqlite3.OperationalError, sqlite3.DatabaseError, ValueError) as exc:
                await self._rollback()
                self._failed(exc)
                raise StoreUnavailable(str(exc)) from exc
            except BaseException:  # a defect in a step: never leave BEGIN open behind it
                await self._rollback()
                raise
            self._recovered()

    async def execute_atomic(self, sql: str, params: Sequence[Any]) -> None:
        """One statement in autocommit mode: atomic by itself, one thread round trip.

        The journal's group commit uses this: a whole batch is one row, so the hot path
        pays one hop to the writer thread instead of three (BEGIN, INSERT, COMMIT).
        """
        await _shielded(self._execute_atomic(sql, params))

    async def _execute_atomic(self, sql: str, params: Sequence[Any]) -> None:
        if self.writer is None:
            raise StoreUnavailable("the database is closed")
        async with self._shared_gate():
            try:
                await self.writer.execute(sql, params)
            except (sqlite3.OperationalError, sqlite3.DatabaseError, ValueError) as exc:
                self._failed(exc)
                raise StoreUnavailable(str(exc)) from exc
            self._recovered()

    def _first_exclusive_waiting(self) -> float:
        return next((t for t, exclusive in self._waiting.items() if exclusive), math.inf)

    @contextlib.asynccontextmanager
    async def _exclusive_gate(self) -> AsyncIterator[None]:
        async with self._gate:
            ticket = next(self._tickets)
            self._waiting[ticket] = True
            try:
                await self._gate.wait_for(lambda: not self._exclusive and not self._shared
                                          and next(iter(self._waiting)) == ticket)
            finally:
                del self._waiting[ticket]
                self._gate.notify_all()
            self._exclusive = True
        try:
            yield
        finally:
            async with self._gate:
                self._exclusive = False
                self._gate.notify_all()

    @contextlib.asynccontextmanager
    async def _shared_gate(self) -> AsyncIterator[None]:
        async with self._gate:
            ticket = next(self._tickets)
            self._waiting[ticket] = False
            try:
                await self._gate.wait_for(lambda: not self._exclusive and (
                    ticket < self._first_exclusive_waiting() or self.last_error is not None))
            finally:
                del self._waiting[ticket]
                self._gate.notify_all()
            self._shared += 1
        try:
            yield
        finally:
            async with self._gate:
                self._shared -= 1
                if not self._shared:
                    self._gate.notify_all()

    async def _rollback(self) -> None:
        """Roll back unconditionally: the writer thread runs statements in order, so this
        comes after a BEGIN that may still be queued; "no transaction" is fine."""
        try:
            assert self.writer is not None
            await self.writer.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if "no transaction is active" not in str(exc):
                log.warning("store.rollback_failed", error=str(exc))
        except Exception as exc:  # the rollback of a failed write may fail too
            log.warning("store.rollback_failed", error=str(exc))

    def _failed(self, exc: Exception) -> None:
        if self.last_error is None:
            log.error("store.write_failed", error=str(exc))
        self.last_error = str(exc)
        self.last_error_at = time.time()

    def _recovered(self) -> None:
        if self.last_error is not None:
            log.info("store.recovered", after_error=self.last_error)
            self.last_error = None
            self.last_error_at = None

    async def fetchall(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
                       ) -> list[sqlite3.Row]:
        if self.reader is None:
            raise StoreUnavailable("the database is closed")
        try:
            async with self.reader.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def get_meta(self, key: str) -> str | None:
        row = await self.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None


async def _shielded(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` to its end even if the awaiting caller is cancelled."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_consume)
        raise


def _consume(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("store.write_failed_after_cancel", error=str(task.exception()))
