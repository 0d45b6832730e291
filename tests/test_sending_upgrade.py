"""A database created before sending existed upgrades in place at start."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from store.schema import SCHEMA


async def test_old_database_gains_the_sending_columns(daemon_factory: Any, tmp_path: Path
                                                      ) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
        now = time.time()
        db.execute("INSERT INTO campaigns (no, uuid, workspace_id, name, status, created_at,"
                   " updated_at) VALUES (1, 'old-one', 1, 'Old', 'pending', ?, ?)", (now, now))
        db.execute("INSERT INTO messages (campaign_no, row, message_id, recipient, level, cls,"
                   " ts_queued) VALUES (1, 0, 'ABC', '6281200000001', 3, 3, ?)", (now,))
    d = await daemon_factory(**{"store.path": str(path)})
    status, body = await d.request("GET", "/api/campaigns/old-one/messages")
    assert status == 200, body
    assert body["messages"][0]["status"] == "delivered"
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "New", "message": "Hi", "recipients": ["6281200000002"],
        "start": True})
    assert status == 201, body
    with sqlite3.connect(path) as db:
        columns = {r[1] for r in db.execute("PRAGMA table_info(messages)")}
    assert {"send_state", "attempts", "variables"} <= columns
