"""Row 7: the seed system's per-ACK work against campaignd's, on the same SQLite.

The seed (see ../shared/seeds/000_*) handles each ACK in a queue job: find the chat by
WhatsApp id and update its status, update the campaign log's metadata, then recompute
the campaign's counters with its aggregate query (campaign_logs LEFT JOIN chats) and
store them. On equal terms with campaignd: the same SQLite `synchronous` mode (the
daemon's default), and the same commit pattern, i.e. the ACKs of 32 concurrent senders
share one commit, as campaignd's group commit does (the seed's own pattern, each job
committed on its own, is measured too and reported beside it). campaignd's figure is
single-status webjs webhooks through the running daemon (durable, wrk, 32 connections),
each raising a message one level (bench/ladder.py), campaigns of the same size, the
counters checked afterwards.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import time
from pathlib import Path

from bench.common import Row, create_campaign, daemon, scratch
from bench.ladder import WebjsLadder
from bench.rounds import Target, alternate
from core.config import KEYS

SIZES = (10_000, 50_000, 100_000)

SEED_SCHEMA = """
CREATE TABLE campaigns (id INTEGER PRIMARY KEY, uuid TEXT, messages_sent INT DEFAULT 0,
  messages_delivered INT DEFAULT 0, messages_read INT DEFAULT 0, messages_failed INT DEFAULT 0);
CREATE TABLE chats (id INTEGER PRIMARY KEY, workspace_id INT, whatsapp_message_id TEXT,
  status TEXT, message_status TEXT DEFAULT 'pending', ack_level INT, delivered_at TEXT,
  read_at TEXT, created_at TEXT);
CREATE INDEX chats_whatsapp_message_id_index ON chats (whatsapp_message_id);
CREATE INDEX chats_status_created_index ON chats (message_status, created_at);
CREATE TABLE campaign_logs (id INTEGER PRIMARY KEY, campaign_id INT NOT NULL,
  contact_id INT NOT NULL, chat_id INT, metadata TEXT, status TEXT DEFAULT 'pending',
  retry_count INT DEFAULT 0, created_at TEXT, updated_at TEXT);
CREATE INDEX campaign_logs_campaign_id_index ON campaign_logs (campaign_id);
CREATE INDEX campaign_logs_contact_id_index ON campaign_logs (contact_id);
CREATE INDEX campaign_logs_status_index ON campaign_logs (status);
"""

GET_COUNTS = """
SELECT COUNT(*) AS total_message_count,
  SUM(CASE WHEN campaign_logs.status = 'success' AND chat.status IN
      ('accepted', 'sent', 'delivered', 'read') THEN 1 ELSE 0 END) AS total_sent_count,
  SUM(CASE WHEN campaign_logs.status = 'success' AND chat.status IN ('delivered', 'read')
      THEN 1 ELSE 0 END) AS total_delivered_count,
  SUM(CASE WHEN campaign_logs.status = 'failed' THEN 1 ELSE 0 END) +
  SUM(CASE WHEN campaign_logs.status = 'success' AND chat.status = 'failed' THEN 1 ELSE 0 END)
      AS total_failed_count,
  SUM(CASE WHEN campaign_logs.status = 'success' AND chat.status = 'read' THEN 1 ELSE 0 END)
      AS total_read_count
FROM campaign_logs LEFT JOIN chats AS chat ON chat.id = campaign_logs.chat_id
WHERE campaign_logs.campaign_id = ?
"""


def seed_acks_per_second(size: int, folder: Path, synchronous: str, group: int,
                         seconds: float = 4.0) -> float:
    """ACKs per second through the seed's jobs; `group` ACKs share one commit (1: each
    job commits on its own, two commits per ACK as the seed does)."""
    path = folder / f"seed-{size}-{group}.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.executescript(SEED_SCHEMA)
    db.execute("BEGIN")
    db.execute("INSERT INTO campaigns (id, uuid) VALUES (1, 'c1')")
    db.executemany("INSERT INTO chats (id, workspace_id, whatsapp_message_id, status) "
                   "VALUES (?, 1, ?, 'sent')", ((i, f"W{i}") for i in range(1, size + 1)))
    db.executemany("INSERT INTO campaign_logs (campaign_id, contact_id, chat_id, status) "
                   "VALUES (1, ?, ?, 'success')", ((i, i) for i in range(1, size + 1)))
    db.execute("COMMIT")
    rng = random.Random(7)
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if group > 1:
            db.execute("BEGIN")
        for _ in range(group):
            wid = f"W{rng.randint(1, size)}"
            status = rng.choice(("delivered", "read"))
            # UpdateMessageStatusJob
            if group == 1:
                db.execute("BEGIN")
            (chat_id,) = db.execute("SELECT id FROM chats WHERE whatsapp_message_id = ?",
                                    (wid,)).fetchone()
            db.execute("UPDATE chats SET message_status = ?, status = ?, ack_level = ?, "
                       "delivered_at = datetime('now') WHERE id = ?",
                       (status, status, 3 if status == "delivered" else 4, chat_id))
            row = db.execute("SELECT id, metadata FROM campaign_logs WHERE chat_id = ?",
                             (chat_id,)).fetchone()
            meta = json.loads(row[1] or "{}")
            meta.update(message_status=status, status_updated_at=time.time())
            db.execute("UPDATE campaign_logs SET metadata = ? WHERE id = ?",
                       (json.dumps(meta), row[0]))
            if group == 1:
                db.execute("COMMIT")
            # UpdateCampaignStatisticsJob
            counts = db.execute(GET_COUNTS, (1,)).fetchone()
            db.execute("UPDATE campaigns SET messages_sent = ?, messages_delivered = ?, "
                       "messages_read = ?, messages_failed = ? WHERE id = 1",
                       (counts[1], counts[2], counts[4], counts[3]))
            done += 1
        if group > 1:
            db.execute("COMMIT")
    rate = done / (time.perf_counter() - started)
    db.close()
    return rate


def campaignd_acks_per_second(size: int, folder: Path) -> tuple[float, dict[str, object]]:
    """Campaigns of `size` messages (several, so the ladder lasts the round)."""
    parts = max(1, 150_000 // size)
    ladder = WebjsLadder(size * parts, parts=parts)
    with daemon() as d:
        uuids = [create_campaign(d.url, size, first=lo)
                 for lo, _ in ladder.split.ranges()]
        target = Target(f"seed-{size}", d.url, "/webhooks/webjs", ladder, folder, d, uuids)
        alternate([target], 1, 5)
    return target.median, {"campaigns": parts, **target.details}


def run() -> list[Row]:
    rows = []
    folder = scratch("seed")
    synchronous = KEYS["store.synchronous"].default
    try:
        for size in SIZES:
            grouped = seed_acks_per_second(size, folder, synchronous, 32)
            own = seed_acks_per_second(size, folder, synchronous, 1)
            ours, details = campaignd_acks_per_second(size, folder)
            rows.append(Row(
                f"per-ACK cost vs the seed's recompute, {size:,} messages",
                f"campaignd {ours:,.0f} ACKs/s vs seed {grouped:,.0f} (x{ours / grouped:,.0f});"
                f" seed committing each job {own:,.0f}", "beat the seed", ours > grouped,
                {"seed_grouped": grouped, "seed_own_commits": own, "campaignd": ours,
                 "synchronous": synchronous, **details}))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows
