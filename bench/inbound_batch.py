"""Inbound replies (SPEC 6) in Cloud API batches of 100, against statuses in batches of
100: the per-item cost must be the same (within 20 %).

One daemon, one campaign; wrk loads /webhooks/cloud with batches of 100 statuses
(bench/ladder.py CloudLadder: each raises its message one level) and batches of 100
replies (ReplyLadder: each reply has its own id, from a campaign number, a third of them
quoting their message) in alternating rounds. A reply's credit is decided after its
2xx (attribution looks the number up), so a replies round lasts until the daemon has
decided every reply it answered, and a statuses round until its checkpoint is written.
Every reply must be decided once (credited or unattributed, never a duplicate).

No round pays for the one before: each starts when the analytics' recount
(store/insights.py `Recounter`) has nothing left to do (untimed). The figure is each
round to its checkpoint (wrk, the deciding after it, the checkpoint; the recount that
ran meanwhile, paced behind ingest, included), and beside it the same rounds ending when
the recount of their own work is done (the rows the statuses moved; the rows the
replies were credited to). Before wave 9 one round's recount ran partly inside the next
round's timed part, so each kind paid part of the other's.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable

from bench.common import BenchError, Daemon, Row, create_campaign, daemon, median, scratch
from bench.ladder import CloudLadder, ReplyLadder
from bench.rounds import Target, alternate
from store.aggregates import WAITING_SQL

MESSAGES = int(os.environ.get("BENCH_INBOUND_MESSAGES", "600000"))
PER_REQUEST = 100
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
PATH = "/webhooks/cloud"


def inbound_counts(d: Daemon) -> tuple[int, int]:
    m = d.metrics()

    def get(outcome: str) -> int:
        return int(m.get(f'campaignd_inbound_total{{outcome="{outcome}",source="cloud"}}', 0))

    return get("credited") + get("unattributed"), get("duplicate")


def settle(d: Daemon, target: int | None) -> None:
    """Until the daemon decided `target` replies (None: until the count stops moving).

    Towards a target the next look is timed by the rate seen so far (half the time the
    rest should take, 20 ms to 1 s apart), not every 50 ms: each look renders the whole
    /metrics page on the daemon's loop while the replies it waits for are being decided,
    and a look every 50 ms cost the daemon's loop about 5 % (docs/BENCHMARKS.md, wave 5).
    The end is still seen within 20 ms of it."""
    deadline = time.monotonic() + 300
    last, quiet = -1, time.monotonic()
    seen: tuple[float, int] | None = None  # (when, decided) at the previous look
    while time.monotonic() < deadline:
        done, dup = inbound_counts(d)
        now = time.monotonic()
        if target is not None and done >= target:
            return
        pause = 0.05
        if target is None:
            if done + dup != last:
                last, quiet = done + dup, now
            elif now - quiet > 3.0:
                return
        elif seen is not None and done > seen[1]:
            rate = (done - seen[1]) / (now - seen[0])
            pause = min(1.0, max(0.02, 0.5 * (target - done) / rate))
        if target is not None:
            seen = (now, done)
        time.sleep(pause)
    raise BenchError(f"replies still undecided after 300 s ({inbound_counts(d)}, want {target})")


def timed_settle(waits: list[float]) -> Callable[[Daemon, int | None], None]:
    """`settle`, recording how long each wait for a round's decisions took: the part of
    a replies round after wrk in which the daemon decides what it answered (the ingest
    actor's backlog), as against its checkpoint (the rest of `replies.flushes`)."""
    def settled(d: Daemon, target: int | None) -> None:
        t0 = time.perf_counter()
        settle(d, target)
        if target is not None:
            waits.append(round(time.perf_counter() - t0, 2))
    return settled


def recounted(d: Daemon) -> float:
    """Until the analytics have recounted every row marked or credited so far (as
    `Daemon.analytics_settled`, looking every 20 ms through one read-only connection:
    this wait is inside a round's timed part); the seconds it took."""
    t0 = time.perf_counter()
    db = sqlite3.connect(f"file:{d.db_path}?mode=ro", uri=True)
    try:
        deadline = time.monotonic() + 600
        while db.execute(WAITING_SQL).fetchone()[0]:
            if time.monotonic() > deadline:
                raise BenchError("the analytics still recount after 600 s")
            time.sleep(0.02)
    finally:
        db.close()
    return time.perf_counter() - t0


def timed_recount(waits: list[float]) -> Callable[[Daemon], None]:
    """`recounted` as a round's `after_checkpoint`, recording each wait."""
    def wait(d: Daemon) -> None:
        waits.append(round(recounted(d), 3))
    return wait


def without_recount(target: Target, recounts: list[float]) -> float:
    """The median of the target's rates had its rounds ended at their checkpoint (the
    rate before wave 9, but with each round starting with the recount idle)."""
    rates = [rate * (w + f) / (w + f - r) for rate, w, f, r in
             zip(target.rates, target.details["wrk_s"], target.flushes, recounts,
                 strict=True)]
    return median(rates)


class RecountedTarget(Target):
    """A round that starts with the recount idle (untimed) and ends, inside its timed
    part, with the recount of its own work done (`after_checkpoint`)."""

    def round(self, seconds: float) -> float:
        assert self.daemon is not None
        recounted(self.daemon)
        return super().round(seconds)


def run() -> list[Row]:
    folder = scratch("inbound")
    waits: list[float] = []
    recounts: dict[str, list[float]] = {"statuses": [], "replies": []}
    try:
        with daemon() as d:
            uuid = create_campaign(d.url, MESSAGES, prefix="wamid.C")
            statuses = RecountedTarget("statuses", d.url, PATH, CloudLadder(MESSAGES), folder,
                                       d, [uuid], source="cloud",
                                       items_per_request=PER_REQUEST,
                                       after_checkpoint=timed_recount(recounts["statuses"]))
            replies = RecountedTarget("replies", d.url, PATH, ReplyLadder(MESSAGES), folder,
                                      d, [uuid], source="cloud",
                                      items_per_request=PER_REQUEST, counts=inbound_counts,
                                      settle=timed_settle(waits), check_replay=False,
                                      after_checkpoint=timed_recount(recounts["replies"]))
            alternate([statuses, replies], ROUNDS, SECONDS)
            sent = replies.position * PER_REQUEST
            d.flush(uuid)
            stored = d.count("SELECT COUNT(*) FROM inbound")
            replied = d.statistics(uuid)["total_replied_count"]
            if stored != sent or replied != min(MESSAGES, sent):
                raise BenchError(f"{sent} replies sent: {stored} stored, {replied} messages"
                                 f" replied (want {min(MESSAGES, sent)})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    # the rounds to their checkpoint (each starts with the recount idle), and the same
    # rounds with the recount of their own work (`recounts`) included
    per_status = without_recount(statuses, recounts["statuses"]) * PER_REQUEST
    per_reply = without_recount(replies, recounts["replies"]) * PER_REQUEST
    ratio = per_reply / per_status if per_status else 0.0
    all_status = statuses.median * PER_REQUEST
    all_reply = replies.median * PER_REQUEST
    all_ratio = all_reply / all_status if all_status else 0.0
    return [Row("inbound replies, Cloud API batches of 100 (vs statuses)",
                f"{per_reply:,.0f} replies/s vs {per_status:,.0f} statuses/s = {ratio:.0%}"
                f" (with each round's analytics recount: {all_reply:,.0f} vs"
                f" {all_status:,.0f} = {all_ratio:.0%})",
                "same per-item cost (80-120 %)", ratio >= 0.8,
                {"replies_rps": replies.rates, "statuses_rps": statuses.rates,
                 # after wrk: deciding the backlog + the checkpoint + the recount, the
                 # deciding alone, and the recount alone
                 "replies_settle_s": replies.flushes, "replies_deciding_s": waits,
                 "replies_recount_s": recounts["replies"],
                 "statuses_checkpoint_s": statuses.flushes,
                 "statuses_recount_s": recounts["statuses"],
                 "ratio_with_recount": round(all_ratio, 3),
                 "replies_sent": sent, "replies_stored": stored, "replied": replied})]
