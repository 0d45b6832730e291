"""The analytics' rules on hand-computed numbers (SPEC 8, docs/insights.md): the
shrinkage formula, a heatmap cell and the advice, the time zone across summer-time
changes, a tier of each kind and their precedence, a contact kept from row changes
(and recounted when a maximum goes away), a trend period and its change, comparison
curves. Pure functions: no daemon (the API tests are in test_insights_api.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import insights as ins
from domain.besttime import (
    DELIVERED,
    READ,
    REPLIED,
    SENT,
    WEEK_SLOTS,
    BestTimePolicy,
    best_time,
    fold,
    fold_weeks,
    offset_spans,
    shrunk,
    utc_offset,
    zone,
)
from domain.contacts import RECOUNT_READ, RECOUNT_SENDS, Contact, apply_changes
from domain.insights import ZERO, Deltas, Engagement, Figures, RowChange, figures, slot_of
from domain.tiers import Audience, AudienceError, ContactFacts, TierPolicy, tier_of
from domain.trends import curves, period


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def counts(**fields: int) -> list[int]:
    return [fields.get(name, 0) for name in ins.SLOT_FIELDS]


# --- shrinkage and the heatmap -------------------------------------------------------------


def test_the_shrinkage_formula() -> None:
    # (reads + k·avg) / (delivered + k)
    assert shrunk(30, 40, 0.42, 50) == pytest.approx((30 + 50 * 0.42) / 90)
    assert shrunk(0, 0, 0.31, 50) == pytest.approx(0.31)  # no data: the average
    assert shrunk(3, 4, 0.31, 0) == pytest.approx(0.75)  # k = 0: the raw rate
    # 3 of 4 read cannot outshine 480 of 1,000 once shrunk
    assert shrunk(3, 4, 0.31, 50) < shrunk(480, 1000, 0.31, 50)


def _two_cells() -> list[list[list[int]]]:
    """Tuesday 19 h: 40 delivered, 30 read; Wednesday 10 h: 60 delivered, 12 read."""
    berlin = zone("Europe/Berlin")
    assert berlin is not None
    tuesday_19 = slot_of(utc("2026-06-16T17:10:00"))  # 19:10 CEST
    wednesday_10 = slot_of(utc("2026-06-17T08:05:00"))  # 10:05 CEST
    return fold([(tuesday_19, counts(sent=40, delivered=40, read=30, replied=4)),
                 (wednesday_10, counts(sent=60, delivered=60, read=12, replied=3))], berlin)


def test_a_heatmap_cell_with_its_shrunk_rates_and_the_cell_marked_too_small() -> None:
    result = best_time(_two_cells(), BestTimePolicy(prior_strength=50, min_cell_messages=50,
                                                    advice_min_messages=200))
    assert result["average"]["read_rate"] == 42.0  # 42 of 100 delivered
    assert result["average"]["reply_rate"] == 7.0
    cell = result["cells"][1 * 24 + 19]  # Tuesday 19 h
    assert (cell["weekday"], cell["hour"], cell["sent"], cell["delivered"]) == (1, 19, 40, 40)
    assert cell["read_rate"] == 75.0
    assert cell["read_rate_shrunk"] == 56.7  # (30 + 50 x 0.42) / (40 + 50)
    assert cell["reply_rate_shrunk"] == 8.3  # (4 + 50 x 0.07) / 90 = 0.0833
    assert cell["enough"] is False  # 40 < min_cell_messages 50
    other = result["cells"][2 * 24 + 10]  # Wednesday 10 h
    assert other["read_rate_shrunk"] == 30.0  # (12 + 21) / 110
    assert other["enough"] is True
    empty = result["cells"][0]
    assert empty["read_rate"] is None and empty["read_rate_shrunk"] == 42.0
    assert result["advice"] is None  # 40 messages: below advice_min_messages


def test_advice_names_the_block_the_data_supports_and_none_without_it() -> None:
    policy = BestTimePolicy(prior_strength=50, min_cell_messages=30, advice_min_messages=30)
    advice = best_time(_two_cells(), policy)["advice"]
    assert advice is not None
    assert (advice["weekday"], advice["from_hour"], advice["to_hour"]) == (1, 19, 21)
    assert advice["rate"] == 56.7 and advice["average"] == 42.0 and advice["n"] == 40
    assert advice["text"] == "Tue 19-21 h: read 56.7 % vs 42 % average, n = 40"
    # The same rates on a quarter of the messages: not enough evidence to advise.
    berlin = zone("Europe/Berlin")
    assert berlin is not None
    small = fold([(slot_of(utc("2026-06-16T17:10:00")), counts(delivered=10, read=7)),
                  (slot_of(utc("2026-06-17T08:05:00")), counts(delivered=60, read=12))],
                 berlin)
    assert best_time(small, BestTimePolicy(50, 10, 10))["advice"] is None
    # Read receipts off everywhere: nothing to advise on.
    dark = fold([(slot_of(utc("2026-06-16T17:10:00")), counts(delivered=400))], berlin)
    assert best_time(dark, policy)["advice"] is None


# --- time zones -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "at", "cell"), [
    # Berlin springs forward on Sunday 29 March 2026 at 02:00 CET -> 03:00 CEST.
    ("Europe/Berlin", "2026-03-29T00:30:00", (6, 1)),  # 01:30 CET, before the change
    ("Europe/Berlin", "2026-03-29T01:30:00", (6, 3)),  # 03:30 CEST: 02 h never happens
    ("Europe/Berlin", "2026-03-28T01:30:00", (5, 2)),  # the day before: 02:30 CET
    # ...and falls back on Sunday 25 October 2026 at 03:00 CEST -> 02:00 CET: 02 h twice.
    ("Europe/Berlin", "2026-10-25T00:30:00", (6, 2)),  # 02:30 CEST
    ("Europe/Berlin", "2026-10-25T01:30:00", (6, 2)),  # 02:30 CET
    ("Europe/Berlin", "2026-10-25T02:30:00", (6, 3)),
    # New York springs forward on Sunday 8 March 2026 at 02:00 EST -> 03:00 EDT.
    ("America/New_York", "2026-03-08T06:30:00", (6, 1)),  # 01:30 EST
    ("America/New_York", "2026-03-08T07:30:00", (6, 3)),  # 03:30 EDT
    # Jakarta (WIB, UTC+7, no summer time): late Sunday UTC is Monday morning.
    ("Asia/Jakarta", "2026-03-29T00:30:00", (6, 7)),
    ("Asia/Jakarta", "2026-03-29T23:30:00", (0, 6)),
    # India (+05:30): a quarter-hour slot is whole in every zone.
    ("Asia/Kolkata", "2026-03-29T03:45:00", (6, 9)),  # 09:15 IST
    ("Asia/Kolkata", "2026-03-29T03:15:00", (6, 8)),  # 08:45 IST
])
def test_a_send_lands_in_its_local_weekday_and_hour(name: str, at: str,
                                                    cell: tuple[int, int]) -> None:
    tz = zone(name)
    assert tz is not None
    cells = folded([(slot_of(utc(at)), counts(sent=1, delivered=1))], tz)
    found = [(d, h) for d in range(7) for h in range(24) if cells[d][h][SENT]]
    assert found == [cell]


def folded(slots: Sequence[tuple[int, list[int]]], tz: ZoneInfo, margin: int = 500
           ) -> list[list[list[int]]]:
    """`fold`, checked against the route's way: the slots summed by their place in the
    week per stretch of one UTC offset (as store/insights.py week_sums does in SQL), each
    slot's offset that of its stretch."""
    cells = fold(slots, tz)
    if not slots:
        return cells
    start = min(s for s, _ in slots) - margin
    spans = offset_spans(tz, start, max(s for s, _ in slots) + 1 + margin)
    assert spans[0][0] == start and all(a[1] == b[0] for a, b in pairwise(spans))
    sums: dict[tuple[int, int], list[int]] = {}
    for slot, its in slots:
        first, end, offset = next(span for span in spans if span[0] <= slot < span[1])
        assert utc_offset(slot, tz) == offset
        key = (offset, slot % WEEK_SLOTS)
        sums[key] = [a + b for a, b in zip(sums.get(key, [0] * len(its)), its, strict=True)]
    assert fold_weeks([(o, w, c) for (o, w), c in sums.items()]) == cells
    return cells


