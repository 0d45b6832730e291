"""Inbound replies (SPEC 6) in Cloud API batches of 100, against statuses in batches of
100: the per-item cost must be the same (within 20 %).

One daemon, one campaign; wrk loads /webhooks/cloud with batches of 100 statuses
(bench/ladder.py CloudLadder: each raises its message one level) and batches of 100
replies (ReplyLadder: each reply has its own id, from a campaign number, a third of them
quoting their message) in alternating rounds. A reply's credit is decided after its
2xx (attribution looks the number up), so a replies round lasts until the daemon has
decided every reply it answered, and a statuses round until its checkpoint is written.
Every reply must be decided once (credited or unattributed, never a duplicate).

Each round is charged the work it caused and nothing of the round before: it starts
when the analytics' recount (store/aggregates.py) has nothing left to do (untimed), and
its timed part ends when the recount of what its checkpoint wrote is done (the rows its
statuses moved; the rows its replies were credited to). Before wave 9 the recount of
one round ran partly inside the next round's timed part, so each kind paid part of the
other's (the statuses rounds change more rows per second than the replies rounds).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable

from bench.common import BenchError, Daemon, Row, create_campaign, daemon, scratch
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


def recounted(d: Daemon) -> None:
    """Until the analytics have recounted every row marked or credited so far (as
    `Daemon.analytics_settled`, looking every 20 ms through one read-only connection:
    this wait is inside a round's timed part)."""
    db = sqlite3.connect(f"file:{d.db_path}?mode=ro", uri=True)
    try:
        deadline = time.monotonic() + 300
        while db.execute(WAITING_SQL).fetchone()[0]:
            if time.monotonic() > deadline:
                raise BenchError("the analytics still recount after 300 s")
            time.sleep(0.02)
    finally:
        db.close()


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
    try:
        with daemon() as d:
            uuid = create_campaign(d.url, MESSAGES, prefix="wamid.C")
            statuses = RecountedTarget("statuses", d.url, PATH, CloudLadder(MESSAGES), folder,
                                       d, [uuid], source="cloud",
                                       items_per_request=PER_REQUEST,
                                       after_checkpoint=recounted)
            replies = RecountedTarget("replies", d.url, PATH, ReplyLadder(MESSAGES), folder,
                                      d, [uuid], source="cloud",
                                      items_per_request=PER_REQUEST, counts=inbound_counts,
                                      settle=timed_settle(waits), check_replay=False,
                                      after_checkpoint=recounted)
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
    per_status = statuses.median * PER_REQUEST
    per_reply = replies.median * PER_REQUEST
    ratio = per_reply / per_status if per_status else 0.0
    return [Row("inbound replies, Cloud API batches of 100 (vs statuses)",
                f"{per_reply:,.0f} replies/s vs {per_status:,.0f} statuses/s = {ratio:.0%}",
                "same per-item cost (80-120 %)", ratio >= 0.8,
                {"replies_rps": replies.rates, "statuses_rps": statuses.rates,
                 # after wrk: deciding the backlog + the checkpoint, and the deciding alone
                 "replies_settle_s": replies.flushes, "replies_deciding_s": waits,
                 "statuses_checkpoint_s": statuses.flushes,
                 "replies_sent": sent, "replies_stored": stored, "replied": replied})]
