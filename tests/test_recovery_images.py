"""Recovery images after kill -9 (store/image.py, docs/reliability.md "Recovery images").

A real daemon process. A checkpoint commits the campaign's and the id index's images
(with the orphans) before it writes any row; the test makes the row writes fail (a
trigger on `messages` that SQLite cannot run: a storage fault, as the daemon sees it),
so the database is left exactly "image committed, rows not written". More messages are
then registered and acknowledged (after the image), the daemon is killed with SIGKILL,
the trigger is dropped and the daemon started again:

- as written: the start replays the journal from the image's seq (the log says so),
  and counters and every row are exact; the rows the image had and the table did not
  are written by the next checkpoint, and a clean restart after it is exact too, also
  for a second campaign whose only events since its rows came before the image (none
  replayed, nobody asks for it before the journal is compacted past them);
- a sender write counted after the image (campaigns.row_writes moved): the image is
  stale, that campaign loads from its rows with the journal after them (the other one
  from its image), exact;
- an image of another layout: refused, the rows + journal way, exact.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import eventually, webjs_ack
from tests.proc import DaemonProcess, api, write_config

STATUS = {2: "delivered", 3: "read"}


def post_ack(url: str, message_id: str, level: int) -> None:
    """A webjs ACK, sent again while the daemon answers 503 (its checkpoints are failing
    on purpose: a journal commit then brings storage back)."""
    body = json.dumps([{"event": "message_status_updated",
                        "data": {"message_id": message_id, "ack_level": level}}]).encode()
    until_taken(lambda: urllib.request.urlopen(urllib.request.Request(
        f"{url}/webhooks/webjs", data=body,
        headers={"Content-Type": "application/json"}), timeout=10).read(), "the webhook")


def register(url: str, uuid: str, ids: list[str]) -> None:
    until_taken(lambda: api(f"{url}/api/campaigns/{uuid}/messages", "POST", {"messages": [
        {"recipient": f"62812{zlib.crc32(i.encode()) % 10**7:07d}", "message_id": i}
        for i in ids]}), "the registration")


def until_taken(call: Callable[[], object], what: str) -> None:
    """Call until it is not refused with 503 (storage failing on purpose, or starting)."""
    for _ in range(200):
        try:
            call()
            return
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
            time.sleep(0.05)
    raise AssertionError(f"{what} was never taken")


def rows_of(url: str, uuid: str) -> dict[str, str]:
    """The rows API (it takes a checkpoint first: the rows as the campaign has them)."""
    page = api(f"{url}/api/campaigns/{uuid}/messages?limit=1000")
    return {r["message_id"]: r["status"] for r in page["messages"]}


def meta(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {k: int(v) for k, v in conn.execute(
            "SELECT key, value FROM meta WHERE key IN ('checkpoint_seq', 'image_seq')")}


def started(log: Path) -> dict[str, Any]:
    lines = [json.loads(line) for line in log.read_text().splitlines()
             if line.startswith("{")]
    return [e for e in lines if e.get("event") == "runtime.started"][-1]


def expect_counts(statuses: dict[str, str]) -> dict[str, int]:
    values = list(statuses.values())
    return {"total_message_count": len(values),
            "total_delivered_count": sum(v in ("delivered", "read") for v in values),
            "total_read_count": values.count("read")}


def counts(url: str, uuid: str) -> dict[str, int]:
    stats = api(f"{url}/api/campaigns/{uuid}")["campaign"]["statistics"]
    return {k: stats[k] for k in ("total_message_count", "total_delivered_count",
                                  "total_read_count")}


def chunk_rowids(db: Path) -> dict[tuple[str, int], int]:
    """Each stored image chunk's rowid: a chunk written again gets a new one."""
    with sqlite3.connect(db) as conn:
        return {(name, chunk): rowid for rowid, name, chunk in conn.execute(
            "SELECT rowid, name, chunk FROM recovery_image_chunks")}


