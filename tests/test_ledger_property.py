"""SPEC 2.1 as properties: a campaign's state is a function of the SET of its events.

Hypothesis draws a set of events over a few messages, then applies them in two random
orders with random duplicates; statistics and every row must come out identical, and
must equal what the rules say when computed directly from the set.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.ledger import Ledger
from domain.status import FAILED_CLASS, Level, message_class, statistics_from_counts

MESSAGES = 6
events_strategy = st.lists(
    st.tuples(
        st.integers(0, MESSAGES - 1),  # row
        st.integers(Level.QUEUED, Level.PLAYED),  # level
        st.booleans(),  # failed
        st.integers(1_000, 1_100).map(float),  # time
        st.sampled_from([None, "131049: not delivered", "63016: outside window"]),
    ),
    max_size=40,
)


def build(events: list[tuple[int, int, bool, float, str | None]]) -> Ledger:
    ledger = Ledger()
    for row in range(MESSAGES):
        ledger.add(row, 500.0, Level.PENDING, False, None,
                   [500.0, 500.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    for row, level, failed, at, reason in events:
        ledger.apply(row, level, failed, at, reason)
    return ledger


def observable(ledger: Ledger) -> tuple[object, ...]:
    rows = tuple(ledger.row_state(r)[:3] + ledger.row_state(r)[4:] for r in range(MESSAGES))
    return (ledger.statistics(), rows, ledger.timeline_points(50))


@settings(max_examples=300, deadline=None)
@given(events=events_strategy, data=st.data())
def test_any_order_and_duplication_gives_the_same_state(events, data):
    shuffled = data.draw(st.permutations(events))
    duplicated = shuffled + data.draw(st.lists(st.sampled_from(events), max_size=20)) \
        if events else shuffled
    assert observable(build(events)) == observable(build(duplicated))


@settings(max_examples=300, deadline=None)
@given(events=events_strategy)
def test_state_follows_the_rules(events):
    ledger = build(events)
    for row in range(MESSAGES):
        mine = [e for e in events if e[0] == row]
        level = max([Level.PENDING, *(e[1] for e in mine)])
        failed = any(e[2] for e in mine)
        assert ledger.level[row] == level  # the maximum level; never goes down
        assert bool(ledger.failed[row]) == failed  # the failure is remembered either way
        # failed only while below delivered: delivery evidence wins
        assert (ledger.message_class(row) == FAILED_CLASS) == (failed and level < Level.DELIVERED)
        for slot in range(Level.SENT, Level.PLAYED + 1):
            times = [e[3] for e in mine if e[1] >= slot]
            assert ledger.timestamp(slot, row) == (min(times) if times else None)
    counts = [0] * 7
    for row in range(MESSAGES):
        counts[message_class(ledger.level[row], bool(ledger.failed[row]))] += 1
    assert ledger.statistics()["total_failed_count"] == counts[FAILED_CLASS]
    assert {k: v for k, v in ledger.statistics().items()
            if k in statistics_from_counts(counts)} == statistics_from_counts(counts)


def test_read_without_delivered_counts_as_delivered():
    ledger = build([(0, Level.READ, False, 1010.0, None)])
    stats = ledger.statistics()
    assert stats["total_delivered_count"] == 1 and stats["total_read_count"] == 1
    assert ledger.timestamp(Level.DELIVERED, 0) == 1010.0  # a read gives a delivered time


def test_delivered_after_failed_unfails_and_keeps_reason():
    ledger = build([(0, Level.QUEUED, True, 1001.0, "131049: not delivered"),
                    (0, Level.DELIVERED, False, 1002.0, None)])
    stats = ledger.statistics()
    assert stats["total_failed_count"] == 0 and stats["total_delivered_count"] == 1
    assert ledger.reasons[0] == "131049: not delivered"
    # ...and in the other order
    ledger = build([(0, Level.DELIVERED, False, 1002.0, None),
                    (0, Level.QUEUED, True, 1001.0, "131049: not delivered")])
    assert ledger.statistics()["total_failed_count"] == 0


def test_failed_below_delivered_is_not_sent():
    ledger = build([(0, Level.SENT, True, 1001.0, "63016"), (1, Level.SENT, False, 1001.0, None)])
    stats = ledger.statistics()
    assert stats["total_failed_count"] == 1
    assert stats["total_sent_count"] == MESSAGES - 1
    assert stats["progress"] == 100.0  # (sent + failed) / total
    assert stats["delivery_rate"] == 0.0


@settings(max_examples=300, deadline=None)
@given(events=events_strategy)
def test_incremental_chart_and_latencies_equal_a_rebuild(events):
    """What apply() keeps up to date equals what a restart rebuilds from the stored rows."""
    ledger = build(events)
    rebuilt = Ledger()
    rebuilt.load_rows(
        (row, *ledger.row_state(row)[:2], ledger.row_state(row)[3],
         ledger.timestamp(0, row), *ledger.row_state(row)[4:])
        for row in range(MESSAGES))
    assert rebuilt.timeline == ledger.timeline
    assert rebuilt.deliver_latency.buckets == ledger.deliver_latency.buckets
    assert rebuilt.read_latency.buckets == ledger.read_latency.buckets
    assert rebuilt.statistics() == ledger.statistics()


@settings(max_examples=200, deadline=None)
@given(events=events_strategy)
def test_bulk_load_equals_row_by_row_load(events):
    """Restarts load a campaign column-wise; it must equal loading it row by row."""
    ledger = build(events)
    stored = [(row, *ledger.row_state(row)[:2], ledger.row_state(row)[3],
               ledger.timestamp(0, row), *ledger.row_state(row)[4:]) for row in range(MESSAGES)]
    bulk, by_row = Ledger(), Ledger()
    bulk.load_rows(stored)  # contiguous from row 0: the column-wise path
    for row in stored:
        by_row.load_rows([row]) if row[0] == 0 else by_row.add(
            row[0], row[4] or 0.0, row[1], bool(row[2]), row[3], row[4:])
    for attr in ("level", "failed", "ts", "reasons", "timeline", "updated"):
        assert getattr(bulk, attr) == getattr(by_row, attr), attr
    assert bulk.counts.counts == by_row.counts.counts
    assert bulk.deliver_latency.buckets == by_row.deliver_latency.buckets
    assert bulk.read_latency.buckets == by_row.read_latency.buckets
