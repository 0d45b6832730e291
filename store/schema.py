"""The SQLite schema. Message rows are the snapshot; the journal is what came since.

A message's stored state is written by checkpoints (store/checkpoint.py), never per
ACK. Every webhook's events are first made durable as one journal row; a checkpoint
writes the rows those events changed and then deletes the journal up to its sequence
number. Recovery is: rows as stored + the remaining journal, replayed. Replaying an
event that a row already reflects is harmless (status.py's rules are idempotent).

SCHEMA is the base as release 0.1 created it; every later change is a migration in
store/migrations.py, applied in order at open to fresh and old databases alike.
"""

SCHEMA_VERSION = 2  # 2: a journal row is a whole group-commit batch

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA temp_store=MEMORY",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS campaigns (
    no INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    workspace_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    message TEXT,
    gateway TEXT,
    rate REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    statistics TEXT
);
CREATE INDEX IF NOT EXISTS campaigns_workspace ON campaigns (workspace_id, no);

CREATE TABLE IF NOT EXISTS messages (
    campaign_no INTEGER NOT NULL REFERENCES campaigns (no),
    row INTEGER NOT NULL,
    message_id TEXT UNIQUE,
    raw_id TEXT,
    h INTEGER,
    recipient TEXT NOT NULL,
    contact_id TEXT,
    level INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    cls INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    ts_queued REAL NOT NULL,
    ts_pending REAL,
    ts_sent REAL,
    ts_delivered REAL,
    ts_read REAL,
    ts_played REAL,
    ts_failed REAL,
    PRIMARY KEY (campaign_no, row)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    received_at REAL NOT NULL,
    events BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS orphans (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    source TEXT NOT NULL,
    event BLOB NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS orphans_message ON orphans (message_id);
"""

# Column order of a message row's state, as checkpoints write it and actors load it.
STATE_COLUMNS = (
    "level",
    "failed",
    "cls",
    "reason",
    "ts_pending",
    "ts_sent",
    "ts_delivered",
    "ts_read",
    "ts_played",
    "ts_failed",
)
