"""SPEC 2.1 and 9 as properties: a campaign's state is a function of the SET of its events.

Hypothesis draws a set of events over a few messages, each event belonging to one of the
message's attempts (SPEC 9: every retry is an attempt with its own gateway id), then
applies them in two random orders with random duplicates; statistics (the failure
breakdown included) and every column of every row (the kept failure's reason and fields
included) must come out identical, and must equal what the rules say when computed
directly from the set. A restart (rows and latest attempts as stored, the journal
replayed) must give the same state too.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.failures import Failure, lookup
from domain.ledger import Ledger
from domain.status import FAILED_CLASS, Level, message_class, statistics_from_counts
from tests.examples import examples

MESSAGES = 6
# Failures as the sources report them: the same code from two sources, two codes at the
# same time, a failure without a reason, one known only by its text (a 0.1 journal row).
FAILURES = [
    (None, None),
    ("131049: not delivered", Failure("cloud", "131049", "not delivered", None)),
    ("131049: not delivered", Failure("webjs", "131049", "not delivered", "details")),
    ("63016: outside window", Failure("twilio", "63016", "outside window", None)),
    ("131026: undeliverable", None),
    (None, Failure("webjs", "ack_error", None, None)),
]
events_strategy = st.lists(
    st.tuples(
        st.integers(0, MESSAGES - 1),  # row
        st.integers(Level.QUEUED, Level.PLAYED),  # level
        st.booleans(),  # failed
        st.integers(1_000, 1_100).map(float),  # time
        st.sampled_from(FAILURES),  # (reason, failure)
        st.integers(1, 3),  # attempt (SPEC 9)
    ),
    max_size=40,
)
Event = tuple[int, int, bool, float, tuple[str | None, Failure | None], int]


def build(events: list[Event], ledger: Ledger | None = None) -> Ledger:
    if ledger is None:
        ledger = Ledger()
        for row in range(MESSAGES):
            ledger.add(row, 500.0, Level.PENDING, False, None,
                       [500.0, 500.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    for row, level, failed, at, (reason, failure), attempt in events:
        ledger.apply(row, level, failed, at, reason if failed else None,
                     failure if failed else None, attempt)
    return ledger


def observable(ledger: Ledger) -> tuple[object, ...]:
    """Everything a user can see: statistics, every column of every row, the chart, and
    each row's latest attempt."""
    rows = tuple((*ledger.row_state(r), ledger.failure_at(r)) for r in range(MESSAGES))
    return (ledger.statistics(), rows, ledger.timeline_points(50), ledger.attempts.items())


def restarted(ledger: Ledger) -> Ledger:
    """A new ledger from what a checkpoint stored: the rows and the latest attempts."""
    again = Ledger()
    again.load_rows([stored(ledger, row) for row in range(MESSAGES)])
    again.load_attempts(ledger.attempts.items())
    return again


def stored(ledger: Ledger, row: int) -> tuple[object, ...]:
    """The row as a checkpoint stores it (store/campaigns.py state_columns' order)."""
    level, failed, _cls, reason, *stamps, failure = ledger.row_state(row)
    f = failure or Failure(None, None, None, None)  # type: ignore[arg-type]
    return (row, level, failed, reason, ledger.timestamp(0, row), *stamps, f.source,
            f.code, f.title, f.details, ledger.failure_at(row))


@settings(max_examples=examples(300), deadline=None)
@given(events=events_strategy, data=st.data())
def test_any_order_and_duplication_gives_the_same_state(events, data):
    shuffled = data.draw(st.permutations(events))
    duplicated = shuffled + data.draw(st.lists(st.sampled_from(events), max_size=20)) \
        if events else shuffled
    assert observable(build(events)) == observable(build(duplicated))


