"""Schema changes after the base schema, applied in order at open and recorded by name.

A fresh database gets `schema.SCHEMA` (the tables as release 0.1 created them) and then
every migration below, exactly like a database written by an earlier release, so there
is one path for both. Each migration runs in its own transaction and is recorded in
`schema_migrations`; one that was applied is never run again. Add a change as a new
entry at the END of `MIGRATIONS` (never edit an applied one), and test it against the
databases of the previous release in tests/fixtures/upgrade/ (tests/test_upgrade.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiosqlite

from domain.failures import from_text, lookup
from domain.phones import number_key_of
from store import tier_counts
from store.aggregates import create_tables


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[aiosqlite.Connection], Awaitable[None]]


async def columns_of(conn: aiosqlite.Connection, table: str) -> set[str]:
    async with conn.execute(f"PRAGMA table_info({table})") as cur:
        return {row[1] for row in await cur.fetchall()}


def add_columns(table: str, columns: Sequence[tuple[str, str]]) -> Callable[
        [aiosqlite.Connection], Awaitable[None]]:
    """ALTER TABLE ADD COLUMN for each column the table lacks (0.1 databases created by the
    sender's own ALTERs may have some already)."""

    async def apply(conn: aiosqlite.Connection) -> None:
        have = await columns_of(conn, table)
        for name, decl in columns:
            if name not in have:
                await conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    return apply


def run_sql(*statements: str) -> Callable[[aiosqlite.Connection], Awaitable[None]]:
    async def apply(conn: aiosqlite.Connection) -> None:
        for sql in statements:
            await conn.execute(sql)

    return apply


async def _sending_columns(conn: aiosqlite.Connection) -> None:
    await add_columns("campaigns", (("send_options", "TEXT"), ("status_reason", "TEXT")))(conn)
    # send_state: queued | attempting | accepted | resent | failed | unknown (NULL: not ours)
    await add_columns("messages", (("send_state", "TEXT"),
                                   ("attempts", "INTEGER NOT NULL DEFAULT 0"),
                                   ("variables", "TEXT")))(conn)


# --- failures (SPEC 7): structured failures, account webhooks ------------------------------

FAILURE_COLUMNS = (("failure_source", "TEXT"), ("failure_code", "TEXT"),
                   ("failure_title", "TEXT"), ("failure_details", "TEXT"),
                   ("failure_category", "TEXT"), ("failure_at", "REAL"))


async def _failure_columns(conn: aiosqlite.Connection) -> None:
    """Each message's kept failure as fields. Rows written before have a text reason
    only: their code comes from the text where it starts with one, else `other`."""
    await add_columns("messages", FAILURE_COLUMNS)(conn)
    async with conn.execute("SELECT campaign_no, row, reason, ts_failed FROM messages"
                            " WHERE reason IS NOT NULL AND failure_category IS NULL") as cur:
        rows = await cur.fetchall()
    updates = []
    for no, row, reason, ts_failed in rows:
        failure = from_text(reason, "")
        updates.append((failure.code, failure.title, lookup(failure.code).category, ts_failed,
                        no, row))
    await conn.executemany("UPDATE messages SET failure_code = ?, failure_title = ?,"
                           " failure_category = ?, failure_at = ? WHERE campaign_no = ?"
                           " AND row = ?", updates)
    await conn.execute("CREATE INDEX IF NOT EXISTS messages_failure_category ON messages"
                       " (campaign_no, failure_category, row)"
                       " WHERE failure_category IS NOT NULL")


# --- engagement (SPEC 6, docs/engagement.md) ---------------------------------------


async def _engagement(conn: aiosqlite.Connection) -> None:
    """Replies, button taps and opt-outs: each message row gets the key of its number
    (found by an index when a reply from that number arrives), inbound events and the
    suppression list get their tables. Rows of older releases get their key here."""
    await add_columns("messages", (("nh", "INTEGER"),))(conn)
    async with conn.execute(
            "SELECT campaign_no, row, recipient FROM messages WHERE nh IS NULL") as cur:
        keys = [(number_key_of(recipient), no, row) for no, row, recipient in
                await cur.fetchall()]
    await conn.executemany("UPDATE messages SET nh = ? WHERE campaign_no = ? AND row = ?",
                           [k for k in keys if k[0] is not None])
    await conn.execute("CREATE INDEX IF NOT EXISTS messages_number ON messages (nh)"
                       " WHERE nh IS NOT NULL")
    # One row per inbound event that is credited to a message or still waiting for the
    # facts that place it (store/engagement.py). `how`: explicit | window.
    await conn.execute("""
        CREATE TABLE IF NOT EXISTS inbound (
            id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            workspace_id INTEGER,
            number TEXT,
            at REAL NOT NULL,
            quoted_id TEXT,
            kind INTEGER NOT NULL,
            via INTEGER NOT NULL,
            button_payload TEXT,
            button_title TEXT,
            body TEXT,
            reason TEXT,
            campaign_no INTEGER,
            row INTEGER,
            how TEXT,
            received_at REAL NOT NULL
        )""")
    await conn.execute("CREATE INDEX IF NOT EXISTS inbound_target ON inbound"
                       " (campaign_no, row) WHERE campaign_no IS NOT NULL")
    await conn.execute("CREATE INDEX IF NOT EXISTS inbound_received ON inbound (received_at)")
    # The suppression list as the set of stop / start facts per workspace and number;
    # the latest fact decides (domain/suppression.py).
    await conn.execute("""
        CREATE TABLE IF NOT EXISTS suppressions (
            fact_id TEXT NOT NULL,
            workspace_id INTEGER NOT NULL,
            number TEXT NOT NULL,
            at REAL NOT NULL,
            kind INTEGER NOT NULL,
            reason TEXT,
            source TEXT NOT NULL,
            PRIMARY KEY (fact_id, workspace_id)
        ) WITHOUT ROWID""")


# --- sending, completed (SPEC 9; docs/sending.md) -------------------------------------

async def _sending_attempts(conn: aiosqlite.Connection) -> None:
    # The latest attempt stays in its message row (number in `attempts`, gateway id in
    # message_id); these say when it started, when its outcome came and a transient
    # error's reason. Earlier attempts move to `attempts`, so a recipient sent once (most
    # of them) has no row there: the history stays sparse.
    await add_columns("messages", (("attempt_at", "REAL"), ("outcome", "TEXT"),
                                   ("outcome_at", "REAL"), ("note", "TEXT")))(conn)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS attempts ("
        " campaign_no INTEGER NOT NULL REFERENCES campaigns (no),"
        " row INTEGER NOT NULL, attempt INTEGER NOT NULL,"
        " message_id TEXT, raw_id TEXT, h INTEGER,"
        " outcome TEXT NOT NULL, reason TEXT, started_at REAL, ended_at REAL,"
        " PRIMARY KEY (campaign_no, row, attempt)) WITHOUT ROWID")
    await conn.execute("CREATE INDEX IF NOT EXISTS attempts_message ON attempts (message_id)")


async def _sending_schedule(conn: aiosqlite.Connection) -> None:
    # send_at: when a `scheduled` campaign starts (epoch seconds); send_window: the
    # campaign's own window as JSON (NULL: the [sender] defaults); start_note: why it
    # started later than scheduled (the daemon was down at its time).
    await add_columns("campaigns", (("send_at", "REAL"), ("send_window", "TEXT"),
                                    ("start_note", "TEXT")))(conn)


async def _recovery_images(conn: aiosqlite.Connection) -> None:
    """store/image.py: one row per image (`campaign:<no>`, `index`); `row_writes` of a
    campaign counts the sender's direct writes to its rows."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS recovery_images (name TEXT PRIMARY KEY,"
        " seq INTEGER NOT NULL, row_writes INTEGER NOT NULL DEFAULT 0,"
        " rows INTEGER NOT NULL DEFAULT 0, body BLOB NOT NULL, pending BLOB)")
    await add_columns("campaigns", (("row_writes", "INTEGER NOT NULL DEFAULT 0"),))(conn)


# This node's stop / start facts queued for the other nodes of a cluster (migrations
# 0018 and 0020; store/stops_outbox.py): the whole list, and each fact as it is listed
# (`when`: a further condition). Facts from another node (`cluster/...`) never.
QUEUE_STOP_LIST = (
    "INSERT INTO stops_outbox (fact_id, workspace_id, number, at, kind, reason, source)"
    " SELECT fact_id, workspace_id, number, at, kind, reason, source FROM suppressions"
    " WHERE fact_id NOT LIKE 'cluster/%' ORDER BY at")


# A fact's outbox kind when it is no longer listed in that workspace (stop and start
# are domain/inbound.py's STOP and START).
WITHDRAWN = -1
WHILE_SHARING = " AND EXISTS (SELECT 1 FROM meta WHERE key = 'cluster_stops_sharing')"


def withdrawn_trigger() -> str:
    """A listed fact removed from a workspace (its reply was credited to another
    workspace's message after all) is queued as withdrawn, for the other nodes to drop."""
    return ("CREATE TRIGGER IF NOT EXISTS stops_outbox_delete AFTER DELETE ON suppressions"
            f" WHEN OLD.fact_id NOT LIKE 'cluster/%'{WHILE_SHARING} BEGIN"
            " INSERT INTO stops_outbox (fact_id, workspace_id, number, at, kind, reason,"
            f" source) VALUES (OLD.fact_id, OLD.workspace_id, OLD.number, OLD.at, {WITHDRAWN},"
            " NULL, OLD.source); END")


def stops_triggers(when: str) -> list[str]:
    return [f"CREATE TRIGGER IF NOT EXISTS stops_outbox_{event.lower()} AFTER {event}"
            f" ON suppressions WHEN NEW.fact_id NOT LIKE 'cluster/%'{when} BEGIN"
            " INSERT INTO stops_outbox (fact_id, workspace_id, number, at, kind, reason,"
            " source) VALUES (NEW.fact_id, NEW.workspace_id, NEW.number, NEW.at, NEW.kind,"
            " NEW.reason, NEW.source); END" for event in ("INSERT", "UPDATE")]


MIGRATIONS: list[Migration] = [
    # 0.1 added these lazily when the sender started; now every database has them at open.
    Migration("0001_sending_columns", _sending_columns),
    # The relay's durable outbox (store/relay.py): every accepted webhook request of a
    # source with forward_to, written in the journal's commit, deleted once relayed.
    # AUTOINCREMENT: ids only grow, also after the table was emptied (the forwarder
    # reads each source's rows after the last id it delivered).
    Migration("0002_relay_outbox", run_sql(
        "CREATE TABLE IF NOT EXISTS relay_outbox ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL,"
        " received_at REAL NOT NULL,"
        " headers BLOB NOT NULL, body BLOB NOT NULL)",
        "CREATE INDEX IF NOT EXISTS relay_outbox_source ON relay_outbox (source, id)")),
    # --- ops (issue 22): a tracked campaign's status is one word everywhere: tracking.
    # 0.1 left campaigns sent elsewhere (no message, no gateway) "pending" forever.
    Migration("0003_tracking_status", run_sql(
        "UPDATE campaigns SET status = 'tracking'"
        " WHERE status = 'pending' AND message IS NULL AND gateway IS NULL")),
    Migration("0004_failure_columns", _failure_columns),
    # Meta account and template webhooks (store/account.py), kept as they came.
    Migration("0005_account_events", run_sql(
        "CREATE TABLE IF NOT EXISTS account_events ("
        " id INTEGER PRIMARY KEY, dedupe TEXT NOT NULL UNIQUE, field TEXT NOT NULL,"
        " waba_id TEXT, at REAL NOT NULL, received_at REAL NOT NULL, event TEXT,"
        " phone TEXT, template_id TEXT, template_name TEXT, template_language TEXT,"
        " value TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS account_events_at ON account_events (at)")),
    Migration("0006_engagement", _engagement),
    # --- sending, completed (SPEC 9): attempts, scheduling and send windows
    Migration("0007_sending_attempts", _sending_attempts),
    Migration("0008_sending_schedule", _sending_schedule),
    # --- analytics (SPEC 8, docs/insights.md): the aggregate tables and each row's
    # counted figures; the rows already here are counted by the backfill once the daemon
    # runs (store/aggregates.py, store/insights.py Backfill).
    Migration("0009_insights", create_tables),
    # --- skips (SPEC 9, docs/sending.md "Skips"): why the sender did not send a row
    # (send_state 'skipped'): suppressed | unreachable, the suppression's reason and
    # source, and when. NULL on every row it did not skip.
    Migration("0010_skips", add_columns("messages", (
        ("skip_reason", "TEXT"), ("skip_detail", "TEXT"), ("skip_source", "TEXT"),
        ("skipped_at", "REAL")))),
    # --- contacts' tier counts (docs/insights.md "How it stays fast"): contacts counted
    # by their tier facts (store/tier_counts.py), counted here from the contacts a
    # database holds and moved from then on in each transaction that writes contacts.
    Migration("0011_contact_tiers", run_sql(*tier_counts.SCHEMA, *tier_counts.REBUILD)),
    # --- recovery images (issue 20, docs/reliability.md "Recovery images"): each active
    # campaign's ledger and the id index as bytes, written by checkpoints; and a count of
    # the sender's direct writes to a campaign's rows, so that an image taken before one
    # is known to be stale.
    Migration("0012_recovery_images", _recovery_images),
    # --- recovery images in chunks (wave 6, issue 20, store/image.py): a campaign's
    # image is its head in recovery_images (layout 2) and its arrays in chunks of
    # domain/image.py CHUNK_ROWS rows here, so a checkpoint rewrites only the chunks
    # that changed. Layout 1 images (0012) are refused at start: rows + journal, once.
    Migration("0013_recovery_image_chunks", run_sql(
        "CREATE TABLE IF NOT EXISTS recovery_image_chunks (name TEXT NOT NULL,"
        " chunk INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (name, chunk))")),
    # --- skipped rows found by index (issue 20, recovery): a campaign's load reads its
    # skipped rows (`CampaignStore.skips`); without an index that read walked every row of
    # the campaign, ~0.4 s at 1M messages on every start and every reload.
    Migration("0014_skipped_index", run_sql(
        "CREATE INDEX IF NOT EXISTS messages_skipped ON messages (campaign_no, row)"
        " WHERE skip_reason IS NOT NULL")),
    # --- the sender's start-up reads by index (wave 7, issue 20, recovery): at every
    # start `mark_unknown` and `unknown_counts` (store/campaigns.py) look for rows in
    # these states, which walked every message (0.25 s and 0.12 s at a million) on the
    # reader the campaigns' loads wait behind. Few rows are ever in them, so the indexes
    # are small; their WHERE is the queries' own (SQLite uses a partial index only then).
    Migration("0015_send_state_indexes", run_sql(
        "CREATE INDEX IF NOT EXISTS messages_sending ON messages (campaign_no)"
        " WHERE send_state IN ('attempting', 'retrying')",
        "CREATE INDEX IF NOT EXISTS messages_unknown ON messages (campaign_no)"
        " WHERE send_state = 'unknown'")),
    # --- replies found by the analytics in `inbound` (wave 8, issue 20, docs/BENCHMARKS.md):
    # each checkpoint transaction stamps the inbound events it writes with a number
    # (store/aggregates.py `next_written`), and the recount walks the events stamped past
    # its cursor instead of rows marked on `messages` (one row write per reply fewer).
    # Events stored before carry no number: their rows were marked when written.
    Migration("0016_inbound_written", run_sql(
        "ALTER TABLE inbound ADD COLUMN written INTEGER",
        "CREATE INDEX IF NOT EXISTS inbound_written ON inbound (written)"
        " WHERE written IS NOT NULL")),
    # --- alerts firing, kept across restarts (SPEC 7.2 "at most once per window"; before,
    # a restart announced every alert still over its threshold again): store/alerts.py.
    Migration("0017_alert_states", run_sql(
        "CREATE TABLE IF NOT EXISTS alert_states ("
        " campaign_no INTEGER NOT NULL, rule TEXT NOT NULL, fingerprint TEXT NOT NULL,"
        " fired_at REAL NOT NULL, alert TEXT NOT NULL, PRIMARY KEY (campaign_no, rule))"
        " WITHOUT ROWID")),
    # --- opt-outs shared by the nodes of a cluster (SPEC 6.4 across SPEC 11): every
    # stop / start fact this node records is queued here by the same transaction (a
    # trigger, so no writer of the list can forget it), and actors/shared_stops.py
    # hands the queue to the other nodes through Redis. Facts that came from another
    # node (ids `cluster/...`) are not queued again. The facts already listed are
    # queued once, so a node that joins a cluster later shares its whole list.
    Migration("0018_stops_outbox", run_sql(
        "CREATE TABLE IF NOT EXISTS stops_outbox ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, fact_id TEXT NOT NULL,"
        " workspace_id INTEGER NOT NULL, number TEXT NOT NULL, at REAL NOT NULL,"
        " kind INTEGER NOT NULL, reason TEXT, source TEXT NOT NULL)",
        *stops_triggers(""), QUEUE_STOP_LIST)),
    # --- relayed requests the app behind refuses as malformed, set aside so the ones
    # after them go on (webhooks.forward_set_aside_after; store/relay.py).
    Migration("0019_relay_set_aside", run_sql(
        "CREATE TABLE IF NOT EXISTS relay_set_aside ("
        " id INTEGER PRIMARY KEY, source TEXT NOT NULL, received_at REAL NOT NULL,"
        " headers BLOB NOT NULL, body BLOB NOT NULL, status INTEGER NOT NULL,"
        " error TEXT, set_aside_at REAL NOT NULL)")),
    # --- the outbox fills only on a node that shares its stops (a cluster node): a
    # single node emptied it never, so it grew with every stop (store/stops_outbox.py).
    Migration("0020_stops_outbox_when_sharing", run_sql(
        "DROP TRIGGER IF EXISTS stops_outbox_insert",
        "DROP TRIGGER IF EXISTS stops_outbox_update",
        *stops_triggers(WHILE_SHARING),
        "DELETE FROM stops_outbox")),
    # --- sending campaigns created a chunk of rows per transaction; one a crash
    # interrupted is dropped at start (store/campaigns.py `create_sending`).
    Migration("0021_campaigns_creating", run_sql(
        "CREATE TABLE IF NOT EXISTS campaigns_creating (no INTEGER PRIMARY KEY)")),
    # --- a firing alert's hold time (since when it has stayed under) is kept with it, so
    # a restart does not start the hold again (store/alerts.py).
    Migration("0022_alert_hold", run_sql(
        "ALTER TABLE alert_states ADD COLUMN under_since REAL")),
    # --- a stop no longer listed in a workspace is withdrawn on the other nodes too
    # (actors/shared_stops.py); before, it stayed listed there.
    Migration("0023_stops_outbox_withdrawn", run_sql(withdrawn_trigger())),
]


async def migrate(conn: aiosqlite.Connection) -> list[str]:
    """Apply the migrations this database has not had yet; return their names.

    Each one commits on its own, so an upgrade that stops keeps the ones done. A database
    that has had none (new, or from release 0.1) gets them all in one transaction: it
    comes out whole or as it was, and a new one is made with one commit instead of one
    per migration (~0.1 s less at a first start, and at each of the tests' hundreds)."""
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                       " name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    async with conn.execute("SELECT name FROM schema_migrations") as cur:
        done = {row[0] for row in await cur.fetchall()}
    pending = [m for m in MIGRATIONS if m.name not in done]
    for batch in ([pending] if not done else [[m] for m in pending]):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for migration in batch:
                await migration.apply(conn)
                await conn.execute("INSERT INTO schema_migrations (name, applied_at)"
                                   " VALUES (?, ?)", (migration.name, time.time()))
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
    return [m.name for m in pending]
