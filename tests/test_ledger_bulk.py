"""domain/ledger_bulk.py: applying a bulk of events gives exactly the ledger that applying
them one by one with `Ledger.apply` gives, and finds the same events applied.

Hypothesis draws a campaign (rows registered at different times, some already sent,
delivered, failed or on a later attempt) and events over its rows and a few it does not
have: statuses at every level, failures with and without reasons, later and older
attempts, times long before the registration (counted as the registration time) and out
of int32's range, shuffled and duplicated; then applies them one by one to one copy and
in bulks of random sizes to another. Every array, counter, histogram bucket, chart
bucket, kept failure, the failure breakdown and the attempts must be equal, and so must
the set of changed rows and the applied / duplicate counts.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import StatusEvent
from domain.failures import Failure
from domain.ledger import Ledger
from domain.ledger_bulk import apply_events
from domain.status import Level
from tests.examples import examples

ROWS = 8
FAILURES = [
    (None, None),
    ("131049: not delivered", Failure("cloud", "131049", "not delivered", None)),
    ("63016: outside window", Failure("twilio", "63016", "outside window", None)),
    ("131026: undeliverable", None),
    (None, Failure("webjs", "ack_error", None, None)),
]
# Registration at 1,000,000 s; times around it, long before it (past MAX_BACKDATE: counted
# as the registration), and far outside int32 tenths of the base (clamped).
TIMES = st.one_of(st.integers(999_990, 1_000_200).map(float),
                  st.sampled_from([1.0, 900_000.0, 1e12, -1e12, 1_000_050.25,
                                   913_600.0, 913_599.9, 913_600.3, 913_600.2]))  # the
# backdate bound of the rows registered at 1,000,000.0 and of those at 1,000,000.3
event_strategy = st.tuples(
    st.integers(0, ROWS + 1),  # row; ROWS and above: not registered
    st.integers(Level.QUEUED, Level.PLAYED),
    st.booleans(),  # failed
    TIMES,
    st.sampled_from(FAILURES),
    st.sampled_from([1, 1, 1, 1, 2, 3]),  # attempt
)
start_strategy = st.lists(st.tuples(st.integers(0, ROWS - 1),
                                    st.integers(Level.QUEUED, Level.READ), st.booleans(),
                                    st.integers(999_995, 1_000_010).map(float)),
                          max_size=ROWS)


def campaign(starts: list[tuple[int, int, bool, float]], retried: list[int]) -> Ledger:
    ledger = Ledger()
    for row in range(ROWS):
        ledger.add(row, 1_000_000.0 + (row % 2) * 0.3)
    for row, level, failed, at in starts:  # a few rows already moved (and checkpointed)
        ledger.apply(row, level, failed, at, "131026: undeliverable" if failed else None)
    ledger.load_attempts([(row, 2) for row in retried])
    ledger.clear_dirty()
    return ledger


def state(ledger: Ledger) -> tuple[Any, ...]:
    book = ledger.failures
    return (
        ledger.base, ledger.updated, bytes(ledger.level), bytes(ledger.failed),
        bytes(ledger.dirty), ledger.dirty_count,
        [ledger.column_values(slot).tolist() for slot in range(len(ledger.ts))],
        list(ledger.counts.counts),
        {row: (k.key, k.tick, k.failure, k.reason) for row, k in book.kept.items()},
        book.breakdown,
        (ledger.deliver_latency.buckets, ledger.deliver_latency.count),
        (ledger.read_latency.buckets, ledger.read_latency.count),
        ledger.timeline, sorted(ledger.attempts.items()),
        sorted(ledger.attempts.sent_items()),
        ledger.statistics(), ledger.timeline_points(40),
    )


def one_by_one(ledger: Ledger, items: list[tuple[int, StatusEvent]],
               attempts: dict[int, int]) -> tuple[set[int], int, int]:
    """What actors/campaign.py did before the bulk: `apply` per event."""
    changed: set[int] = set()
    applied = duplicate = 0
    for position, (row, e) in enumerate(items):
        if row >= len(ledger):
            continue
        if ledger.apply(row, e.level, e.failed, e.at, e.reason, e.failure,
                        attempts.get(position, 1)):
            changed.add(row)
            applied += 1
        else:
            duplicate += 1
    return changed, applied, duplicate


@settings(max_examples=examples(400), deadline=None)
@given(starts=start_strategy, retried=st.lists(st.integers(0, ROWS - 1), max_size=2),
       events=st.lists(event_strategy, max_size=60), data=st.data())
def test_a_bulk_gives_the_ledger_of_one_by_one(starts, retried, events, data):
    shuffled = data.draw(st.permutations(events))
    duplicated = shuffled + data.draw(st.lists(st.sampled_from(events), max_size=20)) \
        if events else shuffled
    items = [(row, StatusEvent(f"m{row}", level, failed, at,
                               reason if failed else None, None, failure if failed else None))
             for row, level, failed, at, (reason, failure), _ in duplicated]
    attempts = {i: e[5] for i, e in enumerate(duplicated) if e[5] != 1}
    single, bulk = campaign(starts, retried), campaign(starts, retried)
    expected = one_by_one(single, items, attempts)
    # in bulks of random sizes, as the journal's bulks and Cloud batches cut them
    cuts = sorted(data.draw(st.lists(st.integers(0, len(items)), max_size=3)))
    changed: set[int] = set()
    applied = duplicate = 0
    for lo, hi in zip([0, *cuts], [*cuts, len(items)], strict=True):
        part = items[lo:hi]
        rows, a, d = apply_events(bulk, part, {p - lo: n for p, n in attempts.items()
                                               if lo <= p < hi})
        assert len(rows) == len(set(rows))  # each changed row once
        changed.update(rows)
        applied += a
        duplicate += d
    assert (changed, applied, duplicate) == expected
    assert state(bulk) == state(single)


def test_an_empty_ledger_takes_nothing():
    ledger = Ledger()
    assert apply_events(ledger, [(0, StatusEvent("m0", Level.READ, False, 5.0))]) == ([], 0, 0)
    assert len(ledger) == 0 and ledger.timeline == {}


def test_a_flood_moves_the_figures_once_per_row():
    """Sent, delivered and read of the same rows in one bulk: the counters, chart and
    latencies of a campaign where every message was read, each event found applied."""
    ledger = Ledger()
    for row in range(100):
        ledger.add(row, 1_000_000.0)
    items = [(row, StatusEvent(f"m{row}", level, False, 1_000_000.0 + level * 10))
             for level in (Level.SENT, Level.DELIVERED, Level.READ) for row in range(100)]
    rows, applied, duplicate = apply_events(ledger, items)
    assert rows == list(range(100)) and (applied, duplicate) == (300, 0)
    stats = ledger.statistics()
    assert (stats["total_read_count"], stats["total_delivered_count"]) == (100, 100)
    assert stats["time_to_read"]["median"] == stats["time_to_read"]["p90"]
    assert apply_events(ledger, items) == ([], 0, 300)  # the journal replayed again


def test_the_backdate_bound_is_the_same():
    """A time 24 h before the registration is kept, a tenth earlier counts as the
    registration (domain/ledger.py bounded_time), in a bulk as one by one."""
    for at in (913_600.0, 913_599.9):
        items = [(0, StatusEvent("m0", Level.DELIVERED, False, at))]
        single, bulk = campaign([], []), campaign([], [])
        assert one_by_one(single, items, {}) == ({0}, 1, 0)
        assert apply_events(bulk, items) == ([0], 1, 0)
        assert state(bulk) == state(single)
