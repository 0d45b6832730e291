"""The SQLite connections: one writer on a thread of its own, one reader (aiosqlite), WAL.

All writes go through the writer (Datasette's one-writer rule): store/writer.py runs
them one after the other on its own thread and connection, each transaction as ONE
piece of work handed over and answered once (no hop through the loop per statement).
The journal's group commits go first: when the writer is free it takes every webhook
request waiting, then at most one transaction, then the requests again. So a webhook
waits for at most one transaction in progress; while storage is failing that means
its 503 comes within about two busy timeouts, however long a lock lasts. A failing
write raises `StoreUnavailable`; the caller answers 503 and the next write simply tries
again, so the daemon recovers by itself when the disk has room again or the lock is
released. A transaction always runs to its end, also when its caller was cancelled (a
timeout, shutdown): BEGIN is never left open to swallow the next commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite
import structlog

import store.binding  # noqa: F401 - binds None without the adapter search
from store.migrations import migrate
from store.schema import PRAGMAS, SCHEMA, SCHEMA_VERSION
from store.unbind import large_bound, unbind
from store.writer import WriterThread

log = structlog.get_logger(__name__)

# memory16 (issue 20): the writer's page cache, KiB (SQLite's default is 2,000). Its
# work is appends (journal, new rows) and row updates in row order: the pages it needs
# again are the trees' upper levels, a few dozen; the rest is read back from the
# operating system's cache. 1.5 MB less at the memory row's end. The ingest actor's
# number lookups (store/engagement.py `NumberRowsReader`) use the same size: each reads
# one index range per number, so what it reads again is the index's upper levels too.
WRITER_CACHE_KIB = 512
LOOKUP_CACHE_KIB = WRITER_CACHE_KIB

# (sql, params, many); or (step, (), False): `step(conn)` runs on the writer thread
# between the statements before and after it, in the same transaction
Statement = tuple[str | Callable[[sqlite3.Connection], Any],
                  Sequence[Any] | Iterable[Sequence[Any]], bool]


class StoreUnavailable(Exception):
    """Storage cannot take writes right now (read-only, disk full, locked, ...)."""


class Store:
    def __init__(self, path: Path, busy_timeout_ms: int = 2000, synchronous: str = "FULL",
                 failure_hold: float = 5.0):
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        self.failure_hold = failure_hold
        self.thread: WriterThread | None = None
        self.writer: WriterHandle | None = None
        self.reader: aiosqlite.Connection | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        # The latest failure, kept after a write succeeds again (see `failing`).
        self.last_failure: str | None = None
        self.last_failure_at = 0.0
        self.clock = time.monotonic  # tests turn it

    @property
    def healthy(self) -> bool:
        return self.writer is not None and self.last_error is None

    def pragmas(self) -> list[str]:
        return [*PRAGMAS, f"PRAGMA synchronous={self.synchronous}",
                f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}"]

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        setup = await self._connect()  # schema and migrations (aiosqlite: they await)
        try:
            await setup.executescript(SCHEMA)
            await setup.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            applied = await migrate(setup)
        finally:
            await setup.close()
        if applied:
            log.info("store.migrated", path=str(self.path), migrations=applied)
        self.thread = WriterThread(
            self.path, [*self.pragmas(), f"PRAGMA cache_size=-{WRITER_CACHE_KIB}"])
        await self.thread.start()
        self.writer = WriterHandle(self.thread)
        self.reader = await self._connect()
        log.info("store.opened", path=str(self.path), synchronous=self.synchronous)

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in self.pragmas():
            await conn.execute(pragma)
        return conn

    async def close(self) -> None:
        if self.reader is not None:
            try:
                await self.reader.close()
            except Exception as exc:  # closing must not stop the shutdown sequence
                log.warning("store.close_failed", error=str(exc))
        if self.thread is not None:
            try:
                await self.thread.stop()
            except Exception as exc:
                log.warning("store.close_failed", error=str(exc))
        self.reader = self.writer = self.thread = None

    async def transaction(self, statements: Iterable[Statement], derived: bool = False
                          ) -> None:
        """Run statements as one transaction; StoreUnavailable when storage fails.

        The work is handed to the writer thread whole and runs to its end even if the
        awaiting caller is cancelled (a timeout, shutdown): BEGIN is never left open.

        `derived`: everything written can be rebuilt from what is durable already (the
        checkpoint's rows from the journal it keeps until they are written, the
        analytics from the rows' marks), so this commit skips the fsync of
        `synchronous = FULL`. Safe because WAL loses only a suffix in a power cut: the
        next FULL commit (a webhook's) fsyncs the log with this one in it, and losing
        it before that only brings the journal rows back for replay."""
        statements = list(statements)
        if derived and self.synchronous == "FULL":
            await self._run(lambda conn: self._relaxed(conn, statements))
        else:
            await self._run(lambda conn: self._transaction(conn, statements))

    def _relaxed(self, conn: sqlite3.Connection, statements: list[Statement]) -> None:
        conn.execute("PRAGMA synchronous=NORMAL")  # a connection setting: no I/O
        try:
            self._transaction(conn, statements)
        finally:
            conn.execute(f"PRAGMA synchronous={self.synchronous}")

    async def execute_atomic(self, sql: str, params: Sequence[Any]) -> None:
        """One statement in autocommit mode: atomic by itself."""
        await self._run(lambda conn: self._atomic(conn, sql, params))

    async def _run(self, job: Callable[[sqlite3.Connection], Any]) -> Any:
        if self.thread is None:
            raise StoreUnavailable("the database is closed")
        try:
            future = self.thread.post(job)
        except RuntimeError as exc:
            raise StoreUnavailable("the database is closing") from exc
        return await future

    # --- on the writer thread -----------------------------------------------------------

    def _transaction(self, conn: sqlite3.Connection, statements: list[Statement]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for sql, params, many in statements:
                if callable(sql):
                    sql(conn)
                elif many:
                    conn.executemany(sql, params)  # type: ignore[arg-type]
                else:
                    conn.execute(sql, params)  # type: ignore[arg-type]
            conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            self.rollback(conn)
            raise
        except (sqlite3.OperationalError, sqlite3.DatabaseError, ValueError) as exc:
            self.rollback(conn)
            self.failed(exc)
            raise StoreUnavailable(str(exc)) from exc
        except BaseException:  # a defect in a step: never leave BEGIN open behind it
            self.rollback(conn)
            raise
        unbind(conn, large_bound(statements))  # memory100: SQLite's copies of big blobs
        self.recovered()

    def _atomic(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> None:
        try:
            conn.execute(sql, params)
        except (sqlite3.OperationalError, sqlite3.DatabaseError, ValueError) as exc:
            self.failed(exc)
            raise StoreUnavailable(str(exc)) from exc
        self.recovered()

    @staticmethod
    def rollback(conn: sqlite3.Connection) -> None:
        """Roll back if a transaction is open (the failure may have been BEGIN's own)."""
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except Exception as exc:  # the rollback of a failed write may fail too
                log.warning("store.rollback_failed", error=str(exc))

    def failed(self, exc: Exception) -> None:
        if self.last_error is None:
            log.error("store.write_failed", error=str(exc))
        self.last_error = str(exc)
        self.last_error_at = time.time()
        self.last_failure, self.last_failure_at = self.last_error, self.clock()

    def recovered(self) -> None:
        if self.last_error is not None:
            log.info("store.recovered", after_error=self.last_error)
            self.last_error = None
            self.last_error_at = None

    def failing(self) -> str | None:
        """Why readiness should say storage is failing, or None.

        A nearly full disk takes some writes (into WAL space SQLite already has) and
        refuses others; readiness following each write would flap. It stays "failing"
        until writes have gone `failure_hold` seconds without a failure."""
        if self.last_error is not None:
            return self.last_error
        since = self.clock() - self.last_failure_at
        if self.last_failure is not None and since < self.failure_hold:
            return (f"{self.last_failure} (writes succeed again; the last failed "
                    f"{since:.1f} s ago)")
        return None

    async def fetchall(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
                       ) -> list[sqlite3.Row]:
        if self.reader is None:
            raise StoreUnavailable("the database is closed")
        try:
            # ONE operation in the reader's queue: the statement runs to its end before
            # another task's starts. As `execute` then `fetchall` (two operations) other
            # statements ran while this one was open, inside its read transaction, and a
            # chain of them (200 campaigns loading) kept a snapshot from long ago: a read
            # then missed rows committed before it was asked (the analytics bench's 500).
            return list(await self.reader.execute_fetchall(sql, params))
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def get_meta(self, key: str) -> str | None:
        row = await self.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None


class _Cursor:
    """Rows a statement run on the writer thread gave (WriterHandle.execute)."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    async def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[Any]:
        return list(self._rows)


class _Result:
    """`await handle.execute(...)` or `async with handle.execute(...) as cursor`."""

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self._future = future

    def __await__(self) -> Any:
        return self._future.__await__()

    async def __aenter__(self) -> _Cursor:
        return await self._future  # type: ignore[no-any-return]

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None


class WriterHandle:
    """The writer connection as an awaitable API (maintenance and tests: PRAGMAs)."""

    def __init__(self, thread: WriterThread) -> None:
        self.thread = thread

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> _Result:
        return _Result(self.thread.post(
            lambda conn: _Cursor(conn.execute(sql, params).fetchall())))
