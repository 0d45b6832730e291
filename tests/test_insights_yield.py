"""The analytics' Recounter gives way to ingest (store/insights.py, SPEC 4 and 8): while
webhooks are being committed it recounts in small transactions, yet it still counts
every marked row by itself, and the aggregates end exactly as a full-speed recount
leaves them."""

from __future__ import annotations

import time
from typing import Any

from actors.runtime import Runtime
from store import insights
from store.journal import BUSY_FOR
from tests.conftest import Daemon, eventually, webjs_ack


async def _marked(d: Daemon) -> int:
    row = await d.runtime.store.fetchone("SELECT COUNT(*) FROM messages WHERE ag_dirty = 1")
    return int(row[0])


async def half_read(d: Daemon, uuid: str, prefix: str, numbers: str, count: int) -> None:
    """A campaign of `count` messages, half of them read (a change the checkpoint marks
    for the recount), checkpointed."""
    await d.create_campaign(1, uuid.title(), uuid)
    await d.register(uuid, [{"recipient": f"{numbers}{i:05d}", "message_id": f"{prefix}{i}"}
                            for i in range(count)])
    for i in range(0, count, 2):
        status, _ = await d.post_json("/webhooks/webjs", webjs_ack(f"{prefix}{i}", 3))
        assert status == 200
    await d.runtime.checkpoint()


async def test_a_busy_daemon_still_counts_every_row_in_small_transactions(
        daemon_factory: Any, monkeypatch: Any) -> None:
    limits: list[int] = []
    real = insights.recount_marked

    def recording(conn: Any, limit: int) -> int:
        limits.append(limit)
        return real(conn, limit)

    monkeypatch.setattr(insights, "recount_marked", recording)
    monkeypatch.setattr(insights.Recounter, "BUSY_BATCH", 7)
    monkeypatch.setattr(insights.Recounter, "SHARE_REST", 1.0)
    # as under a webhook flood, all along
    monkeypatch.setattr(Runtime, "_ingest_busy", lambda self: True)
    d: Daemon = await daemon_factory()
    await half_read(d, "busy", "B", "62812000", 60)

    async def all_counted() -> bool:
        return await _marked(d) == 0 and d.runtime.recounter.rows >= 60

    await eventually(all_counted, timeout=60)
    assert limits and set(limits) == {7}  # never a full-size transaction while busy
    status, body = await d.request("GET", "/api/workspaces/1/contacts?limit=100")
    assert status == 200, body
    contacts = {c["number"]: c for c in body["contacts"]}
    assert len(contacts) == 60
    assert sum(1 for c in contacts.values() if c["read"] == 1) == 30


async def test_the_journal_is_busy_right_after_a_commit_and_not_once_it_is_quiet(
        daemon: Daemon) -> None:
    await daemon.create_campaign(1, "Quiet", "quiet")
    await daemon.register("quiet", [{"recipient": "6281200000001", "message_id": "Q1"}])
    status, _ = await daemon.post_json("/webhooks/webjs", webjs_ack("Q1", 2))
    assert status == 200
    journal = daemon.runtime.journal
    assert journal.busy()
    journal.last_commit = time.monotonic() - 2 * BUSY_FOR
    assert not journal.busy()


async def test_a_flooded_daemon_rests_longer_yet_still_counts_every_row(
        daemon_factory: Any, monkeypatch: Any) -> None:
    """Under a flood (requests sharing commits) the Recounter rests FLOOD_SHARE_REST
    times a pass instead of SHARE_REST; it still recounts every marked row by itself."""
    rests: list[float] = []
    real_rest = insights.Recounter._rest

    def recording(self: insights.Recounter, busy: bool) -> float:
        rests.append(real_rest(self, busy))
        return rests[-1]

    monkeypatch.setattr(insights.Recounter, "_rest", recording)
    monkeypatch.setattr(insights.Recounter, "BUSY_BATCH", 7)
    monkeypatch.setattr(insights.Recounter, "SHARE_REST", 0.5)
    monkeypatch.setattr(insights.Recounter, "FLOOD_SHARE_REST", 1.5)
    monkeypatch.setattr(Runtime, "_ingest_busy", lambda self: True)
    d: Daemon = await daemon_factory()
    monkeypatch.setattr(d.runtime.recounter, "flooded", lambda: True)
    await half_read(d, "flood", "F", "62813000", 40)

    async def all_counted() -> bool:
        return await _marked(d) == 0 and d.runtime.recounter.rows >= 40

    await eventually(all_counted, timeout=60)
    assert rests and set(rests) == {1.5}
    status, body = await d.request("GET", "/api/workspaces/1/contacts?limit=100")
    assert status == 200, body
    assert sum(1 for c in body["contacts"] if c["read"] == 1) == 20


def test_the_recounter_rests_by_how_busy_ingest_is() -> None:
    state = {"busy": False, "flooded": False}
    recounter = insights.Recounter(None, busy=lambda: state["busy"],  # type: ignore[arg-type]
                                   flooded=lambda: state["flooded"])
    assert recounter._rest(False) == 0.0  # calm: full speed, the backlog goes at once
    assert recounter._rest(True) == insights.Recounter.SHARE_REST
    state["flooded"] = True
    assert recounter._rest(True) == insights.Recounter.FLOOD_SHARE_REST
    assert insights.Recounter.FLOOD_SHARE_REST > insights.Recounter.SHARE_REST
