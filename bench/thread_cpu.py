"""A row's rounds with the daemon's CPU per item by thread: `python -m bench.thread_cpu
[ROW]` (default inbound_batch; rows that use bench/rounds.py).

Runs the row as `python -m bench ROW` does and, for each daemon round, reads every
daemon thread's CPU time from /proc/<pid>/task/*/stat over the round's timed part
(wrk's start to the end of the round's first checkpoint, or of the target's
`after_checkpoint` wait when it has one: for replies that includes the deciding after
wrk; for bench/inbound_batch.py the analytics' recount of the round's work), divided
by the items the round sent. Prints one JSON line per round, the row, the load average
at the start and the end, and the daemon's thread names (`py-spy dump`, when py-spy is
on PATH or in the venv). Used for docs/BENCHMARKS.md, "Wave 7 (branch inbound80)"; A/B:
run it from each commit's directory, alternately.
"""

from __future__ import annotations

import glob
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench.common as common
import bench.rounds as rounds

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, float]:
    """Seconds of CPU (user + system) per thread id."""
    out = {}
    for stat in glob.glob(f"/proc/{pid}/task/*/stat"):
        try:
            with open(stat) as f:
                text = f.read()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2:].split()
        out[int(stat.split("/")[4])] = (int(rest[11]) + int(rest[12])) / TICK
    return out


def thread_names(pid: int) -> str:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return ""
    done = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True,
                          timeout=30, check=False)
    return "\n".join(line for line in done.stdout.splitlines() if line.startswith("Thread "))


def main() -> None:
    row = sys.argv[1] if len(sys.argv) > 1 else "inbound_batch"
    state: dict[str, Any] = {"pid": None, "names": ""}
    original = rounds.Target.round

    def timed_round(target: rounds.Target, seconds: float) -> float:
        if target.daemon is None:
            return original(target, seconds)
        # this target's own daemon (a row may run several: webhook runs three)
        pid = target.daemon.proc.proc.pid
        if state["pid"] is None:
            state["pid"] = pid
            state["names"] = thread_names(pid)
        # at the end of the round's first checkpoint; at the end of its timed part
        before, checkpointed, mark = thread_cpu(pid), {}, {}
        flush = common.Daemon.flush

        def marked_flush(d: common.Daemon, uuid: str) -> float:
            took = flush(d, uuid)
            if not checkpointed:
                checkpointed.update(thread_cpu(pid))
                if target.after_checkpoint is None:  # it ends the round's timed part
                    mark.update(checkpointed)
            return took

        waited = target.after_checkpoint

        def marked_wait(d: common.Daemon) -> None:
            assert waited is not None
            waited(d)
            mark.update(thread_cpu(pid))  # the wait ends the round's timed part

        start = target.position
        if waited is not None:
            target.after_checkpoint = marked_wait
        common.Daemon.flush = marked_flush  # type: ignore[method-assign]
        try:
            rate = original(target, seconds)
        finally:
            common.Daemon.flush = flush  # type: ignore[method-assign]
            target.after_checkpoint = waited
        items = max(1, (target.position - start) * target.items_per_request)
        per = {tid: (mark.get(tid, 0.0) - before.get(tid, 0.0)) * 1e6 / items for tid in mark}
        print(json.dumps({"name": target.name,
                          "items_per_s": round(rate * target.items_per_request),
                          "after_wrk_s": round(target.flushes[-1], 2), "items": items,
                          "cpu_us": {str(t): round(v, 1) for t, v in per.items() if v >= 0.05},
                          "all_us": round(sum(per.values()), 1),
                          # what the round cost up to its checkpoint (without the wait)
                          "to_checkpoint_all_us": round(sum(
                              checkpointed.get(t, 0.0) - before.get(t, 0.0)
                              for t in checkpointed) * 1e6 / items, 1),
                          "load": os.getloadavg()[0]}), flush=True)
        return rate

    rounds.Target.round = timed_round  # type: ignore[method-assign]
    print("load at start", os.getloadavg(), time.strftime("%H:%M:%S"), flush=True)
    for result in importlib.import_module(f"bench.{row}").run():
        print(result)
    print("load at end", os.getloadavg(), time.strftime("%H:%M:%S"))
    print(state["names"])


if __name__ == "__main__":
    main()
