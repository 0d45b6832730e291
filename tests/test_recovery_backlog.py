"""Images that keep close behind a flood (recovery10, issue 20; store/checkpoint.py
`_image_wanted`, docs/reliability.md "Recovery images").

With a checkpoint interval of an hour no checkpoint and no image is due by the clock
during the test; images are taken only because the events dispatched since the newest
one reach `store.image_backlog_events`. A real daemon floods through Cloud API batches,
is SIGKILLed right after its last 2xx (with events after its newest image), and the
restart replays exactly the journal after that image: counters and every row equal
what was sent, and again after a clean stop. The id index did not grow after its first
image, so its row keeps that image's seq while `image_seq` moves on (an image no longer
rewrites its 24 MB row to move its seq): the restart still trusts it.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from pathlib import Path

import orjson

from tests.proc import DaemonProcess, api, write_config
from tests.test_recovery_images import counts, expect_counts, meta, register, started

MESSAGES = 900
BATCH = 100
BACKLOG = 300  # store.image_backlog_events: a third of a pass


def post_statuses(url: str, ids: list[str], status: str, at: int) -> None:
    """One Cloud API webhook with these statuses; answered 200 (durable)."""
    body = json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": "1", "changes": [{"field": "messages", "value": {"statuses": [
            {"id": i, "status": status, "timestamp": str(at), "recipient_id": "16505551234"}
            for i in ids]}}]}]}).encode()
    request = urllib.request.Request(f"{url}/webhooks/cloud", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200


def post_pass(url: str, ids: list[str], status: str, at: int) -> None:
    for start in range(0, len(ids), BATCH):
        post_statuses(url, ids[start:start + BATCH], status, at)


def journal_events_after(db: Path, seq: int) -> int:
    """The events the journal holds after `seq` (what a start from there replays)."""
    with sqlite3.connect(db) as conn:
        blobs = conn.execute("SELECT events FROM journal WHERE seq > ?", (seq,)).fetchall()
    return sum(len(rows) for (blob,) in blobs for _, rows in orjson.loads(blob))


def all_rows(url: str, uuid: str) -> dict[str, str]:
    """Every row through the rows API (it takes a checkpoint first): one page."""
    page = api(f"{url}/api/campaigns/{uuid}/messages?limit=1000")
    assert page["next_cursor"] is None
    return {r["message_id"]: r["status"] for r in page["messages"]}


def index_row_seq(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT seq FROM recovery_images WHERE name = 'index'").fetchone()[0]


def test_a_flood_is_imaged_by_its_backlog_and_a_kill_replays_only_after_it(
        tmp_path: Path) -> None:
    config = write_config(tmp_path, **{"store.checkpoint_interval": 3600.0,
                                       "store.image_backlog_events": BACKLOG,
                                       "store.image_chunk_rows": 64})
    db = tmp_path / "campaignd.sqlite3"
    ids = [f"wamid.B{i}" for i in range(MESSAGES)]
    proc = DaemonProcess(config)
    try:
        url = proc.url
        uuid = api(f"{url}/api/campaigns", "POST",
                   {"workspace_id": 1, "name": "backlog"})["campaign"]["uuid"]
        register(url, uuid, ids)
        # the rows API takes a checkpoint: the id index and the campaign are imaged once
        assert set(all_rows(url, uuid).values()) == {"pending"}
        first = meta(db)["image_seq"]
        post_pass(url, ids, "sent", 1750000000)
        post_pass(url, ids, "delivered", 1750000001)
        deadline = time.monotonic() + 60
        while meta(db).get("image_seq", 0) <= first:  # delivered again: duplicates
            assert time.monotonic() < deadline, "the backlog never took an image"
            post_pass(url, ids[:BACKLOG], "delivered", 1750000001)
        post_pass(url, ids, "read", 1750000002)
    finally:
        proc.kill()  # right after the last 2xx: the read pass is after the images
    seqs = meta(db)
    assert seqs["image_seq"] > first and seqs.get("checkpoint_seq", 0) < first + 1
    assert index_row_seq(db) < seqs["image_seq"]  # the index row was left as it was
    backlog = journal_events_after(db, seqs["image_seq"])
    expected = dict.fromkeys(ids, "read")
    proc = DaemonProcess(config)
    try:
        log = started(tmp_path / "daemon.log")
        assert log["images"] == 1  # trusted: the campaign loaded from its image
        assert log["replayed_from"] == seqs["image_seq"]
        assert log["replayed_events"] == backlog
        assert counts(proc.url, uuid) == expect_counts(expected)
        assert all_rows(proc.url, uuid) == expected
    finally:
        assert proc.terminate() == 0
    again = DaemonProcess(config)  # after the clean stop's checkpoint
    try:
        assert counts(again.url, uuid) == expect_counts(expected)
        assert all_rows(again.url, uuid) == expected
    finally:
        again.terminate()
