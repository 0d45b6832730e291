"""One daemon per database (issue 15), with real processes: a second daemon on the same
SQLite file refuses to start and changes nothing; a port conflict opens nothing; after a
kill -9 the next daemon starts at once; stats / export / backup work beside a daemon;
the demo takes the lock of its own database."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import main
from tests.proc import REPO, DaemonProcess, write_config


def call(base: str, method: str, path: str, doc: Any = None) -> Any:
    data = json.dumps(doc).encode() if doc is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def campaignd(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGND_")}
    return subprocess.run([sys.executable, "-m", "daemon", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def ack(message_id: str, level: int) -> dict[str, Any]:
    return {"event": "message_status_updated",
            "data": {"message_id": message_id, "ack_level": level}}


def journal_rows(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT * FROM journal ORDER BY seq").fetchall()
    finally:
        conn.close()


def files_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file's (size, mtime in ns): what a start that changes nothing leaves alone."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def first(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A daemon with a campaign and ACKs; checkpoints rare, so the journal holds them."""
    config = write_config(tmp_path, **{"store.checkpoint_interval": 3600})
    daemon = DaemonProcess(config)
    try:
        call(daemon.url, "POST", "/api/campaigns",
             {"workspace_id": 1, "name": "First", "uuid": "one-db"})
        call(daemon.url, "POST", "/api/campaigns/one-db/messages", {"messages": [
            {"recipient": "628111", "message_id": "ONE-A"},
            {"recipient": "628222", "message_id": "ONE-B"}]})
        assert call(daemon.url, "POST", "/webhooks/webjs", ack("ONE-A", 3))["ok"]
        yield daemon
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()


def test_a_second_daemon_on_the_same_database_refuses_and_changes_nothing(
        first: DaemonProcess, tmp_path: Path) -> None:
    db = tmp_path / "campaignd.sqlite3"
    journal = journal_rows(db)
    assert journal, "the first daemon's ACK should still be in the journal"
    stats = call(first.url, "GET", "/api/campaigns/one-db")["campaign"]["statistics"]

    # As people type it after `make run`: the same folder, another port.
    second = campaignd("serve", "--config", str(first.config))
    assert second.returncode == 1, second.stderr
    assert str(db) in second.stderr and f"pid {first.proc.pid}" in second.stderr
    assert "store.opened" not in second.stderr and "runtime.started" not in second.stderr
    # The same with the port given in the environment, as the issue tried it.
    env_port = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(first.config), "serve"], cwd=REPO,
        env={**os.environ, "CAMPAIGND_SERVER__PORT": "0"}, capture_output=True, text=True,
        timeout=60)
    assert env_port.returncode == 1 and f"pid {first.proc.pid}" in env_port.stderr

    assert journal_rows(db) == journal
    after = call(first.url, "GET", "/api/campaigns/one-db")["campaign"]["statistics"]
    assert after == stats
    # The first daemon goes on numbering its journal as before.
    assert call(first.url, "POST", "/webhooks/webjs", ack("ONE-B", 2)) == {"ok": True,
                                                                           "events": 1}
    assert [row[0] for row in journal_rows(db)] == [journal[0][0], journal[0][0] + 1]
    # check-config says the same, without taking the lock.
    check = campaignd("check-config", "--config", str(first.config))
    assert check.returncode == 0
    assert f"pid {first.proc.pid}" in check.stderr and "would refuse" in check.stderr
    assert first.terminate() == 0


def test_a_port_conflict_opens_nothing(first: DaemonProcess, tmp_path: Path) -> None:
    # A stopped daemon's folder, then a start on a port that is taken (the first's).
    other = tmp_path / "other"
    other.mkdir()
    config = write_config(other)
    stopped = DaemonProcess(config)
    call(stopped.url, "POST", "/api/campaigns", {"workspace_id": 1, "name": "Old"})
    assert stopped.terminate() == 0
    before = files_state(other)
    port = first.url.rsplit(":", 1)[1]
    time.sleep(0.05)  # an mtime change would be visible at this resolution

    done = subprocess.run(
        [sys.executable, "-m", "daemon", "serve", "--config", str(config)], cwd=REPO,
        env={**os.environ, "CAMPAIGND_SERVER__PORT": port}, capture_output=True, text=True,
        timeout=60)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "nothing was opened or changed" in done.stderr
    for event in ("store.opened", "store.migrated", "runtime.started", "final_checkpoint"):
        assert event not in done.stderr
    after = files_state(other)
    after.pop("daemon.log", None)
    before.pop("daemon.log", None)
    assert after == before


