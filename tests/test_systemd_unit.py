"""deploy/campaignd.service under a real systemd (issues 17 and 19).

systemd boots as PID 1 of a container (systemd-nspawn, Debian's systemd-container) over
this machine's own /usr, with a tmpfs root (--volatile=yes), so nothing of the host
changes. Into it go the unit file exactly as shipped (/etc/systemd/system/), the code
at /opt/campaignd (a venv of Debian's /usr/bin/python3 that finds the repository and
its installed dependencies), and /etc/campaignd with daemon.toml and the secrets.env of
docs/deploy.md. The container shares the host's network, so the daemon's loopback port
is reachable from the test. Commands run inside with nsenter.

What it shows: the unit's mode (server.require_auth) refuses to start without secrets
and names each; with the documented secrets.env it starts, systemd sees READY (active,
StatusText "listening on ..."), the hardened sandbox (DynamicUser, ProtectSystem=strict,
SystemCallFilter, MemoryDenyWriteExecute, ...) lets it run, `systemctl reload` works and
`systemctl stop` is clean ("Deactivated successfully", exit status 0).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.proc import REPO

NSPAWN = shutil.which("systemd-nspawn")
NSENTER = shutil.which("nsenter")
SYSTEM_PYTHON = Path("/usr/bin/python3")
SITE_PACKAGES = Path(next(p for p in sys.path if p.endswith("site-packages")))
DEPLOY_DOC = REPO / "docs" / "deploy.md"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or NSPAWN is None or NSENTER is None or not SYSTEM_PYTHON.exists(),
    reason="needs root, systemd-nspawn (Debian's systemd-container, installed by "
           "scripts/test-deps.sh), nsenter and /usr/bin/python3")


def documented_secrets_env() -> str:
    """The secrets.env block of docs/deploy.md, as an operator would paste it."""
    blocks = re.findall(r"```sh\n(.*?)```", DEPLOY_DOC.read_text(), flags=re.S)
    found = [b for b in blocks if b.startswith("# /etc/campaignd/secrets.env")]
    assert len(found) == 1, "docs/deploy.md must show one secrets.env block"
    return found[0]


def documented_token(secrets: str) -> str:
    match = re.search(r'token = "([^"]+)"', secrets)
    assert match, secrets
    return match.group(1)


class Container:
    """systemd as PID 1 of a throw-away container; `run` executes a command inside."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        opt = folder / "opt"
        for sub in ("src", "deps"):
            (opt / sub).mkdir(parents=True)
        # /opt/campaignd/.venv/bin/campaignd, as `python3 -m venv .venv && pip install .`
        # would make it, but finding the code and the dependencies already installed.
        venv = opt / ".venv"
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(venv)],
                       check=True, timeout=60)
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        (venv / "lib" / version / "site-packages" / "campaignd.pth").write_text(
            "/opt/campaignd/src\n/opt/campaignd/deps\n")
        script = venv / "bin" / "campaignd"
        script.write_text("#!/opt/campaignd/.venv/bin/python\nimport sys\n"
                          "from daemon.cli import main\nsys.exit(main())\n")
        script.chmod(0o755)
        self.etc = folder / "etc"
        self.etc.mkdir()
        (self.etc / "daemon.toml").write_text("[server]\nport = 0\n")
        (self.etc / "secrets.env").write_text("# nothing yet\n")
        self.console = open(folder / "console.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [NSPAWN or "systemd-nspawn", "--directory=/", "--volatile=yes", "--register=no",
             "--keep-unit", f"--machine=campaignd-test-{os.getpid()}", "--quiet",
             f"--bind-ro={opt}:/opt/campaignd", f"--bind-ro={REPO}:/opt/campaignd/src",
             f"--bind-ro={SITE_PACKAGES}:/opt/campaignd/deps",
             f"--bind-ro={self.etc}:/etc/campaignd",
             f"--bind-ro={REPO / 'deploy' / 'campaignd.service'}:"
             "/etc/systemd/system/campaignd.service",
             "--boot", "--", "systemd.firstboot=off", "systemd.unit=multi-user.target"],
            stdin=subprocess.DEVNULL, stdout=self.console, stderr=subprocess.STDOUT)
        self.pid = self._init_pid()
        self._wait_booted()

    def _init_pid(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"systemd-nspawn exited {self.proc.returncode}: "
                                     f"{self.console_text()}")
            children = subprocess.run(["pgrep", "-P", str(self.proc.pid)],
                                      capture_output=True, text=True).stdout.split()
            # nspawn's first child only sets the container up and exits (on a busy machine
            # it is still there when we look): the init is the child running systemd.
            for child in children:
                try:
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        return int(child)
                except OSError:
                    pass  # gone meanwhile
            time.sleep(0.1)
        raise AssertionError(f"no container init: {self.console_text()}")

    def _wait_booted(self) -> None:
        deadline = time.monotonic() + 90
        while True:
            done = self.run("systemctl", "is-system-running", "--wait", check=False,
                            timeout=90)
            if done.stdout.strip() in ("running", "degraded"):
                return
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"the container did not boot: {done.stdout}"
                                     f"{done.stderr}\n{self.console_text()}")
            time.sleep(0.2)  # its manager's socket is not there yet

    def run(self, *argv: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([NSENTER or "nsenter", "--target", str(self.pid), "--mount",
                               "--pid", "--uts", "--ipc", "--", *argv],
                              capture_output=True, text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, (argv, done.stdout, done.stderr)
        return done

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", "-p", ",".join(props), unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str, expect: str = "", timeout: float = 10.0) -> str:
        """The unit's journal; with `expect`, read again until that line is in it (journald
        takes PID 1's own lines, such as "Deactivated successfully.", a moment later)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.run("journalctl", "-u", unit, "-o", "cat", "--no-pager").stdout
            if expect in text or time.monotonic() > deadline:
                return text
            time.sleep(0.2)

    def console_text(self) -> str:
        return (self.folder / "console.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn asks the container to halt
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.console.close()


@pytest.fixture
def container() -> Iterator[Container]:
    folder = Path(subprocess.run(["mktemp", "-d", "/tmp/cd-systemd-XXXXXX"], check=True,
                                 capture_output=True, text=True).stdout.strip())
    box = None
    try:
        box = Container(folder)
        yield box
    finally:
        if box is not None:
            box.stop()
        shutil.rmtree(folder, ignore_errors=True)


def api(port: int, path: str, token: str | None = None,
        headers: dict[str, str] | None = None, doc: Any = None) -> tuple[int, Any]:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers=all_headers,
        data=json.dumps(doc).encode() if doc is not None else None,
        method="POST" if doc is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_hardened_unit_under_a_real_systemd(container: Container) -> None:
    # 1. The unit's mode requires every secret: without them it refuses, naming each.
    refused = container.run("systemctl", "start", "campaignd", check=False)
    assert refused.returncode != 0
    assert container.show("campaignd", "ExecMainStatus")["ExecMainStatus"] == "2"
    log = container.journal("campaignd")
    for key in ("webhooks.webjs.secret", "webhooks.waha.hmac_key", "webhooks.evolution.apikey",
                "webhooks.cloud.app_secret", "webhooks.twilio.auth_token", "api.tokens",
                "pusher.app_secret"):
        assert f"{key}: " in log and "server.require_auth = true" in log, key
    container.run("systemctl", "stop", "campaignd")
    container.run("systemctl", "reset-failed", "campaignd", check=False)

    # 2. With the secrets.env of docs/deploy.md (read by EnvironmentFile=) it starts, and
    #    systemd says it is ready only once it listens.
    secrets = documented_secrets_env()
    (container.etc / "secrets.env").write_text(secrets)
    container.run("systemctl", "start", "campaignd", timeout=120)
    shown = container.show("campaignd", "ActiveState", "SubState", "StatusText", "MainPID")
    assert (shown["ActiveState"], shown["SubState"]) == ("active", "running"), shown
    match = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)/", shown["StatusText"])
    assert match, shown
    port = int(match.group(1))
    token = documented_token(secrets)
    assert api(port, "/api/campaigns")[0] == 401  # tokens are set: loopback is no pass
    status, body = api(port, "/api/campaigns", token,
                       doc={"workspace_id": 1, "name": "Under systemd", "uuid": "sd-1"})
    assert status == 201, body
    status, body = api(port, "/webhooks/webjs", headers={"X-Forwarded-For": "203.0.113.9"},
                       doc={"event": "message_status_updated",
                            "data": {"message_id": "X", "ack_level": 3}})
    assert status == 401
    # The service user is a dynamic one, and the database is in the state directory.
    user = container.run("ps", "-o", "user=", "-p", shown["MainPID"]).stdout.strip()
    assert user not in ("root", "0"), user
    container.run("test", "-f", "/var/lib/private/campaignd/campaignd.sqlite3")

    # 3. reload (SIGHUP) and a clean stop.
    container.run("systemctl", "reload", "campaignd")
    assert container.show("campaignd", "ActiveState")["ActiveState"] == "active"
    stopped = container.run("systemctl", "stop", "campaignd", timeout=60)
    assert stopped.returncode == 0
    shown = container.show("campaignd", "ActiveState", "Result", "ExecMainStatus")
    assert shown == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    log = container.journal("campaignd", expect="campaignd.service: Deactivated successfully.")
    assert "runtime.final_checkpoint" in log and "serve.stopped" in log
    assert "campaignd.service: Deactivated successfully." in log
