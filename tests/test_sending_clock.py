"""Rates, throttling, pauses and send windows of real sender actors, on a clock the test
holds (tests/sender_harness.py): what is checked is when each gateway call would be
made, counted in fake seconds, never how fast this machine happens to be."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from actors.sender import Job, SendResult, SetPaused
from domain.pacing import AccountPacer, Aimd
from domain.sendwindow import parse_window
from tests.sender_harness import Call, Harness, most_in_any_window

DEFAULTS = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "from": "00:00",
            "to": "24:00", "timezone": "UTC"}


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.stop()


def test_a_campaign_keeps_to_its_own_rate(h: Harness) -> None:
    h.start(1, h.account(0), rate=8, rows=40)
    h.run_until(h.clock.now + 60, stop=lambda: len(h.calls) == 40)
    times = [c.at for c in h.calls]
    assert sorted(c.job.row for c in h.calls) == list(range(40))  # each once
    assert most_in_any_window(times, 1.0) <= 8 + 1  # one token of burst at most
    assert times[-1] - times[0] <= 40 / 8  # and not slower than asked


def test_two_campaigns_on_one_account_never_exceed_its_rate_together(h: Harness) -> None:
    account = h.account(10)
    h.start(1, account, rate=50, rows=60)
    h.start(2, account, rate=50, rows=60)
    h.run_until(h.clock.now + 60, stop=lambda: len(h.calls) == 120)
    times = [c.at for c in h.calls]
    assert len(times) == 120
    assert most_in_any_window(times, 1.0) <= 10 + 1
    assert most_in_any_window(times, 5.0) <= 50 + 1
    assert times[-1] - times[0] <= 120 / 10  # the account's whole rate is used
    # They take turns: in the first 4 seconds each has had its share.
    early = [c.campaign for c in h.calls if c.at < times[0] + 4]
    assert early.count(1) >= 18 and early.count(2) >= 18, early
    assert h.progress[1]["account_rate"] == h.progress[2]["account_rate"] == 10.0


def test_throttling_lowers_the_shared_rate_holds_and_recovers(h: Harness) -> None:
    account = h.account(20, Aimd(decrease=0.5, recovery=1.0, floor=0.5))
    throttled: list[Call] = []

    def answer(call: Call) -> SendResult:
        if len(h.calls) == 30 and not throttled:  # one 429 with Retry-After: 1
            throttled.append(call)
            return SendResult(call.job.row, "transient", "HTTP 429: Too many requests",
                              retry_after=1.0, throttled=True)
        return SendResult(call.job.row, "accepted")

    h.answer = answer
    h.start(1, account, rate=100, rows=200)
    h.start(2, account, rate=100, rows=200)
    h.run_until(h.clock.now + 120, stop=lambda: len(h.calls) == 401)
    assert len(h.calls) == 401  # the throttled one was sent again
    t = throttled[0].at
    after = [c.at for c in h.calls if c.at > t]
    assert min(after) >= t + 1.0  # Retry-After held the whole account, both campaigns
    snapshot = account.snapshot()
    assert snapshot["throttled_count"] == 1
    # Halved to 10/s, then +1/s per second: in any second starting s seconds after the
    # throttle, at most 10 + s + 1 messages (+1: one token of burst), for both together.
    for start in after:
        allowed = 10 + (start + 1 - t) + 1
        assert sum(1 for x in after if start <= x < start + 1) <= allowed, start
    # Ten seconds later the rate is back to 20 and no higher.
    assert snapshot["effective_rate"] == 20.0
    late = [c.at for c in h.calls if c.at > t + 12]
    assert late and most_in_any_window(late, 1.0) <= 20 + 1


def test_pause_sends_nothing_however_long_then_resume_finishes(h: Harness) -> None:
    h.start(1, h.account(0), rate=10, rows=50)
    h.run_until(h.clock.now + 60, stop=lambda: len(h.calls) >= 10)
    h.tell(1, SetPaused(True))
    paused_at, count = h.clock.now, len(h.calls)
    h.run_until(paused_at + 3600)  # an hour of (fake) time
    assert len(h.calls) == count
    assert h.progress[1]["eta_seconds"] is None  # paused: no ETA
    h.tell(1, SetPaused(False))
    h.run_until(h.clock.now + 60, stop=lambda: len(h.calls) == 50)
    assert sorted(c.job.row for c in h.calls) == list(range(50))
    assert ("drained" in [kind for _, kind, _ in h.notices])


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_a_window_closes_and_reopens_mid_campaign() -> None:
    # Monday 19:59:00 in Jakarta (WIB, UTC+7); the window is 08:00-20:00 every day.
    h = Harness()
    h.clock.offset = _at("2026-11-30T19:59:00+07:00") - h.clock.now
    window = parse_window({"from": "08:00", "to": "20:00", "timezone": "Asia/Jakarta"},
                          DEFAULTS)
    try:
        h.start(1, h.account(0), rate=1, rows=120, window=window)
        h.run_until(h.clock.now + 30)
        progress = h.progress[1]
        # About 90 left at about 1/s: 30 s until 20:00, the twelve closed hours, then the
        # rest (the measured send rate wobbles by a message, so the rest is not exact).
        assert 12 * 3600 + 30 < progress["eta_seconds"] <= 12 * 3600 + 120
        h.run_until(h.clock.now + 3600)  # across 20:00
        closes, opens = _at("2026-11-30T20:00:00+07:00"), _at("2026-12-01T08:00:00+07:00")
        assert 55 <= len(h.calls) <= 61 and all(c.wall < closes for c in h.calls)
        progress = h.progress[1]
        assert progress["waiting_for"] == "send_window"
        assert progress["window_opens"] == "08:00 WIB"
        assert progress["window_opens_at"] == "2026-12-01T01:00:00.000Z"
        # no counter moves while it waits: the actor says its progress changed, once, so
        # the campaign's statistics are published again (the page shows the wait)
        assert [kind for _, kind, _ in h.notices].count("progress") == 1
        sent_before = len(h.calls)
        h.run_until(opens + 600 - h.clock.offset, stop=lambda: len(h.calls) == 120)
        assert len(h.calls) == 120
        later = [c.wall for c in h.calls[sent_before:]]
        assert min(later) >= opens  # nothing while it was closed
        assert sorted(c.job.row for c in h.calls) == list(range(120))
        assert h.progress[1]["waiting_for"] is None
        assert [kind for _, kind, _ in h.notices].count("progress") == 2  # and the end
    finally:
        h.stop()


# --- the pacing arithmetic (domain/pacing.py) -----------------------------------------


def test_reservations_are_spaced_and_taken_in_turn() -> None:
    pacer = AccountPacer(4)
    slots = [pacer.reserve(100.0) for _ in range(8)]
    assert slots == [100.0 + i * 0.25 for i in range(8)]
    assert pacer.reserve(200.0) == 200.0  # an idle account saves nothing up


def test_aimd_decreases_once_per_burst_and_recovers_additively() -> None:
    pacer = AccountPacer(80, Aimd(decrease=0.5, recovery=2.0, floor=1.0, cooldown=1.0))
    assert pacer.throttled(10.0)
    assert not pacer.throttled(10.5)  # the same burst of 429s counts once
    assert pacer.effective(10.5) == 41.0
    assert pacer.throttled(11.5) and pacer.effective(11.5) == 21.5  # (41 + 2) / 2
    assert pacer.effective(21.5) == 41.5
    assert pacer.effective(100.0) == 80.0  # never above the configured rate


def test_an_unlimited_account_is_throttled_from_the_pace_it_reached() -> None:
    pacer = AccountPacer(0, Aimd(decrease=0.5, recovery=1.0, floor=0.5))
    assert pacer.effective(0.0) is None
    for i in range(60):  # 30 messages/s over the last two seconds
        pacer.reserve(10.0 + i / 30)
    pacer.throttled(12.0, retry_after=3.0)
    assert pacer.effective(12.0) == pytest.approx(15.0)
    assert pacer.reserve(12.0) == 15.0  # held until Retry-After


def test_window_labels_use_the_zone_abbreviation() -> None:
    window = parse_window({"from": "08:00", "to": "20:00", "timezone": "Asia/Jakarta"},
                          DEFAULTS)
    now = datetime(2026, 11, 30, 14, 0, tzinfo=UTC).timestamp()  # 21:00 WIB
    opens = window.next_open(now)
    assert opens is not None and window.label(opens, now) == "08:00 WIB"


def test_skips_cost_no_rate_and_a_stop_mid_campaign_is_honoured(h: Harness) -> None:
    """SPEC 9 skips with a clock the test holds: a skipped recipient takes no token of the
    rate (the others go out as if it were not there) and is never called; a number that
    becomes suppressed while the campaign sends is skipped when its turn comes."""
    stopped = {1, 3, 5}

    def skip_of(job: Job) -> str | None:  # read in the actor's thread, when the job is due
        return "suppressed" if job.row in stopped else None

    h.start(1, h.account(0), rate=1.0, rows=10, max_in_flight=1, skip_of=skip_of)
    h.run_until(1002.5)
    assert [c.job.row for c in h.sent_by(1)] == [0, 2, 4]  # 1 / s, the skips in between
    stopped.add(8)  # a STOP arrives mid-campaign
    h.run_until(1100.0, stop=lambda: ("drained" in {n[1] for n in h.notices}))
    assert [c.job.row for c in h.sent_by(1)] == [0, 2, 4, 6, 7, 9]
    assert sorted(c.job.row for c in h.skipped) == [1, 3, 5, 8]
    assert [c.at for c in h.sent_by(1)] == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0, 1005.0]
    assert h.progress[1]["total_remaining_count"] == 0