@settings(max_examples=examples(300), deadline=None)
@given(events=events_strategy)
def test_state_follows_the_rules(events):
    ledger = build(events)
    for row in range(MESSAGES):
        mine = [e for e in events if e[0] == row]
        level = max([Level.PENDING, *(e[1] for e in mine)])  # of every attempt
        latest = max([1, *(e[5] for e in mine)])
        failed = any(e[2] for e in mine if e[5] == latest)  # the latest attempt's only
        assert ledger.level[row] == level  # the maximum level; never goes down
        assert ledger.attempts.get(row) == latest
        assert bool(ledger.failed[row]) == failed  # the failure is remembered either way
        # failed only while below delivered: delivery evidence wins
        assert (ledger.message_class(row) == FAILED_CLASS) == (failed and level < Level.DELIVERED)
        # the kept failure: the latest attempt's earliest that says something, ties
        # broken by the code
        told = [e for e in mine if e[2] and e[5] == latest and (e[4][0] or e[4][1])]
        if not told:
            assert ledger.row_state(row)[-1] is None
        if told:
            first = min(told, key=lambda e: (e[3], (e[4][1].code if e[4][1] else None) or
                                                    e[4][0].split(":")[0]))
            kept = ledger.row_state(row)[-1]
            assert ledger.failure_at(row) == first[3]
            assert kept.code == (first[4][1].code if first[4][1] else first[4][0].split(":")[0])
        for slot in range(Level.SENT, Level.PLAYED + 1):
            times = [e[3] for e in mine if e[1] >= slot]
            assert ledger.timestamp(slot, row) == (min(times) if times else None)
    counts = [0] * 7
    for row in range(MESSAGES):
        counts[message_class(ledger.level[row], bool(ledger.failed[row]))] += 1
    assert ledger.statistics()["total_failed_count"] == counts[FAILED_CLASS]
    assert {k: v for k, v in ledger.statistics().items()
            if k in statistics_from_counts(counts)} == statistics_from_counts(counts)
    # the breakdown counts exactly the failed messages, by their kept failure's code
    breakdown: dict[str, dict[str, int]] = {}
    for row in range(MESSAGES):
        if ledger.message_class(row) == FAILED_CLASS:
            failure = ledger.row_state(row)[-1]
            code = failure.code if failure else None
            codes = breakdown.setdefault(lookup(code).category, {})
            codes[code or "none"] = codes.get(code or "none", 0) + 1
    assert {e["category"]: e["codes"] for e in ledger.statistics()["failures"]} == breakdown
    assert sum(e["count"] for e in ledger.statistics()["failures"]) == counts[FAILED_CLASS]


def test_read_without_delivered_counts_as_delivered():
    ledger = build([(0, Level.READ, False, 1010.0, (None, None), 1)])
    stats = ledger.statistics()
    assert stats["total_delivered_count"] == 1 and stats["total_read_count"] == 1
    assert ledger.timestamp(Level.DELIVERED, 0) == 1010.0  # a read gives a delivered time


CAP = FAILURES[1]
WINDOW = FAILURES[3]
NOTHING = (None, None)


def test_delivered_after_failed_unfails_and_keeps_reason():
    ledger = build([(0, Level.QUEUED, True, 1001.0, CAP, 1),
                    (0, Level.DELIVERED, False, 1002.0, NOTHING, 1)])
    stats = ledger.statistics()
    assert stats["total_failed_count"] == 0 and stats["total_delivered_count"] == 1
    assert ledger.row_state(0)[3] == "131049: not delivered"
    assert stats["failures"] == []  # the breakdown counts failed messages only
    # ...and in the other order
    ledger = build([(0, Level.DELIVERED, False, 1002.0, NOTHING, 1),
                    (0, Level.QUEUED, True, 1001.0, CAP, 1)])
    assert ledger.statistics()["total_failed_count"] == 0


def test_the_kept_failure_does_not_depend_on_arrival_order():
    """Issue 21: the same two failures in either order keep the same one."""
    cap, window = (0, Level.QUEUED, True, 1001.0, CAP, 1), (0, Level.SENT, True, 1001.0, WINDOW, 1)
    for order in ([cap, window], [window, cap]):
        ledger = build(order)
        assert ledger.row_state(0)[3] == "131049: not delivered"  # same time: lower code
        assert ledger.statistics()["failures"] == [{
            "category": "limited_by_meta", "label": "Limited by Meta", "count": 1,
            "codes": {"131049": 1}}]
    # the earliest wins over a lower code
    cap = (0, Level.QUEUED, True, 1005.0, CAP, 1)
    for order in ([cap, window], [window, cap]):
        assert build(order).row_state(0)[-1].code == "63016"


def test_failed_below_delivered_is_not_sent():
    ledger = build([(0, Level.SENT, True, 1001.0, WINDOW, 1),
                    (1, Level.SENT, False, 1001.0, NOTHING, 1)])
    stats = ledger.statistics()
    assert stats["total_failed_count"] == 1
    assert stats["total_sent_count"] == MESSAGES - 1
    assert stats["progress"] == 100.0  # (sent + failed) / total
    assert stats["delivery_rate"] == 0.0


@settings(max_examples=examples(300), deadline=None)
@given(events=events_strategy)
def test_incremental_chart_and_latencies_equal_a_rebuild(events):
    """What apply() keeps up to date equals what a restart rebuilds from the stored rows."""
    ledger = build(events)
    rebuilt = restarted(ledger)
    assert rebuilt.timeline == ledger.timeline
    assert rebuilt.deliver_latency.buckets == ledger.deliver_latency.buckets
    assert rebuilt.read_latency.buckets == ledger.read_latency.buckets
    assert rebuilt.statistics() == ledger.statistics()
    assert observable(rebuilt) == observable(ledger)


