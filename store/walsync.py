"""The fsync of a journal commit, on a thread of its own (`store.synchronous = "FULL"`).

Under FULL each journal commit used to write its WAL frames AND wait for the fsync on
the writer thread, so the next batch of webhooks (and any checkpoint chunk) waited for
the disk too: the commit cycle was INSERT + fsync, one after the other. Now the writer
commits the journal row with the connection's `synchronous = NORMAL` (the frames are
written to the WAL file, no fsync) and hands the batch to this thread, which calls
`fdatasync` on the WAL file and only then has the loop answer it. Meanwhile the writer
commits the next batch. One fdatasync covers every batch committed before it began,
so batches that arrive while one is running share the next one.

Why this is as durable as SQLite's own FULL: in WAL mode a FULL commit is "write the
frames, then sync the WAL file" and nothing else; syncing the same file from another
descriptor syncs the same inode (POSIX: fsync applies to the file). Frames that a WAL
checkpoint copies into the database before our sync ran are synced by that checkpoint
(NORMAL syncs the WAL before it and the database after it), and the WAL is only
restarted once they are all in the database. On (re)opening the WAL file (a new one
after every connection had closed) the directory is synced once, as SQLite does the
first time it syncs a WAL it created. A handler still answers 2xx only after the
fdatasync that covers its row returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

# Called on the loop after the sync: (payload, the sync's error or None).
Synced = Callable[[Any, "OSError | None"], None]


class WalSyncer:
    def __init__(self, wal_path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.wal_path = wal_path
        self.loop = loop
        self.syncs = 0  # fdatasync calls made (each covered one or more batches)
        self._fd: int | None = None
        self._inbox: queue.SimpleQueue[tuple[Synced, Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-walsync", daemon=True)
        self._thread.start()

    def post(self, synced: Synced, payload: Any) -> None:
        """After the next fdatasync of the WAL, call `synced(payload, error)` on the loop
        (from the writer thread, right after the commit that wrote the frames)."""
        self._inbox.put((synced, payload))

    def stop(self) -> None:
        """Sync and answer what was posted, then end the thread (blocks: call it where
        a block is fine, after the writer thread ended)."""
        self._inbox.put(None)
        self._thread.join()

    # --- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        try:
            while not stopping:
                first = self._inbox.get()
                items = [] if first is None else [first]
                stopping = first is None
                while True:
                    try:
                        more = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                    else:
                        items.append(more)
                if items:
                    self._sync_and_answer(items)
        finally:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
            self._fd = None

    def _sync_and_answer(self, items: list[tuple[Synced, Any]]) -> None:
        error: OSError | None = None
        try:
            self._sync()
        except OSError as exc:
            error = exc
            log.error("store.wal_sync_failed", error=str(exc))
        self.syncs += 1
        try:
            self.loop.call_soon_threadsafe(_answer, items, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _sync(self) -> None:
        fd = self._fd
        if fd is not None and os.fstat(fd).st_nlink == 0:  # the WAL was deleted and made anew
            os.close(fd)
            fd = self._fd = None
        if fd is None:
            fd = self._fd = os.open(self.wal_path, os.O_RDONLY)
            dir_fd = os.open(self.wal_path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        os.fdatasync(fd)


def _answer(items: list[tuple[Synced, Any]], error: OSError | None) -> None:
    """On the loop: every batch the sync covered, in commit order."""
    for synced, payload in items:
        try:
            synced(payload, error)
        except Exception:  # one batch's defect must not leave the others unanswered
            log.exception("store.wal_synced_failed")
