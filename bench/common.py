"""Plumbing shared by the benchmarks: daemons as real processes, wrk, checks, results.

Every row measures work that changes state (bench/ladder.py: each request raises
messages one level, as real traffic does), checks afterwards that the daemon holds
exactly what was sent (`check_counters`, the events metric), fails loudly on any
non-2xx answer or socket error (`wrk`), and reports medians of alternating rounds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from store.aggregates import WAITING_SQL  # noqa: E402
from tests.proc import DaemonProcess, write_config  # noqa: E402
from tests.proc import api as process_api  # noqa: E402

WRK_CONNECTIONS = 32  # SPEC 4: wrk, 1 thread, 32 connections


class BenchError(RuntimeError):
    """The row measured something other than what it claims (a non-2xx answer, a
    counter that does not match what was sent, a rate that was not reached)."""


@dataclass
class Row:
    """One line of the results table."""

    name: str
    figure: str
    bar: str
    holds: bool | None  # None: informational
    details: dict[str, Any] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def api(url: str, method: str = "GET", doc: Any = None, timeout: float = 120) -> Any:
    """tests/proc.py's call with the bench's longer timeout (big campaigns)."""
    return process_api(url, method, doc, timeout)


def post_raw(url: str, body: bytes, headers: dict[str, str] | None = None,
             timeout: float = 120) -> Any:
    """POST a body; raise BenchError on anything but 2xx."""
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise BenchError(f"POST {url} answered {exc.code}: {exc.read()[:300]!r}") from exc


class Daemon:
    """A daemon process on a fresh SQLite file (see `daemon`)."""

    def __init__(self, proc: DaemonProcess, folder: Path) -> None:
        self.proc = proc
        self.folder = folder
        self.url = proc.url
        self.db_path = folder / "campaignd.sqlite3"

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    def flush(self, uuid: str) -> float:
        """Run a checkpoint now (the rows API takes one first); its duration in seconds."""
        t0 = time.perf_counter()
        api(f"{self.url}/api/campaigns/{uuid}/messages?limit=1")
        return time.perf_counter() - t0

    def metrics(self) -> dict[str, float]:
        """Prometheus samples by name + labels, e.g.
        'campaignd_events_ingested_total{outcome="applied",source="webjs"}'."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=60) as resp:
            text = resp.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def events(self, source: str, outcome: str) -> int:
        return int(self.metrics().get(
            f'campaignd_events_ingested_total{{outcome="{outcome}",source="{source}"}}', 0))

    def statistics(self, uuid: str) -> dict[str, Any]:
        return api(f"{self.url}/api/campaigns/{uuid}")["campaign"]["statistics"]

    def stop(self) -> None:
        if self.proc.proc.poll() is None:
            code = self.proc.terminate(60)
            if code != 0:
                raise BenchError(f"the daemon exited {code} on SIGTERM")

    def count(self, sql: str) -> int:
        """One number from the daemon's database, read beside it (WAL)."""
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            return int(db.execute(sql).fetchone()[0])
        finally:
            db.close()

    def analytics_settled(self, timeout: float = 600) -> float:
        """Wait until the analytics have recounted every marked row (store/insights.py);
        the seconds it took. Registration marks every row it writes: a row waits for
        that before measuring ingest, and reports how far the recount lags after it."""
        t0 = time.perf_counter()
        while self.count(WAITING_SQL):  # marked rows, or credits not yet recounted
            if time.perf_counter() - t0 > timeout:
                raise BenchError(f"the analytics still recount after {timeout:.0f} s")
            time.sleep(0.1)
        return time.perf_counter() - t0

    def levels(self) -> dict[str, dict[int, int]]:
        """After `stop`: {uuid: {level: messages}} as stored (every row written by the
        final checkpoint)."""
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            out: dict[str, dict[int, int]] = {}
            for uuid, level, count in db.execute(
                    "SELECT c.uuid, m.level, COUNT(*) FROM messages m JOIN campaigns c"
                    " ON c.no = m.campaign_no GROUP BY c.uuid, m.level"):
                out.setdefault(uuid, {})[level] = count
            return out
        finally:
            db.close()


@contextmanager
def daemon(**settings: Any) -> Iterator[Daemon]:
    """A daemon process on a fresh SQLite file; stopped (SIGTERM) afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="campaignd-bench-"))
    config = write_config(folder, **{"log.level": "warning", **settings})
    proc = DaemonProcess(config)
    try:
        yield Daemon(proc, folder)
    finally:
        if proc.proc.poll() is None:
            proc.terminate(60)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def process(args: list[str], ready_port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", ready_port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def bare_server() -> Iterator[str]:
    """The SPEC's baseline (bench/bare_server.py, uvloop + orjson like the daemon)."""
    port = free_port()
    with process([sys.executable, "-m", "bench.bare_server", str(port)], port):
        yield f"http://127.0.0.1:{port}"


def create_campaign(url: str, messages: int, prefix: str = "M", chunk: int = 10_000,
                    first: int = 0, recipient_base: int = 0) -> str:
    """A tracking campaign with messages `prefix{first}`..`prefix{first + messages - 1}`,
    recipients 62 + ten digits (distinct numbers)."""
    uuid = api(f"{url}/api/campaigns", "POST", {"workspace_id": 1, "name": "bench"})[
        "campaign"]["uuid"]
    for start in range(first, first + messages, chunk):
        answer = api(f"{url}/api/campaigns/{uuid}/messages", "POST", {"messages": [
            {"recipient": f"62{recipient_base + i:010d}", "message_id": f"{prefix}{i}"}
            for i in range(start, min(first + messages, start + chunk))]})
        if answer.get("registered") != min(first + messages, start + chunk) - start:
            raise BenchError(f"registration answered {answer}")
    return uuid


@dataclass
class WrkResult:
    requests: int  # answered (any status)
    seconds: float
    non_2xx: int
    socket_errors: dict[str, int]
    generated: int  # requests the script made (some may have been in flight at the end)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


WRK_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(m?s|m)\b")
WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")

# Appended to every wrk script: the request function counts `generated` in the thread's
# state; done() prints it so the next round can go on where this one stopped.
LUA_REPORT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("GENERATED %d\\n", t:get("generated")))
  end
end
"""


def wrk(url: str, script: Path, seconds: float = 5,
        connections: int = WRK_CONNECTIONS) -> WrkResult:
    """Run wrk (1 thread, like the SPEC's baseline); raise BenchError on any non-2xx
    answer or socket error: the row would measure refusals, not work."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: run `make bench` (it installs wrk)")
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s",
         str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 120,
    ).stdout
    match = WRK_REQUESTS.search(out)
    if not match:
        raise BenchError(f"cannot read wrk's output:\n{out}")
    unit = {"s": 1.0, "ms": 1e-3, "m": 60.0}[match.group(3)]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = WRK_SOCKET.search(out)
    errors = dict(zip(("connect", "read", "write", "timeout"),
                      map(int, sock.groups()), strict=True)) if sock else {}
    generated = re.search(r"GENERATED (\d+)", out)
    result = WrkResult(int(match.group(1)), float(match.group(2)) * unit,
                       int(non_2xx.group(1)) if non_2xx else 0, errors,
                       int(generated.group(1)) if generated else -1)
    if result.non_2xx or any(errors.values()):
        raise BenchError(f"{url}: {result.non_2xx} non-2xx answers, socket errors {errors}"
                         f"\n{out}")
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def scratch(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"campaignd-bench-{prefix}-"))


def machine() -> dict[str, Any]:
    """Facts for the results: CPU, cores, load, Python, SQLite."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "load": os.getloadavg(),
            "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version}
