"""Make the databases an upgrade must open: written by a release's own code.

    git worktree add /tmp/prev <release commit>
    python3 -m venv /tmp/prev/.venv && /tmp/prev/.venv/bin/pip install -q /tmp/prev
    /tmp/prev/.venv/bin/python scripts/make_upgrade_fixture.py tests/fixtures/upgrade/<release>

Runs that release's `campaignd serve` twice on loopback: once stopped cleanly (SIGTERM)
and once killed with SIGKILL while events are still in the journal (checkpoints off). Each
run leaves a database folder and `expected.json`: every campaign's statistics as that
release served them just before it stopped. tests/test_upgrade.py opens the copies with
the current code and checks that nothing was lost.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PORT = 18931


def call(method: str, path: str, doc: object | None = None) -> object:
    data = json.dumps(doc).encode() if doc is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def wait_ready(proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        assert proc.poll() is None, "the daemon exited"
        try:
            call("GET", "/readyz")
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit("the daemon did not become ready")


def webjs(message_id: str, ack: int, at: int) -> dict[str, object]:
    return {"event": "message_status_updated", "data": {
        "message_id": message_id, "ack_level": ack, "status": "x", "workspace_id": 1,
        "session_id": "s1", "timestamp": at}}


def run(folder: Path, kill: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.glob("campaignd.sqlite3*"):
        f.unlink()
    config = folder / "daemon.toml"
    interval = 3600 if kill else 0.5
    config.write_text(f'[server]\nport = {PORT}\n[store]\npath = "campaignd.sqlite3"\n'
                      f'checkpoint_interval = {interval}\n[log]\nlevel = "warning"\n')
    env = {**os.environ, "CAMPAIGND_CONFIG": str(config)}
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "serve"], env=env)
    try:
        wait_ready(proc)
        now = int(time.time())
        # A tracked campaign: registered messages and ACKs of every kind.
        call("POST", "/api/campaigns", {"workspace_id": 1, "name": "Tracked", "uuid": "tracked"})
        msgs = [{"recipient": f"62812000{i:04d}",
                 "message_id": f"true_62812000{i:04d}@c.us_ID{i:05d}"} for i in range(200)]
        call("POST", "/api/campaigns/tracked/messages", {"messages": msgs})
        events = []
        for i in range(200):
            ack = (-1, 1, 2, 3, 4)[i % 5]
            events.append(webjs(f"ID{i:05d}", ack, now - 600 + i))
        for start in range(0, 200, 50):
            call("POST", "/webhooks/webjs", events[start:start + 50])
        # An ACK for an id never registered: an orphan.
        call("POST", "/webhooks/webjs", webjs("ORPHAN0001", 2, now))
        # A campaign campaignd sent itself through the simulator.
        call("POST", "/api/campaigns", {
            "workspace_id": 2, "name": "Sent", "uuid": "sent", "gateway": "simulator",
            "message": "Halo {{name}}", "rate": 200, "start": True,
            "recipients": [{"recipient": f"+62 813 {i:07d}", "variables": {"name": f"N{i}"}}
                           for i in range(60)]})
        deadline = time.time() + 60
        while time.time() < deadline:
            c = call("GET", "/api/campaigns/sent")["campaign"]
            if c["status"] == "completed" and c["statistics"]["total_read_count"] > 0:
                break
            time.sleep(0.5)
        time.sleep(3)  # the simulator's late ACKs
        expected = {uuid: call("GET", f"/api/campaigns/{uuid}")["campaign"]
                    for uuid in ("tracked", "sent")}
        (folder / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True))
        if kill:
            proc.send_signal(signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    config.unlink()
    for extra in folder.glob("campaignd.sqlite3-shm"):
        extra.unlink()
    for extra in folder.glob("campaignd.sqlite3.lock"):
        extra.unlink()


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    if out.exists():
        shutil.rmtree(out)
    run(out / "clean", kill=False)
    run(out / "killed", kill=True)
    print(f"written: {sorted(str(p.relative_to(out)) for p in out.rglob('*'))}")


if __name__ == "__main__":
    main()
