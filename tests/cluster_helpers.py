"""A real Redis for the cluster tests: Debian's redis-server (scripts/test-deps.sh installs
it) in the foreground, on a free loopback port, with its own folder, stopped and started
again on the same port when a test wants an outage."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.ports import free_port

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class RedisServer:
    """redis-server in the foreground; no persistence (campaignd keeps nothing in it)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        if REDIS_SERVER is None:
            pytest.fail("redis-server is not installed: the cluster tests need Debian's "
                        "redis-server; run scripts/test-deps.sh (make test does) as root")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [REDIS_SERVER or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.folder), "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not listening(self.port):
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited; see {self.folder / 'redis.log'}")
            if time.monotonic() > deadline:
                raise AssertionError("redis-server did not listen")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop it (an outage for the nodes); `start()` brings it back on the same port."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # gone at once, like a crash
            self.proc.wait(10)
        self.proc = None
        self.log.close()
        deadline = time.monotonic() + 10
        while listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)
