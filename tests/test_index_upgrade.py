"""A daemon upgraded in place over an id index image of the layout before memory11 (a
table of hash and value slots, layout 2): the start still trusts the images (the index's
entries are added again, in runs), routes every id, and its first checkpoint writes the
index in layout 3. A real daemon process killed after an image, as in
tests/test_recovery_images.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from domain.image import index_from_bytes
from tests.proc import DaemonProcess
from tests.test_index_runs import old_layout_image
from tests.test_recovery_images import (
    assert_both_exact,
    counts,
    expect_counts,
    killed_after_an_image,
    meta,
    post_ack,
    rows_of,
    started,
)


def index_layout(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        body = conn.execute("SELECT body FROM recovery_images WHERE name = 'index'"
                            ).fetchone()[0]
    return int.from_bytes(body[4:6], "little")


def test_an_index_image_of_the_layout_before_is_loaded_and_written_anew(tmp_path: Path
                                                                         ) -> None:
    config, (uuid, quiet), expected = killed_after_an_image(tmp_path)
    db = tmp_path / "campaignd.sqlite3"
    seqs = meta(db)
    assert index_layout(db) == 3
    with sqlite3.connect(db) as conn:  # the same index as the release before wrote it
        body = conn.execute("SELECT body FROM recovery_images WHERE name = 'index'"
                            ).fetchone()[0]
        index = index_from_bytes(body)
        _, hashes, _, _, overflow = index.arrays()
        entries = [(h, index._value(g)) for g, h in enumerate(hashes) if g]
        conn.execute("UPDATE recovery_images SET body = ? WHERE name = 'index'",
                     (old_layout_image(entries, 64, overflow),))
    assert index_layout(db) == 2
    proc = DaemonProcess(config)
    try:
        url = proc.url
        log = started(tmp_path / "daemon.log")
        assert (log["replayed_from"], log["images"]) == (seqs["image_seq"], 2)
        assert counts(url, uuid) == expect_counts(expected)
        post_ack(url, "A29", 3)  # an id the old image routed
        expected["A29"] = "read"
        assert rows_of(url, uuid) == expected  # a checkpoint: the index written anew
        assert index_layout(db) == 3
    finally:
        assert proc.terminate() == 0
    again = DaemonProcess(config)
    try:
        assert_both_exact(again.url, uuid, expected, quiet)
    finally:
        again.terminate()
