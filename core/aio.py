"""Small asyncio helpers shared by every layer: cancelling tasks, and `Reply`, the way an
actor thread answers a coroutine without blocking the loop (SPEC 1.1)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has really stopped."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@dataclass(slots=True)
class Reply:
    """An asyncio future to resolve from an actor thread, safely."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]

    @classmethod
    def new(cls) -> Reply:
        loop = asyncio.get_running_loop()
        return cls(loop, loop.create_future())

    def set(self, value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future, value, None)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def fail(self, error: BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future, None, error)
        except RuntimeError:
            pass


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
