"""core/aio.py: stopping a background task must not hang on a swallowed cancel."""

from __future__ import annotations

import asyncio

import pytest

from core.aio import cancel_and_wait


async def test_a_task_that_swallows_a_cancel_is_cancelled_again_until_it_stops() -> None:
    swallowed = 0

    async def stubborn() -> None:  # what asyncio.wait_for on 3.11 can do to a loop task
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed < 2:
                    swallowed += 1
                    continue
                raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), 10)
    assert task.cancelled() and swallowed == 2


async def test_an_error_the_task_ended_with_is_raised() -> None:
    async def broken() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="boom"):
        await cancel_and_wait(task)
    await cancel_and_wait(None)  # nothing to stop
