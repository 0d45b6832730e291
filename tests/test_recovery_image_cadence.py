"""Recovery images between checkpoints, and the loads that use them (wave 6, issue 20;
store/checkpoint.py `_image_only`, store/image.py, docs/reliability.md "Recovery images").

- Images alone between two checkpoints (a quarter of the interval): `image_seq` moves
  ahead of `checkpoint_seq` while the rows wait for the next checkpoint, and a daemon
  killed with SIGKILL right then replays only the journal after that image, with
  counters and rows exact (a real process).
- Every sender write counts against the images, the first attempt too (it clears the
  row's failure columns in the table): an image taken before one is not trusted.
- A campaign load from rows that fails part way and is retried counts each row once.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from store.campaigns import CampaignStore
from store.image import trusted_images
from tests.conftest import close_server, eventually, webjs_ack
from tests.proc import DaemonProcess, api, write_config
from tests.test_recovery_images import (
    counts,
    expect_counts,
    meta,
    post_ack,
    register,
    rows_of,
    started,
)


def test_a_kill_between_checkpoints_replays_only_after_the_images_taken_alone(
        tmp_path: Path) -> None:
    config = write_config(tmp_path, **{"store.checkpoint_interval": 2.0,
                                       "store.image_chunk_rows": 8})
    db = tmp_path / "campaignd.sqlite3"
    proc = DaemonProcess(config)
    expected: dict[str, str] = {}
    ahead: dict[str, int] = {}
    try:
        url = proc.url
        uuid = api(f"{url}/api/campaigns", "POST",
                   {"workspace_id": 1, "name": "cadence"})["campaign"]["uuid"]
        ids = [f"C{i}" for i in range(60)]
        register(url, uuid, ids)
        expected.update(dict.fromkeys(ids, "pending"))
        deadline = time.monotonic() + 60
        step = 0
        while True:  # ACKs until an image alone is seen ahead of the rows
            message_id = ids[step % len(ids)]
            level = 2 if step < len(ids) else 3
            post_ack(url, message_id, level)
            expected[message_id] = "delivered" if level == 2 else "read"
            step += 1
            seqs = meta(db)
            if step > len(ids) and seqs.get("image_seq", 0) > seqs.get("checkpoint_seq", 0):
                ahead = seqs
                break
            assert time.monotonic() < deadline, "no image was taken between checkpoints"
            time.sleep(0.01)
    finally:
        proc.kill()
    now = meta(db)
    proc = DaemonProcess(config)
    try:
        log = started(tmp_path / "daemon.log")
        assert log["images"] == 1
        # from the newest image (one taken alone, or a checkpoint's if one came since)
        assert log["replayed_from"] == now["image_seq"] >= ahead["image_seq"]
        assert counts(proc.url, uuid) == expect_counts(expected)
        assert rows_of(proc.url, uuid) == expected
    finally:
        assert proc.terminate() == 0
    again = DaemonProcess(config)  # and after the clean stop's checkpoint
    try:
        assert counts(again.url, uuid) == expect_counts(expected)
        assert rows_of(again.url, uuid) == expected
    finally:
        again.terminate()


async def test_a_first_attempt_after_an_image_makes_it_stale(daemon_factory: Any) -> None:
    d = await daemon_factory(**{"store.checkpoint_interval": 3600.0})
    await d.create_campaign(1, "Sent", "sent")
    await d.register("sent", [{"recipient": "6281200000001", "message_id": "S0"}])
    status, _ = await d.post_json("/webhooks/webjs", webjs_ack("S0", 2))  # journal seq 1
    assert status == 200
    await eventually(lambda: _delivered(d, "sent", 1))  # its actor runs: imaged
    store = d.runtime.store
    seq = await d.runtime.checkpoint()
    trusted = await trusted_images(store, seq)
    assert len(trusted.campaigns) == 1 and trusted.index is not None
    no = next(iter(trusted.campaigns))
    before = (await store.fetchone("SELECT row_writes FROM campaigns WHERE no = ?",
                                   (no,)))[0]
    await d.runtime.campaigns.record_attempt(no, 0, 1, time.time())  # the FIRST attempt
    after = (await store.fetchone("SELECT row_writes FROM campaigns WHERE no = ?",
                                  (no,)))[0]
    assert after == before + 1
    stale = await trusted_images(store, seq)
    assert stale.campaigns == {} and stale.stale == {no}  # it loads from its rows


async def test_a_load_from_rows_retried_after_a_partial_read_counts_each_row_once(
        daemon_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"store.path": str(tmp_path / "retry.sqlite3"),
                "store.checkpoint_interval": 3600.0}
    d = await daemon_factory(**settings)
    await d.create_campaign(1, "Retried", "retried")
    await d.register("retried", [{"recipient": f"62812000{i:05d}", "message_id": f"R{i}"}
                                 for i in range(20)])
    for i in range(5):
        status, _ = await d.post_json("/webhooks/webjs", webjs_ack(f"R{i}", 3))
        assert status == 200
    await eventually(lambda: _read(d, "retried", 5))
    await close_server(d.server)
    with sqlite3.connect(settings["store.path"]) as conn:  # no images: rows it is
        conn.execute("DELETE FROM recovery_images")
        conn.execute("DELETE FROM recovery_image_chunks")
        conn.execute("DELETE FROM meta WHERE key = 'image_seq'")

    original = CampaignStore.state_columns
    failed: list[int] = []

    async def fails_once_part_way(self: CampaignStore, campaign_no: int, chunk: int = 50_000,
                                  **kw: Any) -> Any:
        parts = 0
        async for part in original(self, campaign_no, chunk=6, **kw):
            yield part
            parts += 1
            if parts == 2 and not failed:  # 12 of the 20 rows sent, then storage fails
                failed.append(campaign_no)
                raise sqlite3.OperationalError("disk I/O error (test)")

    monkeypatch.setattr(CampaignStore, "state_columns", fails_once_part_way)
    again = await daemon_factory(**settings)

    async def loaded() -> Any:
        status, body = await again.request("GET", "/api/campaigns/retried")
        return body["campaign"]["statistics"] if status == 200 else None

    stats = await eventually(loaded, timeout=20)
    assert failed  # the first read did fail part way
    assert stats["total_message_count"] == 20
    assert stats["total_read_count"] == 5


async def _delivered(d: Any, uuid: str, n: int) -> bool:
    return (await d.stats(uuid))["total_delivered_count"] == n


async def _read(d: Any, uuid: str, n: int) -> bool:
    return (await d.stats(uuid))["total_read_count"] == n
