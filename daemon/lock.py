"""One daemon per database: an exclusive OS lock on a file beside the SQLite file.

`flock` is held for the life of the process and released by the kernel however the
process ends (kill -9 included), so a crash never leaves a stale lock. The holder's pid
is written into the file so a refused start can name it. Read-only commands (stats,
export, backup) never take it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DatabaseInUse(Exception):
    def __init__(self, db: Path, pid: int | None) -> None:
        holder = f"campaignd pid {pid}" if pid else "another process"
        super().__init__(f"the database {db} is in use by {holder} (lock file {lock_path(db)});"
                         " stop it first, or give this daemon its own store.path")
        self.db = db
        self.pid = pid


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


def holder_pid(db: Path) -> int | None:
    """The pid written by the daemon that holds (or last held) the lock."""
    try:
        text = lock_path(db).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class DatabaseLock:
    def __init__(self, db: Path) -> None:
        self.db = db
        self.fd: int | None = None

    def acquire(self, write_pid: bool = True) -> None:
        """Take the lock or raise DatabaseInUse naming the holder; never waits."""
        path = lock_path(self.db)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseInUse(self.db, holder_pid(self.db)) from None
        except BaseException:
            os.close(fd)
            raise
        if write_pid:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> DatabaseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def in_use(db: Path) -> DatabaseInUse | None:
    """For check-config: who holds the database now, without keeping the lock."""
    lock = DatabaseLock(db)
    try:
        lock.acquire(write_pid=False)
    except DatabaseInUse as exc:
        return exc
    except OSError:
        return None  # a folder we cannot write: serve will say so
    lock.release()
    return None
