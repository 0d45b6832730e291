"""The real daemon as systemd runs it: a subprocess talking to a NOTIFY_SOCKET we bind."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.systemd import Notifier
from domain.status import Level

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    # A short folder: unix socket paths are limited to ~108 bytes.
    folder = tempfile.mkdtemp(prefix="cd-notify-", dir="/tmp")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield sock, path
    sock.close()
    shutil.rmtree(folder, ignore_errors=True)


def receive_until(sock: socket.socket, wanted: str, timeout: float = 20.0) -> list[str]:
    """Every datagram up to and including the first with the line `wanted`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {wanted} within {timeout}s; got {seen}")
        sock.settimeout(left)
        message = sock.recv(4096).decode()
        seen.append(message)
        if wanted in message.split("\n"):
            return seen


def call(base: str, method: str, path: str, doc: Any = None) -> Any:
    data = json.dumps(doc).encode() if doc is not None else None
    request = urllib.request.Request(base.rstrip("/") + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def webjs_ack(message_id: str, ack: int) -> dict[str, Any]:
    return {"event": "message_status_updated",
            "data": {"message_id": message_id, "ack_level": ack, "workspace_id": 1,
                     "session_id": "s1", "timestamp": 1763600000}}


async def close_code_on_sigterm(url: str, proc: subprocess.Popen[str]) -> int | None:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        hello = await ws.receive(timeout=10)
        assert "pusher:connection_established" in hello.data
        proc.send_signal(signal.SIGTERM)
        while not ws.closed:
            msg = await ws.receive(timeout=10)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
        return ws.close_code


def test_notify_ready_watchdog_stopping_and_final_checkpoint(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    config = tmp_path / "daemon.toml"
    # Checkpoints only at shutdown: what is on disk afterwards is the final one.
    config.write_text('[server]\nport = 0\n[store]\ncheckpoint_interval = 3600\n'
                      '[log]\nformat = "json"\n')
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}
    env.pop("CAMPAIGND_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "--config", str(config), "serve"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        startup = receive_until(sock, "READY=1")
        # READY=1 comes only once the port listens: connect right now.
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("campaignd listening on http://127.0.0.1:"), line
        base = line.split(" on ", 1)[1].strip()
        port = int(base.rstrip("/").rsplit(":", 1)[1])
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert any(m.startswith("STATUS=") for m in startup[-1].split("\n"))

        beats = 0
        while beats < 3:  # fed repeatedly at half of WATCHDOG_USEC
            receive_until(sock, "WATCHDOG=1", timeout=10)
            beats += 1

        campaign = call(base, "POST", "/api/campaigns",
                        {"workspace_id": 1, "name": "Shutdown", "uuid": "shutdown-1"})
        assert campaign["campaign"]["uuid"] == "shutdown-1"
        call(base, "POST", "/api/campaigns/shutdown-1/messages", {"messages": [
            {"recipient": "628111", "message_id": "ID-A"},
            {"recipient": "628222", "message_id": "ID-B"},
            {"recipient": "628333", "message_id": "ID-C"},
        ]})
        assert call(base, "POST", "/webhooks/webjs", webjs_ack("ID-A", 3))["ok"]
        assert call(base, "POST", "/webhooks/webjs", webjs_ack("ID-B", 2))["ok"]

        # SIGTERM with a live-push client connected: it is told to reconnect (4200).
        ws_url = base.replace("http://", "ws://").rstrip("/") + "/app/campaignd-key?protocol=7"
        assert asyncio.run(close_code_on_sigterm(ws_url, proc)) == 4200
        receive_until(sock, "STOPPING=1", timeout=10)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert "runtime.final_checkpoint" in stderr

    db = sqlite3.connect(tmp_path / "campaignd.sqlite3")
    try:
        seq = int(db.execute("SELECT value FROM meta WHERE key = 'checkpoint_seq'").fetchone()[0])
        assert seq >= 2  # both webhooks are covered by the final checkpoint
        assert db.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 0
        levels = dict(db.execute("SELECT message_id, level FROM messages"))
        # webjs ack 3 is read, ack 2 delivered; ID-C was only registered (pending).
        assert levels == {"ID-A": Level.READ, "ID-B": Level.DELIVERED, "ID-C": Level.PENDING}
    finally:
        db.close()


def test_abstract_notify_socket_gets_the_datagram() -> None:
    name = f"campaignd-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.notify("STATUS=hello")
        sock.settimeout(5)
        assert sock.recv(100) == b"STATUS=hello"
    finally:
        sock.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


def test_watchdog_for_another_pid_is_ignored() -> None:
    other = str(os.getpid() + 1)
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000",
                     "WATCHDOG_PID": other}).watchdog_usec == 0
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000",
                     "WATCHDOG_PID": str(os.getpid())}).watchdog_usec == 1000000


def test_the_unit_file_is_valid_and_hardened(tmp_path: Path) -> None:
    unit = (ROOT / "deploy" / "campaignd.service").read_text()
    settings = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in unit.splitlines()
                if "=" in line and not line.startswith("#")}
    assert settings["Type"] == "notify"
    assert settings["WatchdogSec"] and settings["ExecReload"].endswith("-HUP $MAINPID")
    for key, value in {"DynamicUser": "yes", "StateDirectory": "campaignd",
                       "ProtectSystem": "strict", "NoNewPrivileges": "yes",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
                       "MemoryDenyWriteExecute": "yes",
                       "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX"}.items():
        assert settings.get(key) == value, key
    assert "CAMPAIGND_CONFIG=" in unit and "CAMPAIGND_STORE__PATH=%S/campaignd/" in unit
    assert "Environment=CAMPAIGND_SERVER__REQUIRE_AUTH=true" in unit  # never starts open
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # fail, never skip (scripts/test-deps.sh installs it)
        pytest.fail("systemd-analyze is not installed: apt-get install systemd")
    copy = tmp_path / "campaignd.service"  # verify wants an existing ExecStart binary
    copy.write_text(unit.replace("/opt/campaignd/.venv/bin/campaignd", "/bin/true"))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "campaignd.service" not in done.stderr, done.stderr  # no warnings about it


def test_a_port_in_use_gives_a_clear_error_and_never_ready(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = tmp_path / "daemon.toml"
    config.write_text(f"[server]\nport = {port}\n")
    try:
        env = {**os.environ, "NOTIFY_SOCKET": address}
        done = subprocess.run([sys.executable, "-m", "daemon", "--config", str(config), "serve"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    sock.setblocking(False)
    sent = []
    while True:
        try:
            sent.append(sock.recv(4096).decode())
        except BlockingIOError:
            break
    assert not any("READY=1" in m.split("\n") for m in sent), sent
