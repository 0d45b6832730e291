"""`python -m bench [NAME ...]`: run the benchmarks and print one table."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

from bench.common import Row, machine

ROWS = ["webhook", "cloud_batch", "inbound_batch", "latency", "fanout", "big_campaign",
        "recovery", "seed", "analytics"]
# Rows loaded by wrk (bench/common.py `wrk`): checked before any daemon is set up.
WRK_ROWS = {"webhook", "cloud_batch", "inbound_batch", "seed"}


def main(argv: list[str]) -> int:
    names = argv or ROWS
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ROWS)}")
        return 2
    if WRK_ROWS.intersection(names) and shutil.which("wrk") is None:
        print("wrk is not installed: run `make bench` (or scripts/test-deps.sh bench), which"
              f" installs it; rows that need it: {', '.join(sorted(WRK_ROWS & set(names)))}")
        return 2
    rows: list[Row] = []
    started = time.time()
    facts = machine()
    print(f"machine: {facts}", flush=True)
    for name in names:
        print(f"--- {name} ...", flush=True)
        t0 = time.time()
        try:
            module = importlib.import_module(f"bench.{name}")
            got = module.run()
        except Exception as exc:
            traceback.print_exc()
            got = [Row(name, f"did not run: {exc}", "", False)]
        for row in got:
            print(f"    {row.name}: {row.figure}", flush=True)
        print(f"    ({time.time() - t0:.0f} s)", flush=True)
        rows.extend(got)
    width = max(len(r.name) for r in rows)
    fig = max(len(r.figure) for r in rows)
    print()
    print(f"{'what'.ljust(width)}  {'figure'.ljust(fig)}  {'bar':28}  holds")
    for r in rows:
        holds = "-" if r.holds is None else ("yes" if r.holds else "NO")
        print(f"{r.name.ljust(width)}  {r.figure.ljust(fig)}  {r.bar:28}  {holds}")
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{time.time() - started:.0f} s in all")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "last.json").write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": facts,
         "load_after": machine()["load"], "seconds": round(time.time() - started),
         "rows": [r.__dict__ for r in rows]}, indent=2, default=str))
    return 0 if all(r.holds is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