def test_after_kill_9_a_new_daemon_starts_at_once_with_everything(
        first: DaemonProcess) -> None:
    stats = call(first.url, "GET", "/api/campaigns/one-db")["campaign"]["statistics"]
    first.kill()
    again = DaemonProcess(first.config)  # no stale lock: the kernel dropped it
    try:
        after = call(again.url, "GET", "/api/campaigns/one-db")["campaign"]["statistics"]
        assert {k: v for k, v in after.items() if k != "updated_at"} == {
            k: v for k, v in stats.items() if k != "updated_at"}
        assert after["total_read_count"] == 1
    finally:
        assert again.terminate() == 0


def test_stats_export_and_backup_work_beside_a_running_daemon(
        first: DaemonProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The commands run in this process; the daemon is the other one, holding its lock.
    config = str(first.config)
    assert main(["stats", "one-db", "--json", "--config", config]) == 0
    assert json.loads(capsys.readouterr().out)["campaign"]["name"] == "First"
    assert main(["stats", "one-db", "--url", first.url, "--json"]) == 0
    live = json.loads(capsys.readouterr().out)
    assert live["campaign"]["statistics"]["total_read_count"] == 1
    assert main(["export", "one-db", "--config", config]) == 0
    assert capsys.readouterr().out.count("\n") == 3  # header + 2 rows
    copy = tmp_path / "copy.sqlite3"
    assert main(["backup", str(copy), "--config", config]) == 0
    assert "integrity ok" in capsys.readouterr().out
    missing = tmp_path / "missing"
    assert main(["backup", str(missing / "x.sqlite3"), "--config", config]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"campaignd backup: the folder {missing} does not exist (create it first: "
        f"mkdir -p {missing})"]
    # The daemon never noticed.
    assert call(first.url, "POST", "/webhooks/webjs", ack("ONE-B", 2))["ok"]
    assert first.terminate() == 0


class Demo:
    """`campaignd demo` as a user starts it, read until its page URL."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "demo", "--config", str(config),
             "--recipients", "3", "--rate", "50"], cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.url = ""
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while not self.url and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"demo exited: {self.proc.wait()} {self.lines}")
            self.lines.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                self.url = match.group(1).rstrip("/")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        finally:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()


def test_the_demo_runs_beside_serve_with_its_own_database_and_port_and_takes_its_lock(
        first: DaemonProcess, tmp_path: Path) -> None:
    port = int(first.url.rsplit(":", 1)[1])
    folder = tmp_path / "demo"  # another config naming the same database, the first's port
    folder.mkdir()
    config = write_config(folder, **{"server.port": port, "store.checkpoint_interval": 3600,
                                     "store.path": str(tmp_path / "campaignd.sqlite3")})
    demo = Demo(config)
    try:
        assert demo.url != first.url
        said = "".join(demo.lines)
        assert f"port {port} is taken" in said
        assert str(tmp_path / "campaignd-demo.sqlite3") in said
        # The first daemon's campaigns are not the demo's.
        names = {c["name"] for c in call(demo.url, "GET", "/api/campaigns")["campaigns"]}
        assert "First" not in names
        assert [c["name"] for c in call(first.url, "GET", "/api/campaigns")["campaigns"]] == [
            "First"]
        again = campaignd("demo", "--config", str(config))
        assert again.returncode == 1
        assert "campaignd-demo.sqlite3" in again.stderr
        assert f"pid {demo.proc.pid}" in again.stderr
    finally:
        assert demo.stop() == 0
    assert first.terminate() == 0
