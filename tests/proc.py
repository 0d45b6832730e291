"""Run the daemon as a real process, as systemd or a user would, for crash tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(folder: Path, **settings: Any) -> Path:
    """A daemon.toml in `folder`; settings are dotted keys ("server.port": 0)."""
    values = {"server.port": 0, "store.path": "campaignd.sqlite3", "log.format": "json",
              **{k.replace("__", "."): v for k, v in settings.items()}}
    sections: dict[str, list[str]] = {}
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        sections.setdefault(section, []).append(f"{name} = {toml_value(value)}")
    text = "\n".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items())
    path = folder / "daemon.toml"
    path.write_text(text)
    return path


class DaemonProcess:
    def __init__(self, config: Path, env: dict[str, str] | None = None,
                 log_path: Path | None = None, wait: bool = True) -> None:
        self.config = config
        self.log_path = log_path or config.parent / "daemon.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()/kill()
        self._log_start = self._log.tell()  # this process's lines come after
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "--config", str(config), "serve"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self._log,
            env={**os.environ, **(env or {})},
        )
        # wait=False: return at once (`accepting_url`, then `wait_ready`)
        self.url = self._read_url() if wait else ""

    def accepting_url(self, timeout: float = 30.0) -> str:
        """The URL once webhooks are taken (log event serve.accepting_webhooks), which
        comes before everything answers (`wait_ready`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(self._log_start)
                lines = log_file.read().decode(errors="replace").splitlines()
            for line in lines:
                if '"serve.accepting_webhooks"' in line:
                    match = re.search(r'"url": "(http://[^"]+)"', line)
                    if match:
                        return match.group(1).rstrip("/")
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}; see {self.log_path}")
            time.sleep(0.01)
        raise RuntimeError("daemon did not start taking webhooks")

    def wait_ready(self, timeout: float = 30.0) -> str:
        self.url = self._read_url(timeout)
        return self.url

    def _read_url(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited {self.proc.returncode}; see {self.log_path}")
                continue
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                return match.group(1).rstrip("/")
        raise RuntimeError("daemon did not start listening")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def terminate(self, timeout: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        return code


def api(url: str, method: str = "GET", doc: object = None, timeout: float = 30) -> Any:
    """A JSON API call to a daemon process (urllib: usable from any thread)."""
    data = json.dumps(doc).encode() if doc is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())
