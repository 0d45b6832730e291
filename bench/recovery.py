"""Row 6: kill -9 with 1,000,000 messages and 3,000,000 journaled events, restart.

Every message is sent, delivered and read through Cloud API webhooks (3M events, all
journaled before their 2xx), the daemon is SIGKILLed right after the last 2xx, and a
new one is started on the same files. Measured: time until it takes webhooks (a status
posted is answered 2xx, so committed) and until the API returns the exact counters.
Run twice: with the default checkpoint interval (the journal holds what came since the
last checkpoint) and with checkpoints off (all 3M events are replayed from the journal).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.acks import ack_all, cloud_body
from bench.common import BenchError, Row, api, create_campaign
from tests.proc import DaemonProcess, write_config

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "1000000"))
# BENCH_RECOVERY_OFF=0: only the default form (the bar), not the informational
# checkpoints-off one (A/B pairs of the bar in half the time).
WITH_OFF = os.environ.get("BENCH_RECOVERY_OFF", "1") != "0"


def one(checkpoint_interval: float) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="campaignd-bench-recovery-"))
    try:
        config = write_config(folder, **{"log.level": "info",  # serve.accepting_webhooks
                                         "store.checkpoint_interval": checkpoint_interval})
        first = DaemonProcess(config)
        try:
            uuid = create_campaign(first.url, MESSAGES, prefix="wamid.R")
            ack_all(first.url, MESSAGES, "wamid.R", ("sent", "delivered", "read"))
        finally:
            first.kill()  # the crash under test; also when loading failed
        db = sqlite3.connect(folder / "campaignd.sqlite3")
        pending = sum(len(b) for (b,) in db.execute("SELECT events FROM journal"))
        rows = db.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        db.close()
        t0 = time.perf_counter()
        second = DaemonProcess(config, wait=False)
        try:
            # Listening: a webhook is committed and answered 2xx (a status again for a
            # message it already has: a duplicate, which changes nothing).
            url = second.accepting_url(600)
            probe = cloud_body(["wamid.R0"], "read", 1750000002)
            while True:
                try:
                    request = urllib.request.Request(
                        f"{url}/webhooks/cloud", data=probe,
                        headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(request, timeout=60) as resp:
                        if resp.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError):
                    if time.perf_counter() - t0 > 600:
                        raise
                time.sleep(0.01)
            listening = time.perf_counter() - t0
            second.wait_ready(600)
            while True:  # 503 + Retry-After while the campaign is still being loaded
                try:
                    stats = api(f"{second.url}/api/campaigns/{uuid}", timeout=600)[
                        "campaign"]["statistics"]
                    break
                except urllib.error.HTTPError as exc:
                    if exc.code != 503 or time.perf_counter() - t0 > 600:
                        raise
                    time.sleep(0.05)
            exact_after = time.perf_counter() - t0
        finally:
            if second.proc.poll() is None:
                second.terminate(60)
        exact = (stats["total_read_count"] == MESSAGES and
                 stats["total_delivered_count"] == MESSAGES and
                 stats["total_message_count"] == MESSAGES)
        return {"listening_s": listening, "exact_s": exact_after, "exact": exact,
                "journal_rows": rows, "journal_bytes": pending,
                **restart_facts(folder / "daemon.log")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def restart_facts(log: Path) -> dict[str, float]:
    """What the restarted daemon says it did (its last `runtime.started`): the events it
    replayed, from which journal seq, and how many campaigns it loaded from recovery
    images (store/image.py)."""
    started = [json.loads(line) for line in log.read_text().splitlines()
               if '"runtime.started"' in line]
    if not started:
        return {}
    last = started[-1]
    return {k: last[k] for k in ("replayed_events", "replayed_from", "images", "seconds")
            if k in last}


def run() -> list[Row]:
    rows = []
    forms = [("default checkpoints (2 s)", 2.0, True),
             ("checkpoints off: every event replayed", 3600.0, None)]
    for label, interval, bar in forms if WITH_OFF else forms[:1]:
        load_start = os.getloadavg()[0]
        r = one(interval)
        r.update(load_start=load_start, load_end=os.getloadavg()[0])
        holds = r["exact"] and r["listening_s"] <= 1.0 and r["exact_s"] <= 2.0
        if not r["exact"]:
            raise BenchError(f"recovery gave wrong counters: {r}")
        rows.append(Row(
            f"recovery after kill -9, {MESSAGES:,} messages / {3 * MESSAGES:,} events, {label}",
            f"listening {r['listening_s']:.2f} s, exact counters {r['exact_s']:.2f} s"
            f" (journal {r['journal_rows']} rows, {r.get('replayed_events', -1):,} events"
            f" replayed from seq {r.get('replayed_from', '?')}; load"
            f" {r['load_start']:.1f} -> {r['load_end']:.1f})",
            "listening <= 1 s, exact <= 2 s" if bar else "(informational)",
            holds if bar else None, r))
    return rows
