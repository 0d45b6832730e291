"""Small asyncio helpers shared by every layer: cancelling tasks, and `Reply`, the way an
actor thread answers a coroutine without blocking the loop (SPEC 1.1)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has really stopped.

    The cancel is repeated until the task is done: on Python 3.11 `asyncio.wait_for`
    can swallow a cancel that arrives as its inner future completes, and a loop task
    (the checkpointer's) then runs on, so a single cancel could leave shutdown waiting
    forever. An exception the task ended with (other than being cancelled) is raised.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if not task.cancelled():
        error = task.exception()
        if error is not None:
            raise error


class Busy(TimeoutError):
    """A part of the daemon did not answer in time (an actor loading campaigns, the
    writer behind a checkpoint): the request may be retried. The web layer answers 503
    with this message, which names the part (web/errors.py)."""


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
            self.loop.call_soon_threadsafe(resolve, self.future, value, None)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def fail(self, error: BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(resolve, self.future, None, error)
        except RuntimeError:
            pass


def resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    """On the loop: answer a waiting caller (unless it gave up: cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class SharedExclusive:
    """A shared / exclusive lock for coroutines; a waiting exclusive holder goes first.

    The checkpoint holds it exclusively from collecting the actors' rows until they are
    written; the sender holds it shared while it stores an attempt or an outcome in a
    message row and tells the campaign actor. So a checkpoint never overwrites a row with
    a state collected before an outcome the sender had already stored (SPEC 9).
    """

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._shared = 0
        self._exclusive = False
        self._exclusive_waiting = 0

    @contextlib.asynccontextmanager
    async def shared(self) -> Any:
        async with self._cond:
            await self._cond.wait_for(
                lambda: not self._exclusive and not self._exclusive_waiting)
            self._shared += 1
        try:
            yield
        finally:
            async with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> Any:
        async with self._cond:
            self._exclusive_waiting += 1
            try:
                await self._cond.wait_for(lambda: not self._exclusive and not self._shared)
            finally:
                self._exclusive_waiting -= 1
                self._cond.notify_all()  # a cancelled waiter must not block the others
            self._exclusive = True
        try:
            yield
        finally:
            async with self._cond:
                self._exclusive = False
                self._cond.notify_all()
