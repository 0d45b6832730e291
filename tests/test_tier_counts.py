"""The contacts' tier counts (docs/insights.md "How it stays fast"): counters kept by
the analytics step, tiers derived from them when asked.

Hypothesis writes message rows of a few numbers in three campaigns of two workspaces
(queued, sent, delivered, read, failed as a bad number or otherwise, sent up to 200 days
back) and replies credited to them into a real SQLite file, and the real Recounter step
(store/aggregates.py `recount_marked`, run by the real Store's writer thread) counts
them, in batches of any size, rows changing between batches. After every batch the
counters must equal a count of the contacts table by the same facts, done here in
Python; at the end the tier counts the route reads (store/insights.py `tier_counts`)
must equal naming each contact's tier with domain/tiers.py one by one, at times of
asking whose cutoff falls on a day with contacts engaged on both sides of it, with any
suppression list and with a search."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.phones import number_key
from domain.tier_counts import DAY, Group, engaged_day, key_of, tally
from domain.tiers import TIERS, ContactFacts, TierPolicy, tier_of
from store.aggregates import recount_marked
from store.db import Store
from store.insights import InsightStore
from tests.conftest import migrated_database

T0 = 1_800_000_000.0
NUMBERS = [f"628110000000{i}" for i in range(1, 6)]
CAMPAIGNS = {1: 1, 2: 1, 3: 2}  # campaign -> workspace
# state: (cls, failure category)
STATES = {"queued": (0, None), "pending": (1, None), "delivered": (3, None),
          "read": (4, None), "bad": (6, "not_on_whatsapp"), "failed": (6, "other")}


@pytest.fixture(scope="module")
def template(tmp_path_factory: Any) -> Path:
    """An empty database with every migration, copied for each example."""
    return migrated_database(tmp_path_factory.mktemp("tiers") / "template.sqlite3")


put = st.tuples(st.just("put"), st.sampled_from(sorted(CAMPAIGNS)), st.integers(0, 4),
                st.integers(0, 1), st.sampled_from(sorted(STATES)),
                st.integers(-200, 0), st.integers(0, 86399))
reply = st.tuples(st.just("reply"), st.sampled_from(sorted(CAMPAIGNS)), st.integers(0, 9),
                  st.integers(0, 3 * 86400))
recount = st.tuples(st.just("recount"), st.integers(1, 12))
operations = st.lists(st.one_of(put, put, reply, recount), min_size=1, max_size=40)


def write(conn: sqlite3.Connection, op: tuple[Any, ...]) -> None:
    """A row's state written and marked, as a checkpoint does; or a reply credited."""
    if op[0] == "put":
        _, no, number, slot, state, day, second = op
        cls, category = STATES[state]
        sent = T0 + day * DAY + second
        recipient = NUMBERS[number]
        conn.execute(
            "INSERT INTO messages (campaign_no, row, recipient, level, failed, cls,"
            " ts_queued, ts_pending, ts_delivered, ts_read, ts_failed, failure_category, nh,"
            " ag_dirty) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,1) ON CONFLICT (campaign_no, row)"
            " DO UPDATE SET level = excluded.level, failed = excluded.failed,"
            " cls = excluded.cls, ts_pending = excluded.ts_pending,"
            " ts_delivered = excluded.ts_delivered, ts_read = excluded.ts_read,"
            " ts_failed = excluded.ts_failed, failure_category = excluded.failure_category,"
            " ag_dirty = 1",
            (no, number * 2 + slot, recipient, 0 if cls == 6 else cls, int(cls == 6), cls,
             sent - 1, sent if cls else None, sent + 5 if cls in (3, 4) else None,
             sent + 60 + second if cls == 4 else None, sent + 2 if cls == 6 else None,
             category, number_key(recipient)))
    elif op[0] == "reply":
        _, no, row, after = op
        found = conn.execute("SELECT recipient, ts_queued FROM messages WHERE"
                             " campaign_no = ? AND row = ?", (no, row)).fetchone()
        if found is None:
            return
        conn.execute("INSERT OR IGNORE INTO inbound (id, source, workspace_id, number, at,"
                     " kind, via, campaign_no, row, how, received_at)"
                     " VALUES (?, 'test', ?, ?, ?, 0, 0, ?, ?, 'explicit', ?)",
                     (f"r{no}.{row}.{after}", CAMPAIGNS[no], found[0], found[1] + after,
                      no, row, found[1] + after))
        conn.execute("UPDATE messages SET ag_dirty = 1 WHERE campaign_no = ? AND row = ?",
                     (no, row))


def counters(conn: sqlite3.Connection) -> Counter[tuple[Any, ...]]:
    return Counter({(ws, bool(u), day, d): n for ws, u, day, d, n in conn.execute(
        "SELECT workspace_id, unreachable, engaged_day, delivered, n FROM contact_tiers")})


