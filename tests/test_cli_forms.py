"""The command line as people type it (issue 19): `--config` before or after the command,
and a command's own arguments and options in any order."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import build_parser, main
from tests.proc import REPO

# Each command with a full set of its own arguments (positional first, as documented).
COMMANDS: dict[str, list[str]] = {
    "serve": [],
    "check-config": [],
    "stats": ["camp-1", "--json", "--url", "http://127.0.0.1:1", "--token", "t" * 16],
    "export": ["camp-1", "-o", "out.csv", "--url", "http://127.0.0.1:1"],
    "backup": ["/tmp/copy.sqlite3", "--force"],
    "demo": ["--recipients", "5", "--rate", "2", "--port", "0"],
}


def forms(command: str, rest: list[str], config: str) -> list[list[str]]:
    """--config before the command, right after it, and after everything else."""
    return [["--config", config, command, *rest],
            [command, "--config", config, *rest],
            [command, *rest, "--config", config]]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_config_before_or_after_the_command_means_the_same(command: str) -> None:
    parser = build_parser()
    parsed = [vars(parser.parse_args(argv))
              for argv in forms(command, COMMANDS[command], "/etc/x.toml")]
    for args in parsed:
        assert args["config"] == "/etc/x.toml"
        assert args["command"] == command
    assert all(args == parsed[0] for args in parsed)  # every other option too


def test_config_after_the_command_wins_over_the_one_before() -> None:
    args = build_parser().parse_args(["--config", "a.toml", "serve", "--config", "b.toml"])
    assert args.config == "b.toml"
    args = build_parser().parse_args(["--config", "a.toml", "serve"])
    assert args.config == "a.toml"
    args = build_parser().parse_args(["serve"])
    assert args.config is None


@pytest.mark.parametrize("command", ["stats", "export"])
def test_uuid_and_options_in_any_order(command: str) -> None:
    parser = build_parser()
    pieces = [["camp-1"], ["--config", "c.toml"], ["--url", "http://127.0.0.1:1"],
              ["--token", "t" * 16], ["--json"] if command == "stats" else ["-o", "f.csv"]]
    seen = set()
    for order in itertools.permutations(pieces):
        argv = [command, *itertools.chain.from_iterable(order)]
        args = parser.parse_args(argv)
        assert (args.uuid, args.config, args.url, args.token) == (
            "camp-1", "c.toml", "http://127.0.0.1:1", "t" * 16), argv
        seen.add(json.dumps(vars(args), sort_keys=True, default=str))
    assert len(seen) == 1


def database_with_a_campaign(folder: Path) -> Path:
    """A daemon.toml and a database written by the daemon's own schema."""
    config = folder / "daemon.toml"
    config.write_text('[store]\npath = "cli.sqlite3"\n')
    done = subprocess.run([sys.executable, "-c", (
        "import asyncio, sys; from pathlib import Path\n"
        "from daemon.config import load_config\n"
        "from store.db import Store\n"
        "from store.campaigns import CampaignStore\n"
        "async def main():\n"
        "    config = load_config(Path(sys.argv[1]))\n"
        "    store = Store(config.db_path)\n"
        "    await store.open()\n"
        "    await CampaignStore(store).create(1, 'Typed', 'camp-1')\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"), str(config)], cwd=REPO, capture_output=True, text=True,
        timeout=60)
    assert done.returncode == 0, done.stderr
    return config


def test_every_offline_command_runs_with_config_after_the_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(database_with_a_campaign(tmp_path))
    for argv in (["stats", "camp-1", "--json", "--config", config],
                 ["stats", "--config", config, "--json", "camp-1"],
                 ["--config", config, "stats", "--json", "camp-1"]):
        assert main(argv) == 0, argv
        doc = json.loads(capsys.readouterr().out)
        assert doc["campaign"]["name"] == "Typed"
    out = tmp_path / "c.csv"
    assert main(["export", "-o", str(out), "--config", config, "camp-1"]) == 0
    assert out.read_text().startswith("row,recipient")
    copy = tmp_path / "copy.sqlite3"
    assert main(["backup", "--config", config, str(copy)]) == 0
    assert sqlite3.connect(copy).execute("SELECT name FROM campaigns").fetchone() == ("Typed",)
    assert "backed up" in capsys.readouterr().out
    assert main(["check-config", "--config", config]) == 0
    assert json.loads(capsys.readouterr().out)["store.path"] == "cli.sqlite3"
