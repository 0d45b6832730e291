"""Row 7: the seed system's per-ACK work against campaignd's, on the same SQLite.

The seed (see ../shared/seeds/000_*) handles each ACK in a queue job: find the chat by
WhatsApp id and update its status, update the campaign log's metadata, then recompute
the campaign's counters with its aggregate query (campaign_logs LEFT JOIN chats) and
store them. Each job commits on its own. campaignd's figure is single-status webjs
webhooks through the running daemon (durable, wrk, 32 connections) at the same sizes.
"""

from __future__ import annotations

import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import Row, create_campaign, daemon, wrk
from bench.webhook import UNSIGNED_LUA

SIZES = (10_000, 50_000, 100_000)
SEED_FIGURES = {10_000: 235, 50_000: 52, 100_000: 27}  # SPEC section 4, this machine

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


def seed_acks_per_second(size: int, seconds: float = 4.0) -> float:
    path = Path(tempfile.mkdtemp(prefix="campaignd-bench-seed-")) / "seed.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
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
        wid = f"W{rng.randint(1, size)}"
        status = rng.choice(("delivered", "read"))
        # UpdateMessageStatusJob
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
        db.execute("COMMIT")
        # UpdateCampaignStatisticsJob
        counts = db.execute(GET_COUNTS, (1,)).fetchone()
        db.execute("UPDATE campaigns SET messages_sent = ?, messages_delivered = ?, "
                   "messages_read = ?, messages_failed = ? WHERE id = 1",
                   (counts[1], counts[2], counts[4], counts[3]))
        done += 1
    rate = done / (time.perf_counter() - started)
    db.close()
    return rate


def campaignd_acks_per_second(size: int, script_dir: Path) -> float:
    script = script_dir / f"webjs-{size}.lua"
    script.write_text(UNSIGNED_LUA.replace("%(n)d", str(size)).replace("%%", "%"))
    with daemon() as d:
        create_campaign(d.url, size)
        result = wrk(f"{d.url}/webhooks/webjs", script, 5)
    return result["rps"]


def run() -> list[Row]:
    rows = []
    script_dir = Path(tempfile.mkdtemp(prefix="campaignd-bench-seedwrk-"))
    for size in SIZES:
        seed = seed_acks_per_second(size)
        ours = campaignd_acks_per_second(size, script_dir)
        rows.append(Row(f"per-ACK cost vs the seed's recompute, {size:,} messages",
                        f"campaignd {ours:,.0f} ACKs/s vs seed {seed:,.0f} ACKs/s "
                        f"(x{ours / seed:,.0f}; SPEC quotes {SEED_FIGURES[size]})",
                        "beat the seed", ours > seed, {"seed": seed, "campaignd": ours}))
    return rows