@settings(max_examples=examples(200), deadline=None)
@given(events=events_strategy, data=st.data())
def test_replay_after_a_restart_changes_nothing(events, data):
    """Rows as stored + any of the same events again (a journal replay) = the same state."""
    ledger = build(events)
    rebuilt = build(data.draw(st.permutations(events)), restarted(ledger))
    assert observable(rebuilt) == observable(ledger)


@settings(max_examples=examples(200), deadline=None)
@given(events=events_strategy)
def test_bulk_load_equals_row_by_row_load(events):
    """Restarts load a campaign column-wise; it must equal loading it row by row."""
    ledger = build(events)
    rows = [stored(ledger, row) for row in range(MESSAGES)]
    bulk, by_row = Ledger(), Ledger()
    bulk.load_rows(rows)  # contiguous from row 0: the column-wise path
    for row in rows:
        by_row.load_rows([row]) if row[0] == 0 else by_row.load_rows([row, row][:1])
    for attr in ("level", "failed", "ts", "timeline", "updated"):
        assert getattr(bulk, attr) == getattr(by_row, attr), attr
    assert observable(bulk) == observable(by_row)
    assert bulk.counts.counts == by_row.counts.counts
    assert bulk.deliver_latency.buckets == by_row.deliver_latency.buckets
    assert bulk.read_latency.buckets == by_row.read_latency.buckets


@settings(max_examples=examples(300), deadline=None)
@given(events=events_strategy, data=st.data())
def test_a_restart_in_the_middle_gives_the_same_state(events, data):
    """A checkpoint stores the rows and the latest attempts after some of the events; a
    restart loads them and replays the journal: the events after the checkpoint, and
    some before it again."""
    cut = data.draw(st.integers(0, len(events)))
    before, after = events[:cut], events[cut:]
    replayed = data.draw(st.lists(st.sampled_from(before), max_size=10)) if before else []
    again = build(replayed + after, restarted(build(before)))
    assert observable(again) == observable(build(events))


# --- attempts (SPEC 9), by example ----------------------------------------------------

FAIL = FAILURES[4]  # 131026: undeliverable


def test_a_retry_under_way_leaves_failed_and_comes_back_only_if_it_fails():
    ledger = build([(0, Level.SENT, False, 1001.0, NOTHING, 1),
                    (0, Level.QUEUED, True, 1002.0, WINDOW, 1)])
    stats = ledger.statistics()
    assert stats["total_failed_count"] == 1 and stats["failures"][0]["category"] == \
        "window_closed"
    build([(0, Level.QUEUED, False, 1010.0, NOTHING, 2)], ledger)  # retry-failed: attempt 2
    stats = ledger.statistics()
    assert stats["total_failed_count"] == 0 and stats["failures"] == []
    assert ledger.row_state(0)[3] is None and ledger.row_state(0)[-1] is None
    assert ledger.timestamp(6, 0) is None  # the old failure's time went with it
    build([(0, Level.QUEUED, True, 1011.0, FAIL, 2)], ledger)  # and the retry fails too
    stats = ledger.statistics()
    assert stats["total_failed_count"] == 1
    assert ledger.row_state(0)[3] == "131026: undeliverable"
    assert ledger.timestamp(6, 0) == 1011.0
    assert stats["failures"] == [{"category": "not_on_whatsapp", "count": 1,
                                  "label": stats["failures"][0]["label"],
                                  "codes": {"131026": 1}}]


def test_an_old_attempts_failure_never_sticks_but_its_delivery_counts():
    ledger = build([(0, Level.QUEUED, True, 1002.0, WINDOW, 1),
                    (0, Level.PENDING, False, 1010.0, NOTHING, 2)])
    build([(0, Level.QUEUED, True, 1003.0, CAP, 1)], ledger)  # a late one for attempt 1
    assert ledger.statistics()["total_failed_count"] == 0
    build([(0, Level.QUEUED, True, 1012.0, FAIL, 2)], ledger)
    assert ledger.statistics()["total_failed_count"] == 1
    # An ACK for attempt 1's gateway id is still evidence: delivered beats failed.
    build([(0, Level.DELIVERED, False, 1013.0, NOTHING, 1)], ledger)
    stats = ledger.statistics()
    assert stats["total_failed_count"] == 0 and stats["total_delivered_count"] == 1
    assert ledger.timeline_points(10)["points"][-1]["failed"] == 0