def killed_after_an_image(tmp_path: Path) -> tuple[Path, str, dict[str, str]]:
    """The database of a daemon killed after a checkpoint committed its images and
    before it wrote their rows; and every message's status as acknowledged."""
    # Chunks of 4 rows (store.image_chunk_rows): the second image rewrites only those of
    # the rows acknowledged since the first (and the new ones), the rest stay as stored.
    config = write_config(tmp_path, **{"store.checkpoint_interval": 3600.0,
                                       "store.image_chunk_rows": 4})
    db = tmp_path / "campaignd.sqlite3"
    proc = DaemonProcess(config)
    try:
        url = proc.url
        uuid = api(f"{url}/api/campaigns", "POST",
                   {"workspace_id": 1, "name": "images"})["campaign"]["uuid"]
        quiet = api(f"{url}/api/campaigns", "POST",
                    {"workspace_id": 1, "name": "quiet"})["campaign"]["uuid"]
        register(url, quiet, [f"Q{i}" for i in range(5)])
        expected: dict[str, str] = {}
        first = [f"A{i}" for i in range(30)]
        register(url, uuid, first)
        expected.update(dict.fromkeys(first, "pending"))
        for i in range(20):
            post_ack(url, f"A{i}", 2)
            expected[f"A{i}"] = "delivered"
        assert rows_of(url, uuid) == expected  # a whole checkpoint: rows and images
        with sqlite3.connect(db) as conn:  # from now on no row can be written
            conn.executescript(
                "CREATE TABLE test_block (x); CREATE TRIGGER test_block_rows BEFORE UPDATE"
                " OF level ON messages BEGIN INSERT INTO test_block VALUES (1); END;"
                " DROP TABLE test_block;")
        for i in range(10):
            post_ack(url, f"A{i}", 3)
            expected[f"A{i}"] = "read"
        for i in range(20, 30):
            post_ack(url, f"A{i}", 2)
            expected[f"A{i}"] = "delivered"
        post_ack(url, "GHOST", 2)  # not registered yet: kept as an orphan
        for i in range(3):  # the quiet campaign's only events after the rows it has
            post_ack(url, f"Q{i}", 2)
        before = meta(db)
        chunks_before = chunk_rowids(db)
        rows_of(url, uuid)  # a checkpoint: its images commit, its rows fail
        after = meta(db)
        chunks_after = chunk_rowids(db)
        campaign = max({name for name, _ in chunks_after},  # "images" (quiet has 2)
                       key=lambda name: sum(n == name for n, _ in chunks_after))
        # A0-A9 (chunks 0-2) read, A20-A29 (chunks 5-7) delivered: rewritten; chunks
        # 3 and 4 (A12-A19) kept as the first image wrote them; all 8 there.
        assert sorted(c for name, c in chunks_after if name == campaign) == list(range(8))
        kept = {c for name, c in chunks_after if name == campaign
                and chunks_after[(name, c)] == chunks_before[(name, c)]}
        assert kept == {3, 4}
        assert after["checkpoint_seq"] == before["checkpoint_seq"]
        assert after["image_seq"] > after["checkpoint_seq"]
        # After the image: registered and acknowledged, in the journal only.
        late = [f"B{i}" for i in range(5)]
        register(url, uuid, late)
        for i in range(3):
            post_ack(url, f"B{i}", 3)
        expected.update({"B0": "read", "B1": "read", "B2": "read", "B3": "pending",
                         "B4": "pending"})
        post_ack(url, "A25", 3)
        expected["A25"] = "read"
    finally:
        proc.kill()
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER test_block_rows")
    return config, (uuid, quiet), expected


QUIET = {"Q0": "delivered", "Q1": "delivered", "Q2": "delivered", "Q3": "pending",
         "Q4": "pending"}


def assert_both_exact(url: str, uuid: str, expected: dict[str, str], quiet: str) -> None:
    """The busy campaign's and the quiet one's counters and rows are what was sent (the
    quiet one had events only between its rows and the image)."""
    assert counts(url, uuid) == expect_counts(expected)
    assert rows_of(url, uuid) == expected
    assert counts(url, quiet) == expect_counts(QUIET)
    assert rows_of(url, quiet) == QUIET


