"""The `campaignd` command line: serve (daemon/serve.py), check-config, stats / export /
backup (daemon/offline.py) and demo (daemon/demo.py).

Options go where people type them: `campaignd --config X serve` and
`campaignd serve --config X` mean the same.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import structlog

from core.config import Config, ConfigError
from daemon import demo
from daemon.config import config_for, missing_secrets
from daemon.lock import in_use
from daemon.logging import configure_logging
from daemon.serve import run_event_loop, serve

log = structlog.get_logger(__name__)

# Extra subcommands: name -> (help, add_arguments, run(args) -> exit code).
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {"demo": demo.COMMAND}


def _config(args: argparse.Namespace) -> Config:
    return config_for(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    configure_logging(config["log.level"], config["log.format"])
    return run_event_loop(serve(config))


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    print(json.dumps(config.masked(), indent=2, sort_keys=True))
    print(f"configuration OK ({config.path or 'built-in defaults'})", file=sys.stderr)
    if config["server.require_auth"]:
        print("server.require_auth = true: every webhook secret, api.tokens and "
              "pusher.app_secret are required (they are set)", file=sys.stderr)
    else:
        missing = missing_secrets(config.values, "when running as the systemd unit")
        if missing:
            print("note: server.require_auth = false: fine for this machine alone (make run,"
                  " demo); the systemd unit sets CAMPAIGND_SERVER__REQUIRE_AUTH=true and "
                  "would refuse to start:", file=sys.stderr)
            for problem in missing:
                print(f"  - {problem}", file=sys.stderr)
    holder = in_use(config.db_path)
    if holder is not None:
        print(f"note: {holder}; `serve` would refuse to start now", file=sys.stderr)
    return 0


def _offline(run: Callable[[argparse.Namespace, Path], int]
             ) -> Callable[[argparse.Namespace], int]:
    """Run an offline command with the database path of the configuration."""
    from daemon.offline import CommandError

    def command(args: argparse.Namespace) -> int:
        try:
            db = _config(args).db_path if not getattr(args, "url", None) else Path()
            return run(args, db)
        except CommandError as exc:
            print(f"campaignd {args.command}: {exc}", file=sys.stderr)
            return 1

    return command


def _add_remote(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("CAMPAIGND_URL"), metavar="URL",
                   help="ask a running daemon's API (e.g. http://127.0.0.1:8080) instead of "
                   "reading the SQLite file ($CAMPAIGND_URL)")
    p.add_argument("--token", default=os.environ.get("CAMPAIGND_TOKEN"), metavar="TOKEN",
                   help="bearer token for --url when api.tokens is set ($CAMPAIGND_TOKEN)")


EPILOGS = {
    "serve": """examples:
  campaignd serve                              # ./daemon.toml or built-in defaults
  campaignd --config /etc/campaignd/daemon.toml serve
  CAMPAIGND_SERVER__PORT=9000 campaignd serve  # any key from the environment

signals: SIGTERM/SIGINT stop gracefully (exit 0); SIGHUP reloads log level, API
tokens and webhook secrets from the file and logs which other changes need a restart.""",
    "check-config": """examples:
  campaignd --config /etc/campaignd/daemon.toml check-config
  CAMPAIGND_CONFIG=/etc/campaignd/daemon.toml campaignd check-config

Prints the effective configuration (file + environment) as JSON with secrets shown as
"***". Every problem is listed at once; the exit status is 2 when there is any.""",
    "stats": """examples:
  campaignd stats 9b2f0c1e-...                 # read the SQLite file (read-only)
  campaignd stats 9b2f0c1e-... --json          # the same as JSON
  campaignd stats 9b2f0c1e-... --url http://127.0.0.1:8080 --token $TOKEN   # live

Without --url the numbers are those of the last checkpoint (at most
store.checkpoint_interval seconds old while the daemon runs); with --url they are live.""",
    "export": """examples:
  campaignd export 9b2f0c1e-... > campaign.csv
  campaignd export 9b2f0c1e-... --output /tmp/campaign.csv
  campaignd export 9b2f0c1e-... --url http://127.0.0.1:8080 --output c.csv

Columns: row, recipient, contact_id, message_id (bare, as ACKs match it),
raw_message_id (as registered or as the gateway gave it), status, level, failed,
failure_reason, queued_at, pending_at, sent_at, delivered_at, read_at, played_at,
failed_at (ISO 8601, UTC). Rows are streamed, so any campaign size works.""",
    "demo": demo.EPILOG,
    "backup": """examples:
  campaignd backup /var/backups/campaignd-$(date +%F).sqlite3
  sudo campaignd --config /etc/campaignd/daemon.toml backup /root/campaignd.sqlite3

Uses SQLite's online backup API: safe while the daemon runs (never copy the live
file with cp: its WAL would be missing). The copy is checked with PRAGMA quick_check.
Restore: stop the service, put the copy in place of store.path, delete the old
-wal and -shm files, start the service (see docs/deploy.md).""",
}


CONFIG_HELP = ("daemon.toml to read (default: $CAMPAIGND_CONFIG, else ./daemon.toml if "
               "present, else built-in defaults)")


def build_parser() -> argparse.ArgumentParser:
    from daemon import offline

    parser = argparse.ArgumentParser(
        prog="campaignd",
        description="Send WhatsApp broadcast campaigns and track their ACKs live.",
        epilog="Run `campaignd COMMAND --help` for a command's options and examples. "
        "Configuration keys and their environment variables: docs/configuration.md.",
    )
    parser.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    # The same option after the command (`campaignd serve --config X`): SUPPRESS keeps
    # a value given before the command when it is not repeated after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text[0].upper()
                              + help_text[1:] + ".", epilog=EPILOGS.get(name),
                              parents=[common],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    add("serve", "run the daemon in the foreground").set_defaults(run=cmd_serve)
    add("check-config", "check the configuration and print it with secrets masked"
        ).set_defaults(run=cmd_check_config)
    p = add("stats", "print a campaign's counters, rates and progress as a table")
    p.add_argument("uuid", metavar="UUID", help="the campaign's uuid")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_remote(p)
    p.set_defaults(run=_offline(offline.cmd_stats))
    p = add("export", "write every recipient of a campaign as CSV")
    p.add_argument("uuid", metavar="UUID", help="the campaign's uuid")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE (replaced only once complete) instead of stdout")
    _add_remote(p)
    p.set_defaults(run=_offline(offline.cmd_export))
    p = add("backup", "copy the SQLite database to DEST safely, even while it runs")
    p.add_argument("dest", metavar="DEST", help="file to create")
    p.add_argument("--force", action="store_true", help="replace DEST if it exists")
    p.set_defaults(run=_offline(offline.cmd_backup))
    for name, (help_text, add_args, run) in COMMANDS.items():
        p = add(name, help_text)
        add_args(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        args = parser.parse_args([*(argv or sys.argv[1:]), "serve"])
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print("campaignd: the configuration has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
