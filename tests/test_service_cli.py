"""`campaignd stats`, `export`, `backup` and every `--help`, against a running daemon's
SQLite file and its API."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import build_parser, main
from tests.conftest import Daemon

ADMIN = "cli-admin-token-0123456789"


def ack(message_id: str, level: int) -> dict[str, Any]:
    return {"event": "message_status_updated",
            "data": {"message_id": message_id, "ack_level": level, "workspace_id": 1,
                     "session_id": "s", "timestamp": 1763600000}}


async def campaign_with_acks(daemon: Daemon, headers: dict[str, str] | None = None) -> str:
    kw = {"headers": headers} if headers else {}
    status, body = await daemon.post_json(
        "/api/campaigns", {"workspace_id": 1, "name": "Ramadan promo", "uuid": "cli-camp"}, **kw)
    assert status == 201, body
    status, body = await daemon.post_json("/api/campaigns/cli-camp/messages", {"messages": [
        {"recipient": f"6281{i:04d}", "message_id": f"CLI-{i}"} for i in range(10)
    ] + [{"recipient": "6289999", "message_id": "CLI-FAIL", "error": "not on WhatsApp"}]},
        **kw)
    assert status == 201, body
    for i in range(4):
        assert (await daemon.post_json("/webhooks/webjs", ack(f"CLI-{i}", 2)))[0] == 200
    assert (await daemon.post_json("/webhooks/webjs", ack("CLI-0", 3)))[0] == 200
    return "cli-camp"


def config_file(tmp_path: Path, daemon: Daemon) -> str:
    path = tmp_path / "cli.toml"
    path.write_text(f'[store]\npath = "{daemon.runtime.config.db_path}"\n')
    return str(path)


async def wait_checkpoint(daemon: Daemon) -> None:
    assert daemon.runtime.checkpointer is not None
    await daemon.runtime.checkpointer.run()


async def test_stats_from_the_file_and_live_from_the_api(
        daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uuid = await campaign_with_acks(daemon)
    await wait_checkpoint(daemon)
    config = config_file(tmp_path, daemon)

    capsys.readouterr()  # the daemon's own log lines so far
    assert main(["--config", config, "stats", uuid]) == 0
    table = capsys.readouterr().out
    assert "Ramadan promo" in table and "cli-camp" in table
    lines = {line.split()[0]: line.split()[1] for line in table.splitlines()
             if len(line.split()) > 1 and line.split()[1].replace(",", "").isdigit()}
    assert lines["Total"] == "11"
    assert lines["Sent"] == "10"  # pending counts as sent (SPEC 2.2)
    assert lines["Delivered"] == "4"
    assert lines["Read"] == "1"
    assert lines["Failed"] == "1"
    assert "Delivery rate    40.0 %" in table
    assert "Progress        100.0 %" in table
    assert "as of the last checkpoint" in table

    assert await asyncio.to_thread(
        main, ["stats", uuid, "--url", daemon.url("/"), "--json"]) == 0
    out = capsys.readouterr().out  # may hold a daemon log line too: find the document
    live, _ = json.JSONDecoder().raw_decode(out[out.index('{\n  "campaign"'):])
    assert live["campaign"]["statistics"]["total_delivered_count"] == 4
    assert live["source"].endswith("(live)")


async def test_stats_errors_are_plain_sentences(
        daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await wait_checkpoint(daemon)
    config = config_file(tmp_path, daemon)
    assert main(["--config", config, "stats", "no-such-campaign"]) == 1
    assert "no campaign 'no-such-campaign'" in capsys.readouterr().err
    missing = tmp_path / "missing.toml"
    missing.write_text(f'[store]\npath = "{tmp_path / "nothing.sqlite3"}"\n')
    assert main(["--config", str(missing), "stats", "x"]) == 1
    assert "no database at" in capsys.readouterr().err


async def test_export_to_stdout_to_a_file_and_from_the_api(
        daemon_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    daemon = await daemon_factory(**{"api.tokens": [{"token": ADMIN, "workspace": "*"}]})
    uuid = await campaign_with_acks(daemon, {"Authorization": f"Bearer {ADMIN}"})
    await wait_checkpoint(daemon)
    config = config_file(tmp_path, daemon)

    capsys.readouterr()
    assert main(["--config", config, "export", uuid]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 11
    assert rows[0]["status"] == "read" and rows[0]["read_at"]
    assert rows[-1]["status"] == "failed" and rows[-1]["failure_reason"] == "not on WhatsApp"

    out = tmp_path / "export.csv"
    assert main(["--config", config, "export", uuid, "--output", str(out)]) == 0
    assert "wrote 11 rows" in capsys.readouterr().err
    assert list(csv.DictReader(out.open())) == rows

    # From the API, with the token; without it the API's refusal is shown.
    remote = tmp_path / "remote.csv"
    assert await asyncio.to_thread(main, ["export", uuid, "--url", daemon.url("/"),
                                          "--token", ADMIN, "-o", str(remote)]) == 0
    assert list(csv.DictReader(remote.open())) == rows
    assert await asyncio.to_thread(main, ["export", uuid, "--url", daemon.url("/"),
                                          "-o", str(tmp_path / "refused.csv")]) == 1
    assert "HTTP 401" in capsys.readouterr().err
    assert not (tmp_path / "refused.csv").exists()
    assert not (tmp_path / "refused.csv.partial").exists()


async def test_backup_of_a_live_database_is_complete_and_consistent(
        daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uuid = await campaign_with_acks(daemon)
    await wait_checkpoint(daemon)
    config = config_file(tmp_path, daemon)
    dest = tmp_path / "backup" / "campaignd-backup.sqlite3"
    dest.parent.mkdir()

    assert main(["--config", config, "backup", str(dest)]) == 0  # the daemon keeps running
    assert "integrity ok" in capsys.readouterr().out
    copy = sqlite3.connect(dest)
    try:
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT uuid FROM campaigns").fetchall() == [(uuid,)]
        levels = dict(copy.execute("SELECT message_id, level FROM messages"))
        assert len(levels) == 11 and levels["CLI-0"] == 4
    finally:
        copy.close()
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]  # one file

    assert main(["--config", config, "backup", str(dest)]) == 1  # never overwritten by mistake
    assert "exists" in capsys.readouterr().err
    assert main(["--config", config, "backup", str(dest), "--force"]) == 0

    # The daemon still works after the backup.
    assert (await daemon.post_json("/webhooks/webjs", ack("CLI-5", 2)))[0] == 200
    stats = await daemon.stats(uuid)
    assert stats["total_delivered_count"] == 5


@pytest.mark.parametrize("command", ["serve", "check-config", "stats", "export", "backup",
                                     "demo"])
def test_every_command_has_help_with_examples(command: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: campaignd {command}" in text
    assert "examples:" in text
    assert f" {command}" in text.split("examples:")[1]  # a line to copy
