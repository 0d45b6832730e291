"""The `campaignd` command: serve, check-config (and more commands as they land)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

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
    notifier.status("starting: loading campaigns")
    try:
        await runner.setup()  # starts the runtime: store, state, actors, journal replay
    except Exception as exc:
        log.error("serve.start_failed", error=str(exc), db=str(config.db_path))
        print(f"campaignd: could not start: {exc}", file=sys.stderr)
        await runner.cleanup()
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
        return 1
    server = site._server
    port = server.sockets[0].getsockname()[1] if server and server.sockets else 0
    url = page_url(config, port)
    print(f"campaignd listening on {url}", flush=True)
    log.info("serve.listening", url=url)
    notifier.ready(f"listening on {url}")  # only now: the port accepts connections
    notifier.start_watchdog()
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


def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    configure_logging(config["log.level"], config["log.format"])
    return asyncio.run(serve(config))


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    print(json.dumps(config.masked(), indent=2, sort_keys=True))
    print(f"configuration OK ({config.path or 'built-in defaults'})", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="campaignd",
        description="Send WhatsApp broadcast campaigns and track their ACKs live.",
    )
    parser.add_argument("--config", metavar="PATH",
                        help="daemon.toml to read (default: $CAMPAIGND_CONFIG, else "
                        "./daemon.toml if present, else built-in defaults)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("serve", help="run the daemon in the foreground")
    p.set_defaults(run=cmd_serve)
    p = sub.add_parser("check-config",
                       help="check the configuration and print it with secrets masked")
    p.set_defaults(run=cmd_check_config)
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
