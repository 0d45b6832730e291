"""Running the daemon: bind, claim the database, start, serve until a signal, stop.

The order keeps a refused start harmless: the listen address is bound first and the
database lock taken next (daemon/lock.py), both before the store is opened, so a port
conflict or a second daemon on the same database changes nothing on disk.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from aiohttp import web

from actors.runtime import Runtime
from core.config import KEYS, Config, ConfigError
from core.malloc import fix_mmap_threshold, limit_arenas
from daemon.config import load_config
from daemon.lock import DatabaseInUse, DatabaseLock
from daemon.logging import configure_logging
from daemon.systemd import Notifier
from web.app import make_app
from web.auth import Guard
from web.front import Front, FrontSite
from web.keys import GUARD, RECOVERY, RUNTIME

log = structlog.get_logger(__name__)

# CPython collects its youngest generation every 700 allocations of container objects.
# The daemon keeps many long-lived ones (a campaign's engagement, the replies still in
# their window) and makes many short-lived ones per request; collecting that often cost
# a fifth of the CPU of a batch of replies (docs/BENCHMARKS.md). Every 50,000: the
# garbage cycles wait a little longer, the collector runs a seventieth as often.
GC_THRESHOLDS = (50_000, 20, 20)
# How long a stop waits for requests being answered (aiohttp's default is 60 s).
SHUTDOWN_SECONDS = 3


def page_url(config: Config, port: int) -> str:
    host = config["server.host"]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return config["server.public_url"] or f"http://{shown}:{port}/"


def bind(config: Config) -> list[socket.socket]:
    """Bind the listen address now (listening starts once the daemon is ready); raise
    OSError naming the address when it is taken or not ours."""
    host, port = config["server.host"], config["server.port"]
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        seen = set()
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
            sock.setblocking(False)
            port = sock.getsockname()[1]  # port 0: every address gets the one first chosen
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def fail(message: str) -> int:
    print(f"campaignd: {message}", file=sys.stderr, flush=True)
    return 1


async def serve(config: Config, on_listening: Callable[[str], None] | None = None,
                notifier: Notifier | None = None) -> int:
    """Run until SIGTERM/SIGINT; shut down in the SPEC 3.6 order; 0 on a clean stop.

    Start: bind the address, take the database lock, open the database and the
    journal writer, listen (webhooks are committed from here), then recover the state
    (campaigns, actors, journal replay) while other routes answer 503 `starting`; the
    "listening" line and systemd's READY=1 come once everything answers.
    runner.cleanup() is aiohttp's own stop order: the site stops accepting,
    `on_shutdown` closes the WebSockets (4200), in-flight requests finish, then the
    cleanup context stops the runtime (final checkpoint, actors, database); the lock
    goes last.
    """
    notifier = notifier or Notifier()
    gc.set_threshold(*GC_THRESHOLDS)
    fix_mmap_threshold()  # large buffers (recovery images) go back to the OS when freed
    limit_arenas()  # before any thread starts: the threads share two glibc heaps
    try:
        sockets = bind(config)
    except OSError as exc:
        log.error("serve.listen_failed", host=config["server.host"],
                  port=config["server.port"], error=str(exc))
        return fail(f"cannot listen on {config['server.host']}:{config['server.port']}: {exc}"
                    " (nothing was opened or changed)")
    lock = DatabaseLock(config.db_path)
    try:
        lock.acquire()
    except (DatabaseInUse, OSError) as exc:
        for sock in sockets:
            sock.close()
        log.error("serve.database_in_use", db=str(config.db_path), error=str(exc))
        return fail(f"cannot start: {exc}")
    try:
        return await _run(config, sockets, notifier, on_listening)
    finally:
        for sock in sockets:
            sock.close()
        lock.release()


async def _run(config: Config, sockets: list[socket.socket], notifier: Notifier,
               on_listening: Callable[[str], None] | None) -> int:
    app = make_app(config, listen_early=True)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS,
                           access_log=None)

    async def give_up(event: str, message: str, error: Exception) -> int:
        log.error(event, error=str(error), db=str(config.db_path))
        await runner.cleanup()
        await notifier.stop_watchdog()
        return fail(f"{message}: {error}")

    notifier.status("starting: opening the database")
    notifier.start_watchdog()  # fed from the loop, so a long start is not mistaken for a hang
    try:
        await runner.setup()  # the database and the journal writer (Runtime.start_core)
    except Exception as exc:
        return await give_up("serve.start_failed", "could not start", exc)
    try:
        front = Front.of_app(runner, SHUTDOWN_SECONDS) if config["server.webhook_front"] \
            else None
        for sock in sockets:  # the webhook front (web/front.py) hands the rest to aiohttp
            await (FrontSite(runner, sock, front) if front else web.SockSite(runner, sock)
                   ).start()
    except OSError as exc:
        return await give_up("serve.listen_failed", "cannot listen", exc)
    url = page_url(config, sockets[0].getsockname()[1])
    # Webhooks are committed from here; the rest answers 503 `starting` until recovered.
    log.info("serve.accepting_webhooks", url=url)
    notifier.status("starting: webhooks taken; loading campaigns and replaying the journal")
    try:
        await app[RECOVERY]
    except Exception as exc:
        return await give_up("serve.start_failed", "could not start", exc)
    print(f"campaignd listening on {url}", flush=True)
    log.info("serve.listening", url=url)
    notifier.ready(f"listening on {url}")  # only now: every route answers
    if on_listening is not None:
        on_listening(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP,
                            lambda: reload(app[RUNTIME], app[GUARD], notifier, url))
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
RELOADABLE = ("log.", "api.tokens", "webhooks.", "pusher.allow_public_channels",
              "server.trusted_proxies")


def reload(rt: Runtime, guard: Guard, notifier: Notifier, url: str) -> list[str]:
    """Re-read the configuration file; apply what can change live, name the rest."""
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
        guard.reload(config)
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


