"""Configuration as an operator meets it: `campaignd check-config`, the environment,
every problem in one run, secrets masked, SIGHUP reload of a running daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from core.config import KEYS, ConfigError, env_name
from daemon.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def campaignd(*args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGND_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "daemon", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)


BAD = """
[server]
host = "0.0.0.0"
prot = 8081
port = 70000

[store]
checkpoint_interval = "often"

[log]
level = "verbose"
"""


def test_every_problem_is_named_at_once_and_exit_is_nonzero(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text(BAD)
    done = campaignd("--config", str(config), "check-config")
    assert done.returncode != 0
    err = done.stderr
    # unknown key, with a suggestion
    assert "server.prot: unknown key (did you mean 'server.port'?)" in err
    # out of range: key, value, what is allowed
    assert "server.port = 70000: out of range, must be from 0 to 65535" in err
    # wrong type
    assert "store.checkpoint_interval = 'often': must be a number" in err
    # not one of the choices
    assert "log.level = 'verbose': must be one of 'debug', 'info', 'warning', 'error'" in err
    # missing secrets because the address is not loopback, even with other problems
    for key in ("webhooks.webjs.secret", "webhooks.waha.hmac_key",
                "webhooks.evolution.apikey", "webhooks.cloud.app_secret",
                "webhooks.twilio.auth_token", "api.tokens"):
        assert f"{key}: required when server.host = '0.0.0.0'" in err, key
    assert done.stdout == ""  # nothing printed as if it were fine


def test_serve_refuses_to_start_with_a_bad_configuration(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text('[server]\nhost = "10.1.2.3"\n')
    done = campaignd("--config", str(config), "serve")
    assert done.returncode == 2
    assert "webhooks.cloud.app_secret: required when server.host = '10.1.2.3'" in done.stderr
    assert "listening" not in done.stdout


def test_off_loopback_with_every_secret_is_accepted(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text("""
[server]
host = "0.0.0.0"
[webhooks.webjs]
secret = "s1"
[webhooks.waha]
hmac_key = "s2"
[webhooks.evolution]
apikey = "s3"
[webhooks.cloud]
app_secret = "s4"
[webhooks.twilio]
enabled = false
[pusher]
app_secret = "not-the-default"
[api]
tokens = [{ token = "0123456789abcdef-admin", workspace = "*" }]
""")
    config_ = load_config(config, environ={})
    assert config_["server.host"] == "0.0.0.0"
    assert config_["pusher.allow_public_channels"] is False  # tokens: private only


def test_check_config_prints_the_effective_configuration_with_secrets_masked(
        tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text('[webhooks.cloud]\napp_secret = "meta-app-secret-value"\n'
                      '[api]\ntokens = [{ token = "workspace-7-token-value", workspace = 7 }]\n')
    done = campaignd("check-config", env={
        "CAMPAIGND_CONFIG": str(config),
        "CAMPAIGND_SERVER__PORT": "9123",
        "CAMPAIGND_WEBHOOKS__WEBJS__SECRET": "webjs-secret-value",
        "CAMPAIGND_WEBHOOKS__WAHA__ENABLED": "false"})
    assert done.returncode == 0, done.stderr
    effective = json.loads(done.stdout)
    assert effective["server.port"] == 9123  # from the environment, as a number
    assert effective["server.host"] == "127.0.0.1"  # private by default
    assert effective["webhooks.waha.enabled"] is False
    assert effective["webhooks.cloud.app_secret"] == "***"
    assert effective["webhooks.webjs.secret"] == "***"
    assert effective["api.tokens"] == [{"token": "***", "workspace": 7}]
    for secret in ("meta-app-secret-value", "workspace-7-token-value", "webjs-secret-value"):
        assert secret not in done.stdout + done.stderr
    assert str(config) in done.stderr  # which file was read
    assert set(effective) == set(KEYS)


def test_environment_problems_name_the_variable() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(None, environ={"CAMPAIGND_SERVER__PORT": "eighty",
                                   "CAMPAIGND_SERVR__HOST": "x"})
    problems = "\n".join(raised.value.problems)
    assert "server.port (from CAMPAIGND_SERVER__PORT) = 'eighty': must be an integer" in problems
    assert "CAMPAIGND_SERVR__HOST: unknown setting (did you mean CAMPAIGND_SERVER__HOST?)" \
        in problems


def test_every_key_can_come_from_the_environment_and_is_documented() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    samples = {str: "x", bool: "false", int: "7", float: "7.5", list: "[]", dict: "{}"}
    for name, key in KEYS.items():
        assert env_name(name) in docs, (
            f"{env_name(name)} is not in docs/configuration.md: regenerate its table with "
            "scripts/config-docs.py")
        types = key.type if isinstance(key.type, tuple) else (key.type,)
        raw = samples[types[-1]]
        try:
            value = load_config(None, environ={env_name(name): raw})[name]
        except ConfigError as exc:  # a value out of range still proves it was read
            assert any(name in p for p in exc.problems), (name, exc.problems)
            continue
        assert str(value).lower() in (raw, "7.5", "7.0", "[]", "{}"), (name, value)


def test_sighup_reloads_tokens_and_names_what_needs_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text("[server]\nport = 0\n[log]\nformat = \"json\"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGND_", "NOTIFY_"))}
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "--config", str(config), "serve"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().split(" on ", 1)[1].strip().rstrip("/")

        def status(token: str | None) -> int:
            request = urllib.request.Request(base + "/api/campaigns")
            if token:
                request.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert status(None) == 200  # no tokens: open on loopback
        config.write_text('[server]\nport = 8099\n[log]\nformat = "json"\nlevel = "debug"\n'
                          '[api]\ntokens = [{ token = "reloaded-token-0123", workspace = "*" }]\n')
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while status(None) != 401:
            assert time.monotonic() < deadline, "the new tokens were not applied"
            time.sleep(0.05)
        assert status("reloaded-token-0123") == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    logs = [json.loads(line) for line in proc.stderr.read().splitlines()
            if line.startswith("{")]
    proc.stderr.close()
    if proc.stdout:
        proc.stdout.close()
    reloaded = next(e for e in logs if e["event"] == "config.reloaded")
    # Adding tokens also turns public channels off (the derived default), applied live too.
    assert set(reloaded["applied"]) == {"api.tokens", "log.level",
                                        "pusher.allow_public_channels"}
    restart = next(e for e in logs if e["event"] == "config.restart_needed")
    assert set(restart["keys"]) == {"server.port"}
    assert "reloaded-token-0123" not in "".join(json.dumps(e) for e in logs)
