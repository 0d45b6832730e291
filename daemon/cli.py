"""The `campaignd` command: serve (with sd_notify and SIGHUP reload), check-config,
stats / export / backup (daemon/offline.py), and the commands registered in COMMANDS."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from daemon.config import KEYS, Config, ConfigError, default_config_path, load_config
from daemon.logging import configure_logging
from daemon.systemd import Notifier

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = structlog.get_logger(__name__)

# Extra subcommands register here: name -> (help, add_arguments, run(args) -> exit code).
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {}
COMMANDS["demo"] = __import__("daemon.demo").demo.COMMAND


def _config(args: argparse.Namespace) -> Config:
    path = Path(args.config) if args.config else default_config_path()
    return load_config(path)


def page_url(config: Config, port: int) -> str:
    host = config["server.host"]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return config["server.public_url"] or f"http://{shown}:{port}/"


async def serve(config: Config, on_listening: Callable[[str], None] | None = None,
                notifier: Notifier | None = None) -> int:
    """Run until SIGTERM/SIGINT; shut down in the SPEC 3.6 order; 0 on a clean stop.

    runner.cleanup() is aiohttp's own order: the site stops accepting, `on_shutdown`
    closes the WebSockets (4200), in-flight requests finish, then the cleanup context
    stops the runtime (final checkpoint, actors, database).
    """
    from web.app import make_app
    from web.keys import RUNTIME

    notifier = notifier or Notifier()
    app = make_app(config)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=3, access_log=None)
    notifier.status("starting: loading campaigns and replaying the journal")
    notifier.start_watchdog()  # fed from the loop, so a long start is not mistaken for a hang
    try:
        await runner.setup()  # starts the runtime: store, state, actors, journal replay
    except Exception as exc:
        log.error("serve.start_failed", error=str(exc), db=str(config.db_path))
        print(f"campaignd: could not start: {exc}", file=sys.stderr)
        await runner.cleanup()
        await notifier.stop_watchdog()
        return 1
    site = web.TCPSite(runner, config["server.host"], config["server.port"],
                       reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        log.error("serve.listen_failed", host=config["server.host"],
                  port=config["server.port"], error=str(exc))
        print(f"campaignd: cannot listen on {config['server.host']}:{config['server.port']}:"
              f" {exc}", file=sys.stderr)
        await runner.cleanup()
        await notifier.stop_watchdog()
        return 1
    server = site._server
    port = server.sockets[0].getsockname()[1] if server and server.sockets else 0
    url = page_url(config, port)
    print(f"campaignd listening on {url}", flush=True)
    log.info("serve.listening", url=url)
    notifier.ready(f"listening on {url}")  # only now: the port accepts connections
    if on_listening is not None:
        on_listening(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    rt = app[RUNTIME]
    loop.add_signal_handler(signal.SIGHUP, lambda: reload(rt, notifier, url))
    await stop.wait()
    notifier.stopping()
    log.info("serve.stopping")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.remove_signal_handler(sig)
    await runner.cleanup()
    await notifier.stop_watchdog()
    log.info("serve.stopped")
    return 0


# What SIGHUP applies at once; every other key is read at start and needs a restart.
RELOADABLE = ("log.", "api.tokens", "webhooks.")


def reload(rt: Runtime, notifier: Notifier, url: str) -> list[str]:
    """Re-read the configuration file; apply what can change live, name the rest."""
    from web.auth import TokenBook, webhook_auth

    notifier.reloading()
    try:
        try:
            new = load_config(rt.config.path)
        except ConfigError as exc:
            log.error("config.reload_refused", problems=exc.problems,
                      note="the running configuration is kept")
            return []
        changed = [k for k in KEYS if new[k] != rt.config[k]]
        live = [k for k in changed if k.startswith(RELOADABLE)]
        restart = [k for k in changed if k not in live]
        config = rt.config.with_overrides(**{k: new[k] for k in live})
        rt.config = config
        rt.tokens = TokenBook(config["api.tokens"])
        rt.webhook_auth = webhook_auth(config)
        configure_logging(config["log.level"], config["log.format"])
        log.info("config.reloaded", applied=live, path=str(config.path))
        if restart:
            log.warning("config.restart_needed", keys=restart,
                        note="these changes take effect after a restart")
        return live
    finally:
        notifier.ready(f"listening on {url}")


def run_event_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run the daemon's loop on uvloop when it is installed, else on asyncio's own.

    uvloop serves the same webhooks with less CPU per request (docs/BENCHMARKS.md);
    nothing in campaignd depends on it.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    configure_logging(config["log.level"], config["log.format"])
    return run_event_loop(serve(config))


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    print(json.dumps(config.masked(), indent=2, sort_keys=True))
    print(f"configuration OK ({config.path or 'built-in defaults'})", file=sys.stderr)
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

Columns: row, recipient, contact_id, message_id, status, level, failed,
failure_reason, queued_at, pending_at, sent_at, delivered_at, read_at, played_at,
failed_at (ISO 8601, UTC). Rows are streamed, so any campaign size works.""",
    "backup": """examples:
  campaignd backup /var/backups/campaignd-$(date +%F).sqlite3
  sudo campaignd --config /etc/campaignd/daemon.toml backup /root/campaignd.sqlite3

Uses SQLite's online backup API: safe while the daemon runs (never copy the live
file with cp: its WAL would be missing). The copy is checked with PRAGMA quick_check.
Restore: stop the service, put the copy in place of store.path, delete the old
-wal and -shm files, start the service (see docs/deploy.md).""",
}


def build_parser() -> argparse.ArgumentParser:
    from daemon import offline

    parser = argparse.ArgumentParser(
        prog="campaignd",
        description="Send WhatsApp broadcast campaigns and track their ACKs live.",
        epilog="Run `campaignd COMMAND --help` for a command's options and examples. "
        "Configuration keys and their environment variables: docs/configuration.md.",
    )
    parser.add_argument("--config", metavar="PATH",
                        help="daemon.toml to read (default: $CAMPAIGND_CONFIG, else "
                        "./daemon.toml if present, else built-in defaults)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text[0].upper()
                              + help_text[1:] + ".", epilog=EPILOGS.get(name),
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
        p = sub.add_parser(name, help=help_text)
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
