"""The compact EngagementBook (domain/engagement.py): a row's events kept in flat arrays
by slot give the same figures and counters as the rules over the set of its events,
whatever the order of credits, duplicates and withdrawals; freed slots are reused."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.engagement import NOTHING, EngagementBook, Touch, summarize
from domain.inbound import MESSAGE, PREFERENCE, REPLY, START, STOP
from domain.ledger import LatencyHistogram
from tests.examples import examples

touches = st.builds(
    Touch, st.sampled_from([100.0, 100.0, 130.0, 170.0]),
    st.sampled_from([REPLY, REPLY, STOP, START]), st.sampled_from([MESSAGE, PREFERENCE]),
    st.sampled_from([None, "yes", "no"]), st.sampled_from([None, "Yes", "No"]),
    st.sampled_from([None, "hi", "halo"]))
# (row, event number, touch or None: withdraw)
credits = st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 5),
                             st.one_of(st.none(), touches)), max_size=40)


@settings(max_examples=examples(300), deadline=None)
@given(credits, st.randoms(use_true_random=False))
def test_the_book_equals_the_rules_over_each_rows_events(ops, rnd):
    book = EngagementBook()
    final: dict[int, dict[str, Touch]] = {}
    for row, n, touch in ops:
        inbound_id = f"cloud:wamid.{n}"
        book.credit(row, inbound_id, touch, 50.0)
        if touch is None:
            final.get(row, {}).pop(inbound_id, None)
        else:
            final.setdefault(row, {})[inbound_id] = touch
    shown = {row: summarize(events.items()) for row, events in final.items() if events}
    shown = {row: figures for row, figures in shown.items() if figures is not NOTHING}
    assert dict(book.rows.items()) == shown
    assert {row: book.row(row) for row in range(3001)} == {
        row: shown.get(row, NOTHING) for row in range(3001)}
    assert book.replied == sum(1 for f in shown.values() if f.replied_at is not None)
    assert book.opted_out == sum(1 for f in shown.values() if f.opted_out_at is not None)
    assert sorted(book.engaged()) == sorted(row for row, events in final.items() if events)
    assert len(book.rows) == len(shown)
    # the reply delays counted are those of the rows' first replies (sent at 50.0)
    delays = LatencyHistogram()
    for figures in shown.values():
        if figures.replied_at is not None:
            delays.add(max(0.0, figures.replied_at - 50.0), 1)
    assert (book.reply_latency.count, book.reply_latency.buckets) == (
        delays.count, delays.buckets)
    # the same final set credited in another order gives the same book
    again = EngagementBook()
    items = [(row, i, t) for row, events in final.items() for i, t in events.items()]
    rnd.shuffle(items)
    for row, inbound_id, touch in items:
        again.credit(row, inbound_id, touch, 50.0)
    assert dict(again.rows.items()) == shown
    assert again.statistics(10) == book.statistics(10)


def test_a_duplicate_changes_nothing_and_a_withdrawn_rows_slot_is_reused():
    book = EngagementBook()
    reply = Touch(100.0, REPLY, MESSAGE, "yes", "Yes", None)
    assert book.credit(7, "cloud:a", reply, 90.0)
    assert not book.credit(7, "cloud:a", reply, 90.0)  # a provider's retry
    assert book.row(7).reply_count == 1 and book.row(7).button == ("yes", "Yes")
    assert book.statistics(1)["buttons"] == [{"payload": "yes", "title": "Yes", "count": 1}]
    assert book.credit(7, "cloud:a", None, 90.0)  # attribution moved it elsewhere
    assert 7 not in book and book.row(7) is NOTHING and len(book) == 0
    assert book.statistics(1)["total_replied_count"] == 0
    assert book.credit(9, "cloud:b", reply, 90.0)
    assert len(book._row) == 1  # the freed slot, not a new one
    assert book.row(9).replied_at == 100.0


def test_restart_moves_the_reply_delay():
    book = EngagementBook()
    book.credit(3, "cloud:a", Touch(100.0, REPLY, MESSAGE), 90.0)
    assert book.statistics(1)["time_to_reply"]["median"] is not None
    first = book.reply_latency.buckets.copy()
    assert book.restart(3, 40.0)
    assert not book.restart(3, 40.0)
    assert book.reply_latency.count == 1 and book.reply_latency.buckets != first
    assert not book.restart(4, 40.0)  # no engagement there


def test_ties_in_time_are_broken_by_content_not_by_order():
    a = Touch(100.0, REPLY, MESSAGE, "no", "No", "x")
    b = Touch(100.0, REPLY, MESSAGE, "yes", "Yes", "y")
    assert summarize([("2", a), ("1", b)]) == summarize([("1", b), ("2", a)])
    assert summarize([("1", a), ("2", b)]).button == ("yes", "Yes")
