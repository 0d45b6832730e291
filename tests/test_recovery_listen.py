"""Webhooks are taken while the state is recovered after a restart (docs/reliability.md).

`campaignd serve` listens once the database and the journal writer are open: a webhook
is committed (2xx means durable) while the campaigns are loaded and the journal is
replayed; what needs the state answers 503 `starting` with Retry-After. The events taken
meanwhile are applied after the replay, and nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.request
from pathlib import Path

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from actors.runtime import Runtime
from daemon.config import load_config
from tests.conftest import close_server, hold_recovery
from tests.proc import DaemonProcess, api, write_config
from web.app import make_app
from web.keys import RECOVERY


def ack(message_id: str, level: int) -> list[dict]:
    return [{"event": "message_status_updated",
             "data": {"message_id": message_id, "ack_level": level}}]


def crashed_with_journal(folder: Path) -> tuple[Path, str]:
    """A database whose journal holds events no checkpoint wrote (killed with -9)."""
    config = write_config(folder, **{"store.checkpoint_interval": 3600.0})
    first = DaemonProcess(config)
    try:
        uuid = api(f"{first.url}/api/campaigns", "POST",
                   {"workspace_id": 1, "name": "restart"})["campaign"]["uuid"]
        api(f"{first.url}/api/campaigns/{uuid}/messages", "POST", {"messages": [
            {"recipient": f"6281234500{i}", "message_id": f"L{i}"} for i in range(3)]})
        for body in (ack("L0", 2), ack("L1", 2)):  # delivered, journaled only
            urllib.request.urlopen(urllib.request.Request(
                f"{first.url}/webhooks/webjs", data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"}), timeout=10).read()
    finally:
        first.kill()
    db = sqlite3.connect(folder / "campaignd.sqlite3")
    assert db.execute("SELECT COUNT(*) FROM journal").fetchone()[0] >= 1
    db.close()
    return config, uuid


async def test_webhooks_are_taken_while_the_state_is_recovered(tmp_path: Path) -> None:
    config_path, uuid = await asyncio.to_thread(crashed_with_journal, tmp_path)
    config = load_config(config_path)
    runtime = Runtime(config)
    release = hold_recovery(runtime)
    app = make_app(config, runtime, listen_early=True)
    server = TestServer(app, host="127.0.0.1", port=0, shutdown_timeout=3)
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        async with ClientSession() as http:
            async with http.get(f"{base}/api/campaigns/{uuid}") as resp:
                assert resp.status == 503
                assert resp.headers["Retry-After"] == "1"
                assert (await resp.json())["error"]["code"] == "starting"
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 503
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200
            # Taken and durable before the replay: L1 read (over its journaled delivery),
            # L2 delivered, and L0's delivery again (a duplicate of a journaled event).
            for body in (ack("L1", 3), ack("L2", 2), ack("L0", 2)):
                async with http.post(f"{base}/webhooks/webjs", json=body) as resp:
                    assert resp.status == 200, await resp.text()
            db = sqlite3.connect(tmp_path / "campaignd.sqlite3")
            events = [e for (e,) in db.execute("SELECT events FROM journal ORDER BY seq")]
            db.close()
            assert any(b'"L2"' in blob for blob in events), "committed before its 2xx"
            assert not runtime.ready

            release.set()
            await app[RECOVERY]
            assert runtime.ready
            async with http.get(f"{base}/api/campaigns/{uuid}") as resp:
                assert resp.status == 200
                stats = (await resp.json())["campaign"]["statistics"]
            assert stats["total_message_count"] == 3
            assert stats["total_delivered_count"] == 3  # L0, L1 (read), L2
            assert stats["total_read_count"] == 1  # L1
            async with http.get(f"{base}/api/campaigns/{uuid}/messages") as resp:
                rows = {r["message_id"]: r["status"] for r in (await resp.json())["messages"]}
            assert rows == {"L0": "delivered", "L1": "read", "L2": "delivered"}
            assert runtime.replayed_events == 2  # the journal before the start, once
    finally:
        release.set()
        await close_server(server)


def test_serve_takes_webhooks_before_it_says_listening(tmp_path: Path) -> None:
    """The real process: the log says webhooks are taken before `serve.listening`."""
    config, uuid = crashed_with_journal(tmp_path)
    second = DaemonProcess(config)
    try:
        stats = api(f"{second.url}/api/campaigns/{uuid}")["campaign"]["statistics"]
        assert stats["total_delivered_count"] == 2
    finally:
        second.terminate()
    events = [json.loads(line).get("event") for line in
              (tmp_path / "daemon.log").read_text().splitlines() if line.startswith("{")]
    second_start = len(events) - events[::-1].index("runtime.started") - 1
    accepting = max(i for i, e in enumerate(events) if e == "serve.accepting_webhooks")
    listening = max(i for i, e in enumerate(events) if e == "serve.listening")
    assert accepting < second_start < listening
