"""A stop writes rows for at most STOP_ROWS_SECONDS (store/checkpoint.py `final`), so a
daemon stopped after a flood is done before systemd's TimeoutStopSec kills it. What it
leaves stays in its images and its journal: the next start is exact at once, and its
first checkpoint writes the rows. Here the budget is 0 s, as if the stop had run out of
time before the first chunk, on a real daemon and a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import store.checkpoint
from domain.status import Level
from tests.conftest import close_server, eventually, webjs_ack

MESSAGES = 30  # each read (whatsapp-web.js ack 3)


def stored_levels(path: Path) -> list[int]:
    db = sqlite3.connect(path)
    try:
        return [level for (level,) in db.execute("SELECT level FROM messages ORDER BY row")]
    finally:
        db.close()


def journal_rows(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    finally:
        db.close()


async def test_a_stop_out_of_time_leaves_rows_to_the_next_start_and_loses_nothing(
        daemon_factory: Any, tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "stop.sqlite3"
    # no periodic checkpoint: the stop's is the only one that could write the rows
    settings = {"store.path": str(path), "store.checkpoint_interval": 3600}
    first = await daemon_factory(**settings)
    await all_read(first, "stop-budget", "SB")
    before = await first.stats("stop-budget")

    monkeypatch.setattr(store.checkpoint, "STOP_ROWS_SECONDS", 0.0)
    await close_server(first.server)
    # the stop wrote no row (all still as registered) and kept the journal
    assert max(stored_levels(path)) < Level.READ
    assert journal_rows(path) > 0

    monkeypatch.setattr(store.checkpoint, "STOP_ROWS_SECONDS", 15.0)
    again = await daemon_factory(**settings)
    after = await again.stats("stop-budget")
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"}
    assert after["total_read_count"] == MESSAGES
    # the next checkpoint writes what the stop left
    await again.runtime.checkpointer.run()
    assert stored_levels(path) == [Level.READ] * MESSAGES


async def test_a_stop_in_time_writes_every_row(daemon_factory: Any, tmp_path: Path) -> None:
    path = tmp_path / "stop.sqlite3"
    first = await daemon_factory(**{"store.path": str(path),
                                    "store.checkpoint_interval": 3600})
    await all_read(first, "stop-in-time", "ST")
    await close_server(first.server)
    assert stored_levels(path) == [Level.READ] * MESSAGES


async def all_read(d: Any, uuid: str, prefix: str) -> None:
    """A campaign of MESSAGES, every one read (webjs ACKs answered 200) and counted."""
    await d.create_campaign(uuid=uuid)
    await d.register(uuid, [{"recipient": f"62812{i:07d}", "message_id": f"{prefix}{i}"}
                            for i in range(MESSAGES)])
    for i in range(MESSAGES):
        status, _ = await d.post_json("/webhooks/webjs", webjs_ack(f"{prefix}{i}", 3))
        assert status == 200

    async def counted() -> bool:
        return (await d.stats(uuid))["total_read_count"] == MESSAGES

    await eventually(counted)
