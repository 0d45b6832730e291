"""Row 5: a 1,000,000-message campaign: memory per tracked message, cost of a stats read.

The daemon runs as a process. Its RSS is read before the campaign exists and after
every message is registered and has been sent, delivered and read (so every timestamp
slot is in use), after a checkpoint. A statistics read is timed on the 1M campaign and
on a 1,000-message campaign in the same daemon: O(1) means the two cost the same.
"""

from __future__ import annotations

import gc
import os
import time

from bench.acks import ack_all
from bench.common import Row, api, create_campaign, daemon, median, rss_bytes

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "1000000"))


def timed_reads(url: str, uuid: str, count: int = 300) -> float:
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        api(f"{url}/api/campaigns/{uuid}")
        times.append(time.perf_counter() - t0)
    return median(times)


def in_process_stats_cost() -> tuple[float, float]:
    """Ledger.statistics() at 10k and at 1M messages, in this process (no HTTP)."""
    from domain.ledger import Ledger
    from domain.status import Level

    costs = []
    for n in (10_000, MESSAGES):
        ledger = Ledger()
        ledger._grow(n, ledger.tick(1.7e9))
        for row in range(0, n, max(1, n // 1000)):
            ledger.apply(row, Level.READ, False, 1.7e9 + row % 300, None)
        t0 = time.perf_counter()
        for _ in range(2000):
            ledger.statistics()
        costs.append((time.perf_counter() - t0) / 2000)
        del ledger
        gc.collect()
    return costs[0], costs[1]


def run() -> list[Row]:
    with daemon(**{"store.checkpoint_interval": 2.0}) as d:
        pid = d.proc.pid
        small = create_campaign(d.url, 1000, prefix="S")
        time.sleep(1)
        before = rss_bytes(pid)
        t0 = time.time()
        uuid = create_campaign(d.url, MESSAGES, prefix="wamid.B")
        registered = time.time() - t0
        t0 = time.time()
        ack_all(d.url, MESSAGES, "wamid.B", ("sent", "delivered", "read"))
        acked = time.time() - t0
        stats = api(f"{d.url}/api/campaigns/{uuid}")["campaign"]["statistics"]
        assert stats["total_read_count"] == MESSAGES, stats
        api(f"{d.url}/api/campaigns/{uuid}/messages?limit=1")  # forces a checkpoint
        time.sleep(3)
        after = rss_bytes(pid)
        big_read = timed_reads(d.url, uuid)
        small_read = timed_reads(d.url, small)
    per_message = (after - before) / MESSAGES
    small_cost, big_cost = in_process_stats_cost()
    return [
        Row(f"memory per tracked message ({MESSAGES:,} messages, all read)",
            f"{per_message:.0f} bytes", "<= 150 bytes", per_message <= 150,
            {"rss_before": before, "rss_after": after, "register_s": registered,
             "ack_3x_s": acked}),
        Row("statistics read, 1M vs 1k campaign (GET /api/campaigns/{uuid})",
            f"{big_read * 1e3:.2f} ms vs {small_read * 1e3:.2f} ms "
            f"(x{big_read / small_read:.2f})", "O(1): same cost",
            big_read / small_read < 1.5),
        Row("  ... Ledger.statistics() in process, 1M vs 10k",
            f"{big_cost * 1e6:.0f} us vs {small_cost * 1e6:.0f} us", "O(1)",
            big_cost / small_cost < 1.5),
    ]
