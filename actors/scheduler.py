"""Scheduled campaigns (SPEC 9): start each one at its `send_at`, also after a restart.

The schedule is durable in SQLite (status `scheduled`, `campaigns.send_at`); this task
only keeps the times in memory and wakes for the next one. It wakes at least every
`MAX_SLEEP` seconds and compares with the wall clock, so a suspended machine or a
changed clock cannot make a campaign wait much past its time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from core.aio import cancel_and_wait
from core.clock import SYSTEM_CLOCK, Clock

log = structlog.get_logger(__name__)

Start = Callable[[str], Awaitable[None]]  # start this campaign (uuid) now


class Scheduler:
    MAX_SLEEP = 30.0
    RETRY = 5.0  # seconds before a start that failed is tried again

    def __init__(self, start: Start, clock: Clock = SYSTEM_CLOCK) -> None:
        self.start_campaign = start
        self.clock = clock
        self.due: dict[str, float] = {}  # uuid -> send_at (epoch seconds)
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def set(self, uuid: str, send_at: float) -> None:
        self.due[uuid] = send_at
        self._changed.set()

    def discard(self, uuid: str) -> None:
        if self.due.pop(uuid, None) is not None:
            self._changed.set()

    async def _run(self) -> None:
        while True:
            now = self.clock.time()
            for uuid in [u for u, at in self.due.items() if at <= now]:
                del self.due[uuid]
                try:
                    await self.start_campaign(uuid)
                except Exception:  # e.g. storage failing: try again soon
                    log.exception("scheduler.start_failed", campaign_uuid=uuid)
                    self.due.setdefault(uuid, now + self.RETRY)
            nearest = min(self.due.values(), default=None)
            sleep = self.MAX_SLEEP if nearest is None else min(self.MAX_SLEEP, nearest - now)
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, sleep))
            except TimeoutError:
                pass
