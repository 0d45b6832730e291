"""Plumbing shared by the benchmarks: daemons as real processes, wrk, RSS, results."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.proc import DaemonProcess, write_config  # noqa: E402


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
    data = json.dumps(doc).encode() if doc is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


@contextmanager
def daemon(**settings: Any) -> Iterator[DaemonProcess]:
    """A daemon process on a fresh SQLite file; stopped (SIGTERM) afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="campaignd-bench-"))
    config = write_config(folder, **{"log.level": "warning", **settings})
    proc = DaemonProcess(config)
    try:
        yield proc
    finally:
        if proc.proc.poll() is None:
            proc.terminate(30)
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


def create_campaign(url: str, messages: int, prefix: str = "M", chunk: int = 10_000) -> str:
    uuid = api(f"{url}/api/campaigns", "POST", {"workspace_id": 1, "name": "bench"})[
        "campaign"]["uuid"]
    for start in range(0, messages, chunk):
        api(f"{url}/api/campaigns/{uuid}/messages", "POST", {"messages": [
            {"recipient": f"62{i:010d}", "message_id": f"{prefix}{i}"}
            for i in range(start, min(messages, start + chunk))]})
    return uuid


WRK_RESULT = re.compile(r"Requests/sec:\s+([\d.]+)")


def wrk(url: str, script: Path, seconds: float = 5, connections: int = 32) -> dict[str, float]:
    """Run wrk (1 thread, like the SPEC's baseline) and return requests/s and errors."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: run `make bench` (it installs wrk)")
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    match = WRK_RESULT.search(out)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": float(match.group(1)) if match else 0.0,
            "non_2xx": float(errors.group(1)) if errors else 0.0}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
