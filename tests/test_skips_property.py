"""SPEC 9 skips as a property: with skips among the events, a campaign's statistics and
each row's skip are still a function of the SET of events (status events and skip
facts, in any order, with duplicates), exactly as the campaign actor combines them
(actors/campaign.py: the ledger, then `SkipBook.refresh` of the changed rows), and equal
what the rule says directly: a row counts as skipped when it has a skip and nothing was
sent or failed for it; its skip is the earliest."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.ledger import Ledger
from domain.skips import Skip, SkipBook, with_skips
from domain.status import Level, statistics_from_counts
from tests.examples import examples

MESSAGES = 5
SKIPS = [Skip(1_010.0, "suppressed", "replied 'STOP'", "webjs"),
         Skip(1_005.0, "suppressed", "asked by phone", "api"),
         Skip(1_010.0, "unreachable", "its last 2 sends failed", "tiers"),
         Skip(1_005.0, "suppressed", None, "api")]

status_events = st.tuples(st.just("status"), st.integers(0, MESSAGES - 1),
                          st.integers(Level.QUEUED, Level.READ), st.booleans(),
                          st.integers(1_000, 1_100).map(float))
skip_facts = st.tuples(st.just("skip"), st.integers(0, MESSAGES - 1), st.sampled_from(SKIPS))
events_strategy = st.lists(st.one_of(status_events, skip_facts), max_size=30)


def run(events: list[tuple[object, ...]]) -> tuple[object, ...]:
    ledger = Ledger()
    for row in range(MESSAGES):
        ledger.add(row, 500.0)
    book = SkipBook()
    for event in events:
        if event[0] == "status":
            _, row, level, failed, at = event
            if ledger.apply(row, level, failed, at, "refused" if failed else None):
                book.refresh(row, ledger.message_class(row))
        else:
            _, row, skip = event
            book.offer(row, skip, ledger.message_class(row))
    stats = with_skips(ledger.statistics(), book.count)
    return stats, tuple(book.get(r) for r in range(MESSAGES))


def expected(events: list[tuple[object, ...]]) -> tuple[int, tuple[Skip | None, ...]]:
    """The rule applied to the set directly."""
    ledger = Ledger()
    for row in range(MESSAGES):
        ledger.add(row, 500.0)
    for event in events:
        if event[0] == "status":
            _, row, level, failed, at = event
            ledger.apply(row, level, failed, at, "refused" if failed else None)
    skips = [min((e[2] for e in events if e[0] == "skip" and e[1] == r), default=None,
                 key=Skip.rank) for r in range(MESSAGES)]
    counted = sum(1 for r in range(MESSAGES)
                  if skips[r] is not None and ledger.message_class(r) == Level.QUEUED)
    return counted, tuple(skips)


@settings(max_examples=examples(300), deadline=None)
@given(events_strategy, st.randoms(use_true_random=False))
def test_skips_are_a_function_of_the_set_of_events(events: list[tuple[object, ...]],
                                                   rnd: object) -> None:
    shuffled = list(events) + [e for e in events if rnd.random() < 0.3]  # type: ignore[attr-defined]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    first, second = run(events), run(shuffled)
    assert first == second
    stats, skips = first
    counted, direct = expected(events)
    assert stats["total_skipped_count"] == counted
    assert skips == direct
    # Every message is in exactly one of the cards, and a skipped one is done.
    assert (stats["total_queued_count"] + stats["total_sent_count"]
            + stats["total_failed_count"] + stats["total_skipped_count"]
            == stats["total_message_count"] == MESSAGES)
    done = stats["total_sent_count"] + stats["total_failed_count"] + counted
    assert stats["progress"] == round(done * 100.0 / MESSAGES, 1)


def test_with_skips_on_an_empty_campaign() -> None:
    stats = with_skips(statistics_from_counts([0] * 7), 0)
    assert stats["total_skipped_count"] == 0 and stats["progress"] == 0.0
