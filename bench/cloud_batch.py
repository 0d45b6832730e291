"""Row 2: batched Cloud API webhooks, 100 statuses per request, durable: statuses/s, and
against the bare handler's requests/s x 100 in the same run.

Every status raises its message one level (bench/ladder.py: sent, delivered, read over
a million registered messages), so no status is a duplicate; each daemon round
includes the checkpoint of what it took; after the rounds the counters and the stored
levels must be exactly what was sent. Bare and daemon alternate; medians.
"""

from __future__ import annotations

import os
import shutil

from bench.common import BenchError, Row, bare_server, create_campaign, daemon, scratch
from bench.ladder import CloudLadder
from bench.rounds import Target, alternate

MESSAGES = int(os.environ.get("BENCH_CLOUD_MESSAGES", "1000000"))
PER_REQUEST = 100
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
PATH = "/webhooks/cloud"


def run() -> list[Row]:
    folder = scratch("cloud")
    ladder = CloudLadder(MESSAGES, per_request=PER_REQUEST)
    try:
        with bare_server() as bare_url, daemon() as d:
            uuid = create_campaign(d.url, MESSAGES, prefix="wamid.C")
            bare = Target("bare", bare_url, PATH, ladder, folder)
            ours = Target("daemon", d.url, PATH, ladder, folder, d, [uuid], source="cloud",
                          items_per_request=PER_REQUEST)
            alternate([bare, ours], ROUNDS, SECONDS)
            d.stop()
            stored = d.levels()[uuid]
            want = ladder.expected_levels(ours.position)[0]
            if stored != want:
                raise BenchError(f"stored levels {stored}, expected {want}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rate = ours.median * PER_REQUEST
    bare_items = bare.median * PER_REQUEST
    share = rate / bare_items
    return [Row("batched Cloud API webhooks (100 statuses/request, durable)",
                f"{rate:,.0f} statuses/s = {share:.2f} x bare {bare.median:,.0f} req/s x 100",
                ">= 150,000/s and >= 0.25 x bare", rate >= 150_000 and share >= 0.25,
                {"daemon_rps": ours.rates, "bare_rps": bare.rates,
                 "checkpoint_s": ours.flushes, **ours.details, "share": share})]