def recounted(conn: sqlite3.Connection) -> Counter[tuple[Any, ...]]:
    """The contacts table counted by their facts, here in Python."""
    out: Counter[tuple[Any, ...]] = Counter()
    for ws, unreachable, engaged_at, delivered in conn.execute(
            "SELECT workspace_id, unreachable, engaged_at, delivered FROM contacts"):
        out[(ws, *key_of(unreachable, engaged_at or None, delivered))] += 1
    return out


def one_by_one(conn: sqlite3.Connection, workspace: int, now: float, policy: TierPolicy,
               suppressed: set[str], search: str) -> dict[str, int]:
    counts = dict.fromkeys(TIERS, 0)
    for number, unreachable, engaged_at, delivered in conn.execute(
            "SELECT number, unreachable, engaged_at, delivered FROM contacts"
            " WHERE workspace_id = ?", (workspace,)):
        if number.startswith(search):
            facts = ContactFacts(number in suppressed, bool(unreachable), engaged_at or None,
                                 delivered)
            counts[tier_of(facts, now, policy)] += 1
    return counts


async def scenario(path: Path, ops: list[tuple[Any, ...]], policy: TierPolicy,
                   suppressed: set[str], shift: float, searches: list[str]) -> None:
    store = Store(path)
    await store.open()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executemany("INSERT INTO campaigns (no, uuid, workspace_id, name, created_at,"
                         " updated_at) VALUES (?, ?, ?, 'c', ?, ?)",
                         [(no, f"c{no}", ws, T0, T0) for no, ws in CAMPAIGNS.items()])
        for op in [*ops, ("recount", 1000)]:
            if op[0] != "recount":
                write(conn, op)
                continue
            limit = op[1]

            def step(c: sqlite3.Connection, limit: int = limit) -> None:
                recount_marked(c, limit)

            await store.transaction([(step, (), False)])
            assert counters(conn) == recounted(conn), op
        assert not conn.execute("SELECT 1 FROM messages WHERE ag_dirty = 1").fetchone()
        # Times of asking: each contact's engagement exactly on the cutoff, a moment
        # before and after it (the cutoff's day holds contacts on both sides), and one
        # without anything on the cutoff's day.
        engaged = [r[0] for r in conn.execute(
            "SELECT engaged_at FROM contacts WHERE engaged_at > 0")]
        nows = [T0 + 3 * DAY, *(at + policy.engaged_days * DAY + d for at in engaged[:3]
                                for d in (0.0, shift, -shift))]
        reader = InsightStore(store)
        for workspace in sorted(set(CAMPAIGNS.values())):
            for now in nows:
                for search in searches:
                    got = await reader.tier_counts(workspace, now, policy,
                                                   sorted(suppressed), search or None)
                    assert got == one_by_one(conn, workspace, now, policy, suppressed,
                                             search), (workspace, now, search)
    finally:
        conn.close()
        await store.close()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(ops=operations,
       policy=st.sampled_from([TierPolicy(90, 5), TierPolicy(30, 2), TierPolicy(1, 1)]),
       suppressed=st.sets(st.sampled_from([*NUMBERS, "6289999999999"])),
       shift=st.sampled_from([1e-3, 1.0, 3600.0]))
def test_counters_equal_a_recount_and_give_each_contacts_own_tier(
        template: Path, ops: list[tuple[Any, ...]], policy: TierPolicy,
        suppressed: set[str], shift: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "campaignd.sqlite3"
        shutil.copyfile(template, path)
        asyncio.run(scenario(path, ops, policy, suppressed, shift,
                             ["", "62811", "6281100000003", "628110000000", "7"]))


def test_a_tier_count_from_counters_on_hand_made_groups() -> None:
    """Six contacts with 90 days and 5 deliveries: read 10 days ago (engaged), read
    100 days ago with 5 delivered (unengaged) or 2 (new), never read with 7 delivered
    (unengaged), failed twice as a bad number after a recent read (unreachable), and
    one engaged exactly at the cutoff (engaged: "within the last 90 days" includes it)."""
    now = T0
    policy = TierPolicy(90, 5)
    groups = [(Group(False, 2, 3), 1),  # RECENT
              (Group(False, 0, 5), 1), (Group(False, 0, 2), 1),  # OLD
              (Group(False, -1, 7), 1),  # NONE
              (Group(True, 2, 0), 1), (Group(False, 2, 1), 1)]
    assert tally(groups, now, policy) == {"opted_out": 0, "unreachable": 1, "engaged": 2,
                                          "unengaged": 2, "new": 1}
    # The day of a time as SQLite computes it, also a hair before midnight.
    conn = sqlite3.connect(":memory:")
    for at in (0.0, 86400.0, 86400.0 * 20_000 - 1e-6, T0, T0 + 0.5, 1_799_999_999.999999):
        sql = conn.execute("SELECT CAST(? / 86400.0 AS INTEGER)", (at,)).fetchone()[0]
        assert engaged_day(at or None) == sql, at
