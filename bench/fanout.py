"""Row 4: 2,000 WebSocket subscribers of one campaign under 2,000 ACKs/s.

Subscribers are raw WebSocket readers in a separate process (bench.subscribers, on
uvloop) that keep only their last statistics frames and when each arrived. A load process posts
2,000 ACKs/s for a while; after its last 2xx we wait until every subscriber holds the
exact final counters and report how long after the last 2xx the slowest one received
them (the frame's arrival, bench/subscribers.py; `told_s` in the details is the older
reading, dated when the subscriber was told the final count). "Exact" is
what was posted, not what the daemon says: every ACK delivers a message of its own, so
the final delivered count must equal the ACKs answered 2xx (and the daemon must agree).
The load's achieved rate is checked. Memory per connection is the daemon's RSS growth
from opening the connections, divided by them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bench.common import REPO, BenchError, Row, create_campaign, daemon, rss_bytes

SUBSCRIBERS = 2000
RATE = 2000
SECONDS = 10
MESSAGES = RATE * (SECONDS + 1)  # every ACK delivers a message of its own


def run() -> list[Row]:
    with daemon() as d:
        uuid = create_campaign(d.url, MESSAGES, prefix="wamid.F")
        d.analytics_settled()  # the recount of the registered rows is not measured
        time.sleep(2)
        before = rss_bytes(d.pid)
        subs = subprocess.Popen(
            [sys.executable, "-m", "bench.subscribers", d.url, uuid, str(SUBSCRIBERS)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert subs.stdout is not None and subs.stdin is not None
        ready = json.loads(subs.stdout.readline())  # all connected and subscribed
        time.sleep(2)
        after_connect = rss_bytes(d.pid)
        load = subprocess.run(
            [sys.executable, "-m", "bench.load", d.url, "wamid.F", str(MESSAGES), str(RATE),
             str(SECONDS), "delivered"], cwd=REPO, capture_output=True, text=True, check=True)
        posted = json.loads(load.stdout)
        if posted["refused"] or posted["acked"] != posted["sent"]:
            raise BenchError(f"the load was not all answered 2xx: {posted}")
        if posted["achieved_rate"] < 0.95 * RATE:
            raise BenchError(f"the load reached {posted['achieved_rate']:,.0f} ACKs/s")
        final = d.statistics(uuid)
        if final["total_delivered_count"] != posted["acked"]:
            raise BenchError(f"{posted['acked']} ACKs posted, the daemon counts"
                             f" {final['total_delivered_count']} delivered")
        subs.stdin.write(json.dumps({"delivered": posted["acked"],
                                     "last_ack": posted["last_ack"]}) + "\n")
        subs.stdin.flush()
        result = json.loads(subs.stdout.readline())
        subs.wait(60)
    per_connection = (after_connect - before) / SUBSCRIBERS
    holds = result["all_exact"] and result["slowest_s"] <= 1.0
    return [
        Row(f"fan-out: {SUBSCRIBERS:,} subscribers, {RATE:,} ACKs/s, final counters at all",
            f"{result['slowest_s']:.2f} s after the last ACK "
            f"({result['exact']}/{SUBSCRIBERS} exact, {ready['connected']} connected)",
            "<= 1 s, all exact", holds,
            {**result, **posted}),
        Row("  ... memory per WebSocket connection", f"{per_connection / 1024:.1f} KB",
            "<= 64 KB", per_connection <= 64 * 1024,
            {"rss_before": before, "rss_connected": after_connect}),
    ]