@pytest.mark.parametrize("case", ["as written", "stale", "one stale", "other layout"])
def test_a_kill_after_the_images_before_their_rows_loses_nothing(tmp_path: Path,
                                                                case: str) -> None:
    config, (uuid, quiet), expected = killed_after_an_image(tmp_path)
    db = tmp_path / "campaignd.sqlite3"
    seqs = meta(db)
    with sqlite3.connect(db) as conn:
        if case == "stale":  # as a sender's outcome written after the image does
            conn.execute("UPDATE campaigns SET row_writes = row_writes + 1")
        elif case == "one stale":  # only that campaign loads from its rows
            conn.execute("UPDATE campaigns SET row_writes = row_writes + 1 WHERE uuid = ?",
                         (uuid,))
        elif case == "other layout":
            body = conn.execute("SELECT body FROM recovery_images WHERE name LIKE"
                                " 'campaign:%'").fetchone()[0]
            conn.execute("UPDATE recovery_images SET body = ? WHERE name LIKE 'campaign:%'",
                         (body[:4] + b"\x63\x00" + body[6:],))
    proc = DaemonProcess(config)
    try:
        url = proc.url
        log = started(tmp_path / "daemon.log")
        if case == "as written":
            assert (log["replayed_from"], log["images"]) == (seqs["image_seq"], 2)
        elif case == "one stale":  # the quiet one from its image, the journal from the
            # rows' seq but up to the image's only for the stale campaign
            assert (log["replayed_from"], log["images"]) == (seqs["checkpoint_seq"], 1)
            assert counts(url, quiet) == expect_counts(QUIET)
        else:
            assert (log["replayed_from"], log["images"]) == (seqs["checkpoint_seq"], 0)
        assert counts(url, uuid) == expect_counts(expected)
        assert rows_of(url, uuid) == expected  # the pending rows written now
        register(url, uuid, ["GHOST"])  # the orphan kept with the image applies
        expected["GHOST"] = "delivered"
        assert counts(url, uuid) == expect_counts(expected)
    finally:
        assert proc.terminate() == 0
    now = meta(db)
    assert now["checkpoint_seq"] >= seqs["image_seq"]  # the journal compacted past it
    again = DaemonProcess(config)
    try:
        # The quiet campaign had events only between its rows and the image, none in
        # the journal replayed, and nobody asked for it: it was loaded and its rows
        # written before the journal was compacted past them.
        assert_both_exact(again.url, uuid, expected, quiet)
    finally:
        again.terminate()


async def test_periodic_checkpoints_take_images_while_rows_wait(daemon_factory: Any,
                                                                monkeypatch: Any) -> None:
    """A periodic checkpoint writes rows for ROW_SECONDS only (0 here: none) and leaves
    them to the next run, so its images move on while the rows wait; past CARRY_RUNS
    runs one writes them all and compacts the journal, and the rows match the counters
    (store/checkpoint.py `_write_rows`)."""
    from store import checkpoint

    monkeypatch.setattr(checkpoint, "ROW_SECONDS", 0.0)
    monkeypatch.setattr(checkpoint, "CARRY_RUNS", 3)
    d = await daemon_factory(**{"store.checkpoint_interval": 0.05})
    store = d.runtime.store
    await d.create_campaign(1, "Deferred", "deferred")
    await d.register("deferred", [{"recipient": f"6281200001{i:03d}", "message_id": f"D{i}"}
                                  for i in range(7)])
    seen: set[tuple[int, int]] = set()
    level = 2

    async def images_ahead_then_caught_up() -> bool:
        nonlocal level
        status, _ = await d.post_json("/webhooks/webjs", webjs_ack(f"D{level % 7}",
                                                                     2 + level % 2))
        assert status == 200
        level += 1
        checkpointer = d.runtime.checkpointer
        idle = not checkpointer.running  # between two checkpoints (not inside one)
        got = {k: int(v) for k, v in await store.fetchall(
            "SELECT key, value FROM meta WHERE key IN ('checkpoint_seq', 'image_seq')")}
        if idle and not checkpointer.running:
            seen.add((got.get("checkpoint_seq", 0), got.get("image_seq", 0)))
        images_ahead = any(c < i for c, i in seen)  # rows deferred, images moved on
        compacted = len({c for c, _ in seen}) > 1  # and later a run wrote them all
        return images_ahead and compacted

    await eventually(images_ahead_then_caught_up, timeout=60)
    _, body = await d.request("GET", "/api/campaigns/deferred/messages?limit=100")
    rows = {r["message_id"]: r["status"] for r in body["messages"]}
    _, campaign = await d.request("GET", "/api/campaigns/deferred")
    stats = campaign["campaign"]["statistics"]
    assert sum(s in ("delivered", "read") for s in rows.values()) == \
        stats["total_delivered_count"]
    assert sum(s == "read" for s in rows.values()) == stats["total_read_count"]
