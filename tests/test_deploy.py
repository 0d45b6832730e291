"""docs/deploy.md as an operator follows it: the secrets.env block and the check command
run as written (issue 22 item 2), and the unit's mode refuses to start without secrets
(issue 17). The unit under a real systemd: tests/test_systemd_unit.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.proc import REPO

DOC = (REPO / "docs" / "deploy.md").read_text()
UNIT = (REPO / "deploy" / "campaignd.service").read_text()
BIN = Path(sys.executable).parent


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", DOC, flags=re.S)


def documented(prefix: str) -> str:
    found = [b for b in sh_blocks() if b.startswith(prefix)]
    assert len(found) == 1, f"docs/deploy.md: one block starting with {prefix!r}"
    return found[0]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGND_")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"  # `campaignd` as the docs write it
    return env


def check_command(etc: Path) -> str:
    """The documented check, pointed at a folder of ours instead of /etc/campaignd."""
    block = documented("sudo sh -ec")
    assert "2>/dev/null" not in block  # nothing hides a broken secrets.env
    return block.removeprefix("sudo ").replace("/etc/campaignd", str(etc))


def etc_folder(tmp_path: Path, secrets: str) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "daemon.toml").write_text('[store]\npath = "campaignd.sqlite3"\n')
    (etc / "secrets.env").write_text(secrets)
    return etc


def test_the_documented_secrets_env_passes_the_documented_check(tmp_path: Path) -> None:
    etc = etc_folder(tmp_path, documented("# /etc/campaignd/secrets.env"))
    done = subprocess.run(["sh", "-c", check_command(etc)], env=clean_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert config["server.require_auth"] is True
    assert config["api.tokens"] == [{"token": "***", "workspace": "*"}]
    assert config["webhooks.cloud.app_secret"] == "***"
    assert "server.require_auth = true" in done.stderr


def test_an_unquoted_toml_value_is_reported_not_hidden(tmp_path: Path) -> None:
    # The line as 0.1's docs showed it: sh reads `token` as a command.
    broken = ("CAMPAIGND_API__TOKENS=[{ token = \"a-long-random-string\", workspace = \"*\" }]"
              "\n")
    etc = etc_folder(tmp_path, broken)
    done = subprocess.run(["sh", "-c", check_command(etc)], env=clean_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "configuration OK" not in done.stderr
    assert "not found" in done.stderr  # sh names the problem


def test_the_units_mode_refuses_to_start_without_secrets_naming_each(tmp_path: Path) -> None:
    env = clean_env()
    for line in UNIT.splitlines():  # the unit's own Environment= lines
        if line.startswith("Environment=CAMPAIGND_") and "%" not in line:
            name, value = line.removeprefix("Environment=").split("=", 1)
            env[name] = value
    assert env["CAMPAIGND_SERVER__REQUIRE_AUTH"] == "true"
    config = etc_folder(tmp_path, "") / "daemon.toml"
    done = subprocess.run([sys.executable, "-m", "daemon", "serve", "--config", str(config)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    for key in ("webhooks.webjs.secret", "webhooks.waha.hmac_key",
                "webhooks.evolution.apikey", "webhooks.cloud.app_secret",
                "webhooks.twilio.auth_token", "api.tokens", "pusher.app_secret"):
        assert f"  - {key}: " in done.stderr, key
    assert not (tmp_path / "etc" / "campaignd.sqlite3").exists()  # nothing was opened


def run_upgrade(tmp_path: Path, check_fails: bool) -> list[str]:
    """The documented upgrade block, with every outside command replaced by a recorder."""
    log = tmp_path / "calls.log"
    bin_dir, opt = tmp_path / "bin", tmp_path / "opt"
    (opt / ".venv" / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    record = f'#!/bin/sh\necho "$(basename "$0") $*" >> "{log}"\n'
    scripts = {"git": record, "systemctl": record, "journalctl": record,
               "sudo": '#!/bin/sh\nexec "$@"\n',
               "campaignd": record + ('case "$*" in *check-config*) exit 2;; esac\n'
                                      if check_fails else "")}
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (opt / ".venv" / "bin" / "pip").write_text(record)
    (opt / ".venv" / "bin" / "pip").chmod(0o755)
    etc = etc_folder(tmp_path, documented("# /etc/campaignd/secrets.env"))
    block = documented("cd /opt/campaignd").replace("/opt/campaignd", str(opt)).replace(
        "/etc/campaignd", str(etc))
    env = {**clean_env(), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    subprocess.run(["bash", "-c", block], env=env, cwd=tmp_path, capture_output=True,
                   text=True, timeout=60)
    return log.read_text().splitlines() if log.exists() else []


def test_the_upgrade_steps_keep_a_dated_backup_and_stop_at_a_failure(tmp_path: Path) -> None:
    calls = run_upgrade(tmp_path / "ok", check_fails=False)
    assert [c.split()[0] for c in calls] == ["git", "pip", "campaignd", "campaignd",
                                             "systemctl", "journalctl"]
    backup = calls[3].split()
    assert backup[1:4] == ["--config", str(tmp_path / "ok" / "etc" / "daemon.toml"), "backup"]
    assert re.fullmatch(r"/var/backups/campaignd-before-upgrade-\d{4}-\d\d-\d\d-\d{6}"
                        r"\.sqlite3", backup[4]), backup
    assert calls[4] == "systemctl restart campaignd"
    # A failed check stops the upgrade: no backup over the last one, no restart.
    calls = run_upgrade(tmp_path / "bad", check_fails=True)
    assert [c.split()[0] for c in calls] == ["git", "pip", "campaignd"]