ZONES = ("Asia/Jakarta", "Europe/Berlin", "America/New_York", "Asia/Kolkata",
         "Australia/Lord_Howe", "America/St_Johns", "Pacific/Chatham", "Asia/Kathmandu")


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(ZONES),
       start=st.integers(slot_of(utc("2024-01-01T00:00:00")),
                         slot_of(utc("2026-12-31T00:00:00"))),
       days=st.integers(1, 400),
       picks=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 9)), max_size=80))
def test_a_week_of_slots_summed_per_offset_places_each_as_its_own_rules(
        name: str, start: int, days: int, picks: list[tuple[int, int]]) -> None:
    tz = zone(name)
    assert tz is not None
    span = days * 96
    folded([(start + p % span, counts(sent=n, read=n // 2)) for p, n in picks], tz, 0)


@pytest.mark.parametrize(("name", "day"), [
    ("Europe/Berlin", "2026-03-29"), ("Europe/Berlin", "2026-10-25"),
    ("Australia/Lord_Howe", "2026-04-05"), ("Australia/Lord_Howe", "2026-10-04"),
    ("America/St_Johns", "2026-03-08"), ("Pacific/Chatham", "2026-04-05")])
def test_every_slot_of_a_day_the_clocks_change_lands_as_its_own_rules(name: str,
                                                                       day: str) -> None:
    tz = zone(name)
    assert tz is not None
    first = slot_of(utc(f"{day}T00:00:00")) - 96
    folded([(first + i, counts(sent=1 + i % 3)) for i in range(3 * 96)], tz, 0)


def test_the_fall_back_hour_gets_both_sends_and_the_skipped_hour_none() -> None:
    berlin = zone("Europe/Berlin")
    assert berlin is not None
    sends = ["2026-10-25T00:30:00", "2026-10-25T01:30:00",  # 02:30 twice
             "2026-03-29T00:30:00", "2026-03-29T01:30:00"]  # 01:30 and 03:30
    cells = folded([(slot_of(utc(t)), counts(sent=1, delivered=1, read=1)) for t in sends],
                   berlin)
    sunday = cells[6]
    assert [sunday[h][SENT] for h in range(5)] == [0, 1, 2, 1, 0]
    assert sunday[2][DELIVERED] == 2 and sunday[2][READ] == 2 and sunday[2][REPLIED] == 0
    assert zone("Not/AZone") is None


# --- a row's figures ------------------------------------------------------------------------


def test_a_rows_figures_follow_its_class_and_failure() -> None:
    t = 1_800_000_000.0
    assert figures(0, None, t, None, None, None, None) == ZERO  # queued: nothing
    read = figures(4, None, t, t + 1, t + 6, t + 100, None, Engagement(t + 400, t + 900))
    assert read.flags == ins.SENT | ins.DELIVERED | ins.READ | 32  # 32: replied
    assert (read.sent_at, read.read_at, read.reply_at, read.last_reply_at) == (
        t + 1, t + 100, t + 400, t + 900)
    # delays: delivered 5 s -> bucket 0 (<= 10 s), read 99 s -> <= 120 s (3), reply 399 s
    # -> <= 600 s (5)
    assert (read.delay_bucket(1), read.delay_bucket(2), read.delay_bucket(3)) == (0, 3, 5)
    bad = figures(6, "not_on_whatsapp", t, None, None, None, t + 2)
    assert bad.flags == ins.FAILED | ins.BAD_NUMBER and bad.sent_at == t + 2
    other = figures(6, "throttled", t, t + 1, None, None, t + 2)
    assert other.flags == ins.FAILED and other.sent_at == t + 1


def test_a_change_moves_the_slots_by_new_minus_old() -> None:
    t = utc("2026-06-16T17:10:00")
    deltas = Deltas()
    sent = figures(1, None, t, t, None, None, None)
    read = figures(4, None, t, t, t + 5, t + 1000, None)
    deltas.move(7, 1, 0, "6281100000001", ZERO, sent)
    deltas.move(7, 1, 0, "6281100000001", sent, read)
    deltas.move(7, 1, 0, "6281100000001", read, read)  # a replay: nothing
    rows = {slot: c for _, slot, c in deltas.nonzero_slots()}
    assert rows[slot_of(t)][:3] == [1, 1, 1]  # sent, delivered, read by send slot
    assert rows[slot_of(t + 1000)][6] == 1  # the read, by when it happened
    assert dict(((s, b), n) for _, s, b, n in deltas.nonzero_delays()) == {
        (0, 0): 1, (1, 0): 1, (2, 7): 1}  # read after 1000 s: <= 1800 s


# --- contacts and tiers ----------------------------------------------------------------------


def change(no: int, row: int, old: Figures, new: Figures) -> RowChange:
    return RowChange(no, row, old, new)


def test_a_contact_follows_its_rows_and_recounts_when_a_kept_value_goes() -> None:
    t = 1_800_000_000.0
    c = Contact("6281100000001")
    bad1 = figures(6, "not_on_whatsapp", t, None, None, None, t)
    bad2 = figures(6, "not_on_whatsapp", t + 50, None, None, None, t + 50)
    assert apply_changes(c, [change(1, 0, ZERO, bad1), change(2, 0, ZERO, bad2)]) == 0
    assert (c.received, c.failed, c.unreachable) == (2, 2, True)
    older = figures(3, None, t - 99, t - 99, t - 98, None, None)
    assert apply_changes(c, [change(3, 0, ZERO, older)]) == 0
    assert c.unreachable and c.received == 3 and c.delivered == 1  # an older send: kept
    # The latest send turns out delivered (evidence wins): no longer unreachable.
    later = figures(3, None, t + 50, t + 50, t + 60, None, None)
    assert apply_changes(c, [change(2, 0, bad2, later)]) == 0
    assert not c.unreachable and c.failed == 1 and c.delivered == 2
    # A read, then its read time moves earlier: the maximum may have dropped: recount.
    read = figures(4, None, t + 50, t + 50, t + 60, t + 70, None)
    assert apply_changes(c, [change(2, 0, later, read)]) == 0
    assert c.last_read_at == t + 70 and c.engaged_at == t + 70
    earlier = read._replace(read_at=t + 65)
    assert apply_changes(c, [change(2, 0, read, earlier)]) == RECOUNT_READ
    # A kept send that goes back to the queue (a retry under way): recount the sends.
    assert apply_changes(c, [change(2, 0, earlier, ZERO)]) & RECOUNT_SENDS


def test_a_tier_of_each_kind_and_their_precedence() -> None:
    now = 1_800_000_000.0
    day = 86400.0
    policy = TierPolicy(engaged_days=90, unengaged_min_delivered=5)
    assert tier_of(ContactFacts(engaged_at=now - 89 * day, delivered=1), now, policy) == \
        "engaged"
    assert tier_of(ContactFacts(engaged_at=now - 91 * day, delivered=5), now, policy) == \
        "unengaged"
    assert tier_of(ContactFacts(engaged_at=None, delivered=5), now, policy) == "unengaged"
    assert tier_of(ContactFacts(engaged_at=now - 91 * day, delivered=4), now, policy) == "new"
    assert tier_of(ContactFacts(), now, policy) == "new"
    assert tier_of(ContactFacts(unreachable=True, engaged_at=now), now, policy) == \
        "unreachable"  # over a recent read
    assert tier_of(ContactFacts(suppressed=True, unreachable=True, engaged_at=now), now,
                   policy) == "opted_out"  # over everything


def test_an_audience_reports_what_each_rule_removed() -> None:
    tiers = ["engaged", "engaged", "new", "unengaged", "unreachable", "opted_out"]
    report = Audience(exclude=("opted_out", "unreachable")).report(tiers)
    assert (report["recipients"], report["kept"], report["removed_count"]) == (6, 4, 2)
    assert report["removed"] == [{"rule": "exclude_tiers", "tier": "opted_out", "count": 1},
                                 {"rule": "exclude_tiers", "tier": "unreachable", "count": 1}]
    report = Audience(include=("engaged",), exclude=("opted_out",)).report(tiers)
    assert report["kept"] == 2
    assert {(r["rule"], r["tier"]): r["count"] for r in report["removed"]} == {
        ("include_tiers", "opted_out"): 1, ("include_tiers", "unreachable"): 1,
        ("include_tiers", "unengaged"): 1, ("include_tiers", "new"): 1}
    with pytest.raises(AudienceError) as bad:
        Audience.parse({"include_tiers": ["engaged", "loyal"]})
    assert bad.value.field == "audience.include_tiers[1]"
    with pytest.raises(AudienceError) as both:
        Audience.parse({"include_tiers": ["new"], "exclude_tiers": ["new"]})
    assert both.value.field == "audience.exclude_tiers"


# --- trends and comparison ----------------------------------------------------------------------


def test_a_period_and_its_change_against_the_one_before() -> None:
    current = {"sent": 10, "delivered": 10, "read": 8, "replied": 1, "failed": 0,
               "opted_out": 0}
    previous = {"sent": 18, "delivered": 18, "read": 9, "replied": 0, "failed": 2,
                "opted_out": 1}
    p = period(current, previous)
    assert p["current"]["read_rate"] == 80.0 and p["previous"]["read_rate"] == 50.0
    assert p["change"]["read_rate"] == 30.0  # percentage points
    assert p["previous"]["failure_rate"] == 10.0  # 2 of 20 handed over
    assert p["change"]["failure_rate"] == -10.0
    assert p["change"]["sent"] == -44.4  # (10 - 18) / 18
    assert p["change"]["replied"] is None  # nothing before to compare with
    empty = period(current, dict.fromkeys(current, 0))
    assert empty["change"]["read_rate"] is None


def test_comparison_curves_are_cumulative_and_end_at_the_rates() -> None:
    # 10 sent; delivered after <= 10 s (8) and <= 300 s (2); read <= 60 s (4), <= 2 h (4)
    result = curves({(0, 0): 10, (1, 0): 8, (1, 4): 2, (2, 2): 4, (2, 9): 4, (3, 6): 1})
    points = {p["after"]: p for p in result["points"]}
    assert points[10] == {"after": 10, "delivered": 80.0, "read": 0.0, "replied": 0.0}
    assert points[60]["read"] == 40.0  # 4 of 10 delivered
    assert points[300]["delivered"] == 100.0
    assert points[900]["replied"] == 10.0
    assert points[None] == {"after": None, "delivered": 100.0, "read": 80.0, "replied": 10.0}
