"""The journal's group commit on a real SQLite file: requests appended in one turn of the
loop share one future (store/journal.py `_Turn`). What must hold for each request as
before: it is answered only once its events are on disk and dispatched, one request's
cancellation (its client went away) does not take the answer from the others of its
turn, and a storage failure reaches every one of them."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from domain.events import StatusEvent
from domain.status import Level
from store.db import Store, StoreUnavailable
from store.journal import BUSY_FOR, BatchStats, Journal, decode_batch


def status(message_id: str) -> StatusEvent:
    return StatusEvent(message_id, Level.DELIVERED, False, 1_700_000_000.0)


async def opened(tmp_path: Path) -> tuple[Store, Journal, list[Any]]:
    store = Store(tmp_path / "campaignd.sqlite3")
    await store.open()
    dispatched: list[Any] = []

    def committed(groups: list[Any], seq: int, stats: BatchStats) -> None:
        dispatched.append((seq, groups, stats.requests))

    journal = Journal(store, committed)
    await journal.start()
    return store, journal, dispatched


def journal_rows(path: Path) -> list[tuple[int, Any]]:
    db = sqlite3.connect(path)
    try:
        return [(seq, decode_batch(blob)) for seq, blob in
                db.execute("SELECT seq, events FROM journal ORDER BY seq")]
    finally:
        db.close()


async def test_requests_of_one_turn_are_answered_once_durable_and_dispatched(
        tmp_path: Path) -> None:
    store, journal, dispatched = await opened(tmp_path)
    try:
        answers = await asyncio.gather(*(journal.append("webjs", [status(f"m{i}")])
                                         for i in range(20)))
        rows = journal_rows(store.path)
        # every answer names a committed row, and that row holds the request's event
        stored = {e.message_id for _, groups in rows for _, events in groups for e in events}
        assert stored == {f"m{i}" for i in range(20)}
        assert set(answers) <= {seq for seq, _ in rows}
        assert sum(n for _, _, n in dispatched) == 20  # each request dispatched once
    finally:
        await journal.close()
        await store.close()


async def test_a_cancelled_request_does_not_cancel_the_others_of_its_turn(
        tmp_path: Path) -> None:
    store, journal, _ = await opened(tmp_path)
    try:
        tasks = [asyncio.create_task(journal.append("webjs", [status(f"m{i}")]))
                 for i in range(5)]
        await asyncio.sleep(0)  # all five appended in this turn: they share one future
        tasks[2].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[2], asyncio.CancelledError)
        assert all(isinstance(seq, int) for i, seq in enumerate(done) if i != 2)
        # the cancelled request's events were committed all the same (durable, replayed)
        stored = {e.message_id for _, groups in journal_rows(store.path)
                  for _, events in groups for e in events}
        assert "m2" in stored
    finally:
        await journal.close()
        await store.close()


async def test_a_failed_commit_reaches_every_request_of_the_batch(tmp_path: Path) -> None:
    store, journal, dispatched = await opened(tmp_path)
    try:
        db = sqlite3.connect(store.path, isolation_level=None)
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON journal BEGIN"
                   " SELECT RAISE(ABORT, 'disk says no'); END")
        db.close()
        results = await asyncio.gather(*(journal.append("webjs", [status(f"m{i}")])
                                         for i in range(3)), return_exceptions=True)
        assert all(isinstance(r, StoreUnavailable) for r in results)
        assert dispatched == []
    finally:
        await journal.close()
        await store.close()


async def test_appending_while_closing_is_refused(tmp_path: Path) -> None:
    store, journal, _ = await opened(tmp_path)
    await journal.close()
    with pytest.raises(StoreUnavailable):
        await journal.append("webjs", [status("m1")])
    await store.close()


async def test_the_journal_counts_as_flooded_only_while_requests_share_their_commits(
        tmp_path: Path) -> None:
    """`flooded` (the Recounter gives way further, store/insights.py) is busy AND
    requests lately sharing commits: one request at a time is steady traffic, however
    long it lasts; turns of many requests are a daemon at its limit."""
    store, journal, _ = await opened(tmp_path)
    try:
        for i in range(30):  # steady traffic: each request committed alone
            await journal.append("webjs", [status(f"one{i}")])
        assert journal.busy() and not journal.flooded()
        for turn in range(30):  # a flood: 32 requests queue for each commit
            await asyncio.gather(*(journal.append("webjs", [status(f"f{turn}.{i}")])
                                   for i in range(32)))
        assert journal.flooded()
        journal.last_commit -= 2 * BUSY_FOR  # the flood has stopped: not busy any more
        assert not journal.flooded()
        for i in range(30):  # steady traffic again brings the average down
            await journal.append("webjs", [status(f"two{i}")])
        assert journal.busy() and not journal.flooded()
    finally:
        await journal.close()
        await store.close()


async def test_committed_events_are_handed_on_without_waiting_for_the_loop(
        tmp_path: Path) -> None:
    """The events of a commit go to the actors from the writer thread, in commit order,
    before any request is answered: a loop busy writing answers (here: blocked) does not
    hold them back, and an answered request's events were handed on all the same."""
    store = Store(tmp_path / "campaignd.sqlite3")
    await store.open()
    handed: list[tuple[int, list[str]]] = []
    arrived = threading.Event()

    def committed(groups: list[Any], seq: int, stats: BatchStats) -> None:
        handed.append((seq, [e.message_id for _, events in groups for e in events]))
        arrived.set()

    journal = Journal(store, committed)
    await journal.start()
    try:
        first = asyncio.ensure_future(journal.append("webjs", [status("m1")]))
        await asyncio.sleep(0)  # appended; handed to the writer at the end of this turn
        await asyncio.sleep(0)
        # the loop is blocked from here on: the hand-over must not need it
        assert arrived.wait(10), "the commit's events waited for the loop"
        assert handed == [(handed[0][0], ["m1"])]
        assert not first.done()  # answered only on the loop, after the hand-over
        seq = await first
        assert seq == handed[0][0]
        second = await journal.append("webjs", [status("m2")])
        assert [s for s, _ in handed] == [seq, second] and second > seq  # commit order
    finally:
        await journal.close()
        await store.close()
