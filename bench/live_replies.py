"""The attributor's open replies in process: `python -m bench.live_replies [REPLIES]`.

Drives domain/attribution.py's `Attributor` as the ingest actor does for the inbound
row's workload (bench/inbound_batch.py): batches of 100 plain text replies, each from a
new number that was sent one message; each batch's numbers looked up in one answer, the
rows asked about in one answer (sent 10 s before, delivered), the credits taken, the
store operations taken every 200 batches as checkpoints would. REPLIES (200,000 by
default) stay open (their 72-hour window). Prints the CPU per reply (and the garbage
collector's part of it, with the daemon's thresholds, daemon/serve.py), what the open
replies hold (tracemalloc, a second pass of 50,000), the objects the collector still
tracks per open reply after a full collection, and how long a full collection takes
with them. Not a row of `make bench` (no daemon, no storage): the probe named in
docs/BENCHMARKS.md, "Wave 7 (branch inbound80)". Compare two commits by running it
from each one's directory, alternately.
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from typing import Any

from daemon.serve import GC_THRESHOLDS
from domain.attribution import Ask, Attributor, Lookup
from domain.inbound import MESSAGE, REPLY, InboundEvent
from domain.phones import number_key

BATCH = 100


def number(i: int) -> str:
    return f"62812{i:08d}"


def drive(replies: int, checkpoint_every: int = 200) -> Attributor:
    """`replies` plain replies through a fresh attributor, as the ingest actor would."""
    now = time.time()
    sent = int(now * 10) - 100  # tenths: ten seconds before the replies
    row_of = {number_key(number(i)): i for i in range(replies)}
    attributor = Attributor(72 * 3600.0, lambda _id: None, lambda _no: 1)
    for n, start in enumerate(range(0, replies, BATCH)):
        events = [InboundEvent(f"cloud:wamid.R{i:012d}", REPLY, MESSAGE, now, number(i))
                  for i in range(start, min(replies, start + BATCH))]
        attributor.inbound_batch("cloud", events, now)
        for effect in attributor.take_effects():
            if isinstance(effect, Lookup):
                attributor.number_rows(effect.serial, effect.keys,
                                       [(key, 1, row_of[key]) for key in effect.keys])
        for effect in attributor.take_effects():
            if isinstance(effect, Ask):
                attributor.row_facts(effect.serial, effect.campaign_no,
                                     [(row, sent, 2, False, sent, 1, 1) for row in effect.rows])
        attributor.take_effects()
        attributor.take_outcomes()
        if n % checkpoint_every == 0:
            attributor.take_ops()
    attributor.take_ops()
    return attributor


def measure(replies: int) -> dict[str, Any]:
    gc.set_threshold(*GC_THRESHOLDS)
    collecting = [0.0, 0.0]  # (started, total seconds)

    def timer(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            collecting[0] = time.perf_counter()
        else:
            collecting[1] += time.perf_counter() - collecting[0]

    gc.collect()
    gc.callbacks.append(timer)
    cpu = time.process_time()
    attributor = drive(replies)
    cpu = time.process_time() - cpu
    gc.callbacks.remove(timer)
    gc.collect()
    tracked = len(gc.get_objects())
    started = time.perf_counter()
    gc.collect()
    full = time.perf_counter() - started
    del attributor
    gc.collect()
    tracked -= len(gc.get_objects())

    sample = 50_000
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = drive(sample)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(kept) == sample
    return {"replies": replies, "us_per_reply": cpu * 1e6 / replies,
            "gc_us_per_reply": collecting[1] * 1e6 / replies,
            "bytes_per_open_reply": held / sample,
            "tracked_per_open_reply": tracked / replies, "full_collection_ms": full * 1e3}


def main() -> None:
    replies = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    result = measure(replies)
    print(f"{result['replies']:,} open replies: {result['us_per_reply']:.2f} µs of CPU per"
          f" reply (the collector {result['gc_us_per_reply']:.2f}),"
          f" {result['bytes_per_open_reply']:,.0f} bytes per open reply,"
          f" {result['tracked_per_open_reply']:.1f} objects tracked per open reply,"
          f" a full collection {result['full_collection_ms']:.0f} ms")


if __name__ == "__main__":
    main()
