"""sd_notify without a dependency: one datagram to $NOTIFY_SOCKET per state change.

systemd (Type=notify) waits for READY=1 before it calls the service started, restarts
it when WATCHDOG=1 stops arriving within WatchdogSec, and shows STATUS= lines in
`systemctl status`. The watchdog is fed from a task on the event loop, so a loop that
is stuck (a blocking call in a handler) stops feeding it and systemd restarts us.
A NOTIFY_SOCKET starting with "@" names a socket in the abstract namespace.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping

import structlog

from core.aio import cancel_and_wait

log = structlog.get_logger(__name__)


class Notifier:
    """Sends sd_notify messages; does nothing when not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        self.watchdog_usec = _watchdog_usec(env)
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram of `KEY=value` lines; False when it could not be sent."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(target)
                sock.sendall("\n".join(lines).encode())
            return True
        except OSError as exc:  # systemd went away: nothing to tell, keep serving
            log.warning("systemd.notify_failed", socket=self.address, error=str(exc))
            return False

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def stopping(self, status: str = "stopping") -> None:
        self.notify("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC lets Type=notify-reload units match this to their reload request.
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}",
                    "STATUS=reloading the configuration")

    def start_watchdog(self) -> None:
        """Feed the watchdog at half of WATCHDOG_USEC, from the event loop."""
        if self.address is None or not self.watchdog_usec or self._task is not None:
            return
        interval = self.watchdog_usec / 2_000_000
        self._task = asyncio.get_running_loop().create_task(self._feed(interval),
                                                            name="systemd-watchdog")
        log.info("systemd.watchdog", interval_seconds=interval)

    async def _feed(self, interval: float) -> None:
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def stop_watchdog(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


def _watchdog_usec(env: Mapping[str, str]) -> int:
    """WATCHDOG_USEC, if it is meant for this process (WATCHDOG_PID unset or ours)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return 0
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return 0
    return max(0, usec)
