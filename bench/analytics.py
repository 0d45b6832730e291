"""SPEC 4 analytics row: a workspace with 200 campaigns, 2,000,000 messages and 200,000
distinct numbers; every analytics endpoint <= 200 ms (p95) while ingest runs.

1. The workspace is written straight into SQLite in bulk (campaigns, message rows over
   180 days with realistic outcomes, replies and stops credited to them, the
   suppression list): sending 2 M messages through a daemon would take most of an hour.
   Its aggregates are then counted by migration 0009's own code (store/aggregates.py
   `count_all`), exactly as an upgraded database is; how long that took is reported,
   and whether the contacts' tier counters (kept by the same code) equal a recount.
2. A real daemon process is started on the file. A new campaign of 100,000 messages is
   registered and a load generator (bench/load.py) posts Cloud API statuses for it
   (delivered, then read: the reads move contacts between tiers) at INGEST_RATE per
   second for the whole measurement: every checkpoint recounts the rows it changed into
   the aggregates meanwhile. The row holds only if the load was still running when the
   last request was answered (`ingest_ran_throughout`).
3. Each endpoint is asked ROUNDS times, round robin, one request at a time; p50 / p95 of
   the wall time per request (HTTP included) are reported.

`python -m bench analytics` (about 5 to 7 minutes; the database is ~0.6 GB in /tmp). With
ANALYTICS_BENCH_DB=path a database built before is copied instead of built (not a
CAMPAIGND_ variable: the daemon would read it as a configuration key).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from bench.common import REPO, Row, api
from tests.proc import DaemonProcess, write_config

CAMPAIGNS = 200
PER_CAMPAIGN = 10_000
NUMBERS = 200_000
WORKSPACE = 1
INGEST_MESSAGES = 100_000  # delivered, then read: 100 s of statuses at INGEST_RATE
INGEST_RATE = 2_000  # statuses per second while measuring
ROUNDS = 60
BAR_MS = 200.0
DAY = 86400.0


def _number(index: int) -> str:
    return f"628{index:09d}"


def build(db: Path, seed: int = 12) -> dict[str, Any]:
    """The workspace, written directly; returns what was made and how long it took."""
    from domain.phones import number_key
    from store.db import Store

    started = time.perf_counter()
    asyncio.run(_open_close(Store(db)))  # the schema and every migration, on an empty file
    rng = random.Random(seed)
    keys = [number_key(_number(i)) for i in range(NUMBERS)]
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    now = time.time()
    inbound: list[tuple[Any, ...]] = []
    stops: list[tuple[Any, ...]] = []
    stopped: set[int] = set()
    for no in range(1, CAMPAIGNS + 1):
        # one campaign every 0.9 days over 180 days, at an hour between 07 and 21 (UTC+7)
        day = now - 180 * DAY + (no - 1) * 0.9 * DAY
        start = day - day % DAY + (rng.randint(0, 14)) * 3600.0
        counts = dict.fromkeys(("sent", "delivered", "read", "failed", "replied",
                                "opted_out"), 0)
        rows = []
        for row, index in enumerate(rng.sample(range(NUMBERS), PER_CAMPAIGN)):
            digits = _number(index)
            sent = start + row * 0.05 + rng.random()
            level, failed, code, category = 1, 0, None, None
            delivered = read = None
            if index % 97 == 0 or rng.random() < 0.02:  # bad numbers keep failing
                failed, code, category = 1, "131026", "not_on_whatsapp"
            elif rng.random() < 0.01:
                failed, code, category = 1, "131049", "limited_by_meta"
            elif rng.random() < 0.95:
                level, delivered = 3, sent + rng.uniform(1, 30)
                if rng.random() < 0.6:
                    level, read = 4, delivered + rng.lognormvariate(6, 1.5)
            cls = 6 if failed else level
            counts["failed" if failed else "sent"] += 1
            if level >= 3 and not failed:
                counts["delivered"] += 1
                counts["read"] += level >= 4
                if rng.random() < 0.08:
                    at = (read or delivered or sent) + rng.lognormvariate(5, 1.5)
                    stop = rng.random() < 0.04 and index not in stopped
                    fact = f"wamid.R{no}x{row}"
                    inbound.append((fact, "cloud", WORKSPACE, digits, at, None, int(stop), 0,
                                    None, None, None, None, no, row, "window", at))
                    counts["replied" if not stop else "opted_out"] += 1
                    if stop:
                        stopped.add(index)
                        stops.append((fact, WORKSPACE, digits, at, 1, "STOP", "cloud"))
            rows.append((no, row, digits, level, failed, cls, code and f"{code}: failed",
                         sent - 1, sent, sent if level >= 2 else None, delivered, read,
                         sent + 2 if failed else None, code, category,
                         sent + 2 if failed else None, keys[index]))
        conn.executemany(
            "INSERT INTO messages (campaign_no, row, recipient, level, failed, cls, reason,"
            " ts_queued, ts_pending, ts_sent, ts_delivered, ts_read, ts_failed, failure_code,"
            " failure_category, failure_at, nh) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows)
        stats = {"total_message_count": PER_CAMPAIGN, "total_sent_count": counts["sent"],
                 "total_delivered_count": counts["delivered"],
                 "total_read_count": counts["read"], "total_failed_count": counts["failed"],
                 "total_replied_count": counts["replied"],
                 "total_opted_out_count": counts["opted_out"], "total_queued_count": 0}
        conn.execute("INSERT INTO campaigns (no, uuid, workspace_id, name, status, message,"
                     " gateway, rate, created_at, updated_at, statistics)"
                     " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                     (no, f"c{no:03d}", WORKSPACE, f"Campaign {no}", "completed", "Halo",
                      "simulator", 20.0, start, start, orjson.dumps(stats).decode()))
    conn.executemany("INSERT INTO inbound (id, source, workspace_id, number, at, quoted_id,"
                     " kind, via, button_payload, button_title, body, reason, campaign_no,"
                     " row, how, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     inbound)
    conn.executemany("INSERT INTO suppressions (fact_id, workspace_id, number, at, kind,"
                     " reason, source) VALUES (?,?,?,?,?,?,?)", stops)
    conn.execute("COMMIT")
    conn.close()
    written = time.perf_counter() - started
    counted_started = time.perf_counter()
    counted = asyncio.run(_count(db))
    return {"rows_written_s": round(written, 1), "rows": CAMPAIGNS * PER_CAMPAIGN,
            "replies_and_stops": len(inbound), "suppressed": len(stops),
            "counted_rows": counted,
            "count_all_s": round(time.perf_counter() - counted_started, 1),
            **_tier_counters(db)}


def _tier_counters(db: Path) -> dict[str, Any]:
    """How many tier counters the contacts needed, and whether they equal a count of
    the contacts table (store/tier_counts.py REBUILD's query, compared both ways)."""
    from store.tier_counts import DAY_SQL

    recount = (f"SELECT workspace_id, unreachable, {DAY_SQL}, delivered, COUNT(*)"
               " FROM contacts GROUP BY 1, 2, 3, 4")
    kept = "SELECT workspace_id, unreachable, engaged_day, delivered, n FROM contact_tiers"
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT COUNT(*) FROM contact_tiers").fetchone()[0]
        differ = conn.execute(f"SELECT COUNT(*) FROM ({recount} EXCEPT {kept})").fetchone()[0] \
            + conn.execute(f"SELECT COUNT(*) FROM ({kept} EXCEPT {recount})").fetchone()[0]
    finally:
        conn.close()
    return {"tier_counter_rows": rows, "tier_counters_equal_recount": differ == 0}


async def _open_close(store: Any) -> None:
    await store.open()
    await store.close()


async def _count(db: Path) -> int:
    """The backfill's counting, as one transaction on the file (in a thread: the
    aggregates' steps are sync functions of a sqlite3 connection)."""
    from store.aggregates import count_all

    def count() -> int:
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("BEGIN IMMEDIATE")
            counted = count_all(conn)
            conn.execute("COMMIT")
            return counted
        finally:
            conn.close()

    return await asyncio.to_thread(count)


def _active_campaigns(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("campaignd_active_campaign_actors "):
                return float(line.split()[1])
    return 0.0


def _settle(url: str, quiet: float = 5.0, limit: float = 240.0) -> dict[str, float]:
    """Wait until the start-up work is over. At start the reply attributor restores the
    replies still inside their window and asks every campaign sent to those numbers for
    its rows, which loads them (here most of the 200): not the analytics' cost, and not
    what this row measures. Done when no campaign actor started for `quiet` seconds."""
    started = time.perf_counter()
    last, since = -1.0, time.perf_counter()
    while time.perf_counter() - started < limit:
        active = _active_campaigns(url)
        if active != last:
            last, since = active, time.perf_counter()
        elif time.perf_counter() - since >= quiet:
            break
        time.sleep(0.5)
    return {"campaign_actors_loaded": last,
            "settle_s": round(time.perf_counter() - started, 1)}


def _get(url: str) -> float:
    """Seconds one GET took, the whole answer read."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url} answered {resp.status}")
    return time.perf_counter() - started


def _post(url: str, doc: Any) -> float:
    started = time.perf_counter()
    api(url, "POST", doc)
    return time.perf_counter() - started


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def measure(url: str) -> dict[str, dict[str, float]]:
    base = f"{url}/api/workspaces/{WORKSPACE}"
    five = ",".join(f"c{no:03d}" for no in (196, 197, 198, 199, 200))
    middle = _number(NUMBERS // 2)
    gets = {
        "trends (90 days)": f"{base}/insights/trends",
        "trends (365 days, all 200 campaigns)": f"{base}/insights/trends?days=365",
        "compare (5 campaigns)": f"{base}/insights/compare?campaigns={five}",
        "best-time (90 days)": f"{base}/insights/best-time",
        "best-time (365 days)": f"{base}/insights/best-time?days=365",
        "contacts (first page + tier counts)": f"{base}/contacts",
        "contacts ?tier=unreachable": f"{base}/contacts?tier=unreachable",
        "contacts ?tier=engaged (first page)": f"{base}/contacts?tier=engaged",
        "contacts ?tier=new&cursor= (a later page)": f"{base}/contacts?tier=new&cursor={middle}",
        # a search is the start of the number: a full one typed (100 match), the first
        # digits of many (100,000 match: too many to count by tier), the country code
        # (every contact: the counters)
        "contacts ?search=+62 800-0042-4 (100 match)":
            f"{base}/contacts?search=%2B62%20800-0042-4",
        "contacts ?search=6280001 (100,000 match)": f"{base}/contacts?search=6280001",
        "contacts ?search=62 (all match)": f"{base}/contacts?search=62",
    }
    recipients = [_number(i) for i in range(0, NUMBERS, NUMBERS // 1000)]
    preview = {"recipients": recipients,
               "audience": {"exclude_tiers": ["opted_out", "unreachable", "unengaged"]}}
    times: dict[str, list[float]] = {name: [] for name in [*gets, "audience preview (1,000)"]}
    for target in gets.values():  # warm up (first loads, caches)
        _get(target)
    for _ in range(ROUNDS):
        for name, target in gets.items():
            times[name].append(_get(target))
        times["audience preview (1,000)"].append(_post(f"{base}/audience/preview", preview))
    return {name: {"p50_ms": round(_pct(v, 0.5), 1), "p95_ms": round(_pct(v, 0.95), 1),
                   "max_ms": round(max(v) * 1000, 1), "n": len(v)}
            for name, v in times.items()}


def run() -> list[Row]:
    folder = Path(tempfile.mkdtemp(prefix="campaignd-bench-analytics-"))
    try:
        db = folder / "campaignd.sqlite3"
        reuse = os.environ.get("ANALYTICS_BENCH_DB")  # a build kept from before
        if reuse:
            shutil.copyfile(reuse, db)
            built = {"reused": reuse}
        else:
            built = build(db)
        print(f"    built: {built}", flush=True)
        config = write_config(folder, **{"log.level": "warning"})
        started = time.perf_counter()
        d = DaemonProcess(config)
        listening = time.perf_counter() - started
        try:
            settled = _settle(d.url)
            uuid = api(f"{d.url}/api/campaigns", "POST", {
                "workspace_id": WORKSPACE, "name": "live", "uuid": "live"})["campaign"]["uuid"]
            for start in range(0, INGEST_MESSAGES, 10_000):  # 100,000: 10 requests
                api(f"{d.url}/api/campaigns/{uuid}/messages", "POST", {"messages": [
                    {"recipient": _number(i % NUMBERS), "message_id": f"wamid.L{i}"}
                    for i in range(start, start + 10_000)]})
            seconds = ROUNDS * 2.0 + 60
            load = subprocess.Popen(
                [sys.executable, "-m", "bench.load", d.url, "wamid.L", str(INGEST_MESSAGES),
                 str(INGEST_RATE), str(seconds), "delivered"],
                cwd=REPO, stdout=subprocess.PIPE, text=True)
            time.sleep(3)  # the load is under way before the first request
            results = measure(d.url)
            ingest_ran = load.poll() is None  # the ladder had not run out, nor the load died
            load.terminate()  # bench/load.py stops posting and prints what it achieved
            out, _ = load.communicate(timeout=60)
            achieved = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
            stats = api(f"{d.url}/api/campaigns/{uuid}")["campaign"]["statistics"]
        finally:
            if d.proc.poll() is None:
                d.terminate(60)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    width = max(len(n) for n in results)
    for name, r in results.items():
        print(f"    {name.ljust(width)}  p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms"
              f"  max {r['max_ms']:7.1f} ms", flush=True)
    bar = {n: r for n, r in results.items() if not n.startswith("audience")}
    worst_name, worst = max(bar.items(), key=lambda kv: kv[1]["p95_ms"])
    p50 = statistics.median(r["p50_ms"] for r in bar.values())
    details = {"built": built, "listening_s": round(listening, 1), "start_up": settled,
               "ingest_ran_throughout": ingest_ran,
               "ingest_delivered_during_run": stats["total_delivered_count"],
               "ingest_read_during_run": stats["total_read_count"],
               "ingest_rate_asked": INGEST_RATE,
               "ingest_rate_achieved": round(achieved.get("achieved_rate", 0.0)),
               "ingest_refused": achieved.get("refused"), "endpoints": results,
               "load_output": out}
    ingest_ok = ingest_ran and achieved.get("refused") == 0
    return [Row("analytics: 200 campaigns, 2 M messages, 200 k numbers, under ingest",
                f"worst p95 {worst['p95_ms']:.0f} ms ({worst_name}); median p50 {p50:.0f} ms;"
                f" ingest {details['ingest_rate_achieved']:,} statuses/s achieved"
                f" ({INGEST_RATE:,} asked)"
                + ("" if ingest_ran else "; ingest STOPPED before the last request")
                + ("" if achieved.get("refused") == 0 else
                   f"; ingest REFUSED {achieved.get('refused')} requests"),
                f"every endpoint p95 <= {BAR_MS:.0f} ms", worst["p95_ms"] <= BAR_MS and ingest_ok,
                details)]


if __name__ == "__main__":  # pragma: no cover
    for row in run():
        print(row)
