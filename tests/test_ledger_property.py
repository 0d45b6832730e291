"""SPEC 2.1 and 9 as properties: a campaign's state is a function of the SET of its events.

Hypothesis draws a set of events over a few messages, each event belonging to one of the
message's attempts (SPEC 9: every retry is an attempt with its own gateway id), then
applies them in two random orders with random duplicates; statistics and every row must
come out identical, and must equal what the rules say when computed directly from the
set. A restart (rows as stored + the journal replayed) must give the same state too.
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
        st.integers(1, 3),  # attempt (SPEC 9)
    ),
    max_size=40,
)
Event = tuple[int, int, bool, float, str | None, int]


def build(events: list[Event], ledger: Ledger | None = None) -> Ledger:
    if ledger is None:
        ledger = Ledger()
        for row in range(MESSAGES):
            ledger.add(row, 500.0, Level.PENDING, False, None,
                       [500.0, 500.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    for row, level, failed, at, reason, attempt in events:
        ledger.apply(row, level, failed, at, reason, attempt)
    return ledger


def observable(ledger: Ledger) -> tuple[object, ...]:
    rows = tuple(ledger.row_state(r)[:3] + ledger.row_state(r)[4:] for r in range(MESSAGES))
    return (ledger.statistics(), rows, ledger.timeline_points(50), ledger.attempts.items())


def stored(ledger: Ledger) -> list[tuple[object, ...]]:
    """The rows as a checkpoint writes them (row, level, failed, reason, ts_queued..)."""
    return [(row, *ledger.row_state(row)[:2], ledger.row_state(row)[3],
             ledger.timestamp(0, row), *ledger.row_state(row)[4:]) for row in range(MESSAGES)]


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
        level = max([Level.PENDING, *(e[1] for e in mine)])  # of every attempt
        latest = max([1, *(e[5] for e in mine)])
        failures = [e for e in mine if e[2] and e[5] == latest]  # the latest attempt's
        failed = bool(failures)
        assert ledger.level[row] == level  # the maximum level; never goes down
        assert ledger.attempts.get(row) == latest
        assert bool(ledger.failed[row]) == failed  # the failure is remembered either way
        # failed only while below delivered: delivery evidence wins
        assert (ledger.message_class(row) == FAILED_CLASS) == (failed and level < Level.DELIVERED)
        for slot in range(Level.SENT, Level.PLAYED + 1):
            times = [e[3] for e in mine if e[1] >= slot]
            assert ledger.timestamp(slot, row) == (min(times) if times else None)
        assert ledger.timestamp(6, row) == (min(e[3] for e in failures) if failures else None)
    counts = [0] * 7
    for row in range(MESSAGES):
        counts[message_class(ledger.level[row], bool(ledger.failed[row]))] += 1
    assert ledger.statistics()["total_failed_count"] == counts[FAILED_CLASS]
    assert {k: v for k, v in ledger.statistics().items()
            if k in statistics_from_counts(counts)} == statistics_from_counts(counts)


def test_read_without_delivered_counts_as_delivered():
    ledger = build([(0, Level.READ, False, 1010.0, None, 1)])
    stats = ledger.statistics()
    assert stats["total_delivered_count"] == 1 and stats["total_read_count"] == 1
    assert ledger.timestamp(Level.DELIVERED, 0) == 1010.0  # a read gives a delivered time


def test_delivered_after_failed_unfails_and_keeps_reason():
    ledger = build([(0, Level.QUEUED, True, 1001.0, "131049: not delivered", 1),
                    (0, Level.DELIVERED, False, 1002.0, None, 1)])
    stats = ledger.statistics()
    assert stats["total_failed_count"] == 0 and stats["total_delivered_count"] == 1
    assert ledger.reasons[0] == "131049: not delivered"
    # ...and in the other order
    ledger = build([(0, Level.DELIVERED, False, 1002.0, None, 1),
                    (0, Level.QUEUED, True, 1001.0, "131049: not delivered", 1)])
    assert ledger.statistics()["total_failed_count"] == 0


def test_failed_below_delivered_is_not_sent():
    ledger = build([(0, Level.SENT, True, 1001.0, "63016", 1),
                    (1, Level.SENT, False, 1001.0, None, 1)])
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
    rebuilt.load_rows(stored(ledger))
    assert rebuilt.timeline == ledger.timeline
    assert rebuilt.deliver_latency.buckets == ledger.deliver_latency.buckets
    assert rebuilt.read_latency.buckets == ledger.read_latency.buckets
    assert rebuilt.statistics() == ledger.statistics()


@settings(max_examples=200, deadline=None)
@given(events=events_strategy)
def test_bulk_load_equals_row_by_row_load(events):
    """Restarts load a campaign column-wise; it must equal loading it row by row."""
    ledger = build(events)
    rows = stored(ledger)
    bulk, by_row = Ledger(), Ledger()
    bulk.load_rows(rows)  # contiguous from row 0: the column-wise path
    for row in rows:
        by_row.load_rows([row]) if row[0] == 0 else by_row.add(
            row[0], row[4] or 0.0, row[1], bool(row[2]), row[3], row[4:])
    for attr in ("level", "failed", "ts", "reasons", "timeline", "updated"):
        assert getattr(bulk, attr) == getattr(by_row, attr), attr
    assert bulk.counts.counts == by_row.counts.counts
    assert bulk.deliver_latency.buckets == by_row.deliver_latency.buckets
    assert bulk.read_latency.buckets == by_row.read_latency.buckets


@settings(max_examples=300, deadline=None)
@given(events=events_strategy, data=st.data())
def test_a_restart_gives_the_same_state(events, data):
    """A checkpoint stores the rows and the latest attempts; a restart loads them and
    replays the journal (events after the checkpoint, and some before it again)."""
    cut = data.draw(st.integers(0, len(events)))
    before, after = events[:cut], events[cut:]
    checkpointed = build(before)
    restarted = Ledger()
    restarted.load_rows(stored(checkpointed))
    restarted.load_attempts(checkpointed.attempts.items())
    replayed = data.draw(st.lists(st.sampled_from(before), max_size=10)) if before else []
    build(replayed + after, restarted)
    assert observable(restarted) == observable(build(events))


# --- attempts (SPEC 9), by example ----------------------------------------------------

FAIL, OLD_FAIL = "131026: undeliverable", "63016: outside window"


def test_a_retry_under_way_leaves_failed_and_comes_back_only_if_it_fails():
    ledger = build([(0, Level.SENT, False, 1001.0, None, 1),
                    (0, Level.QUEUED, True, 1002.0, OLD_FAIL, 1)])
    assert ledger.statistics()["total_failed_count"] == 1
    build([(0, Level.QUEUED, False, 1010.0, None, 2)], ledger)  # retry-failed: attempt 2
    stats = ledger.statistics()
    assert stats["total_failed_count"] == 0 and ledger.reasons.get(0) is None
    assert ledger.timestamp(6, 0) is None  # the old failure's time went with it
    build([(0, Level.QUEUED, True, 1011.0, FAIL, 2)], ledger)  # and the retry fails too
    assert ledger.statistics()["total_failed_count"] == 1
    assert ledger.reasons[0] == FAIL and ledger.timestamp(6, 0) == 1011.0


def test_an_old_attempts_failure_never_sticks_but_its_delivery_counts():
    ledger = build([(0, Level.QUEUED, True, 1002.0, OLD_FAIL, 1),
                    (0, Level.PENDING, False, 1010.0, None, 2)])
    build([(0, Level.QUEUED, True, 1003.0, OLD_FAIL, 1)], ledger)  # a late duplicate
    assert ledger.statistics()["total_failed_count"] == 0
    build([(0, Level.QUEUED, True, 1012.0, FAIL, 2)], ledger)
    assert ledger.statistics()["total_failed_count"] == 1
    # An ACK for attempt 1's gateway id is still evidence: delivered beats failed.
    build([(0, Level.DELIVERED, False, 1013.0, None, 1)], ledger)
    stats = ledger.statistics()
    assert stats["total_failed_count"] == 0 and stats["total_delivered_count"] == 1
    assert ledger.timeline_points(10)["points"][-1]["failed"] == 0
