"""`campaignd demo`: the daemon with the simulator, a sample campaign sending, its URL.

A new user sees a campaign send and its ticks arrive within a minute, with no gateway,
no account and no internet: the simulator answers and acknowledges like a real one.
The demo keeps its own database (campaignd-demo.sqlite3 beside the configured one) and
takes a free port when the configured one is taken, so it runs beside `make run`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
from pathlib import Path
from typing import Any

import aiohttp

from daemon.config import config_for
from daemon.logging import configure_logging
from daemon.serve import run_event_loop, serve


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipients", type=int, default=50, metavar="N",
                   help="recipients in the sample campaign (default 50)")
    p.add_argument("--rate", type=float, default=5.0, metavar="MSG_PER_S",
                   help="sending rate of the sample campaign (default 5/s)")
    p.add_argument("--port", type=int, default=None,
                   help="listen on this port instead of server.port")


def sample_recipients(n: int) -> list[dict[str, Any]]:
    names = ["Ani", "Budi", "Citra", "Dewi", "Eko", "Fitri", "Gilang", "Hana", "Indra", "Joko"]
    return [{"recipient": f"+62 812 9{i:03d} {random.randint(1000, 9999)}",
             "contact_id": f"demo-{i}", "variables": {"name": names[i % len(names)]}}
            for i in range(n)]


async def start_sample(url: str, token: str | None, n: int, rate: float) -> None:
    """Create and start the sample campaign through the public API, then show progress."""
    base = url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{base}/api/campaigns", json={
            "workspace_id": 1, "name": "Demo: Ramadan promo", "gateway": "simulator",
            "message": "Halo {{name}}, Ramadan promo: 20% off this week!",
            "recipients": sample_recipients(n), "rate": rate, "start": True,
        }) as resp:
            body = await resp.json()
            if resp.status != 201:
                print(f"campaignd demo: could not create the campaign: {body}", flush=True)
                return
        uuid = body["campaign"]["uuid"]
        print(f"\nDemo campaign started ({n} recipients, {rate:g} msg/s). Watch it live:\n"
              f"  {base}/#/campaigns/{uuid}\n(Ctrl-C stops the daemon)\n", flush=True)
        last, quiet = None, 0
        while quiet < 5:  # until it is done and no tick arrived for a while
            await asyncio.sleep(2)
            async with session.get(f"{base}/api/campaigns/{uuid}") as resp:
                campaign = (await resp.json())["campaign"]
            s = campaign["statistics"]
            line = (f"{campaign['status']}: {s['progress']}% ({s['total_sent_count']} + "
                    f"{s['total_failed_count']} / {s['total_message_count']}), delivered "
                    f"{s['total_delivered_count']}, read {s['total_read_count']}, replied "
                    f"{s.get('total_replied_count', 0)}, opted out "
                    f"{s.get('total_opted_out_count', 0)}")
            quiet = quiet + 1 if line == last and campaign["status"] != "processing" else 0
            if line != last:
                print(line, flush=True)
                last = line
        print(f"Done. The daemon keeps running: {base}/", flush=True)


def demo_database(db: Path) -> Path:
    """The demo's own database beside the configured one (campaignd.sqlite3 ->
    campaignd-demo.sqlite3), so it runs beside `make run` and never mixes a sample
    campaign into real ones."""
    return db.with_name(f"{db.stem}-demo{db.suffix or '.sqlite3'}")


def port_is_free(host: str, port: int) -> bool:
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
    except OSError:
        return False
    return True


def run(args: argparse.Namespace) -> int:
    config = config_for(args.config)
    db = demo_database(config.db_path)
    overrides: dict[str, Any] = {"sender.default_gateway": "simulator", "store.path": str(db)}
    if args.port is not None:
        overrides["server.port"] = args.port
    elif not port_is_free(config["server.host"], config["server.port"]):
        overrides["server.port"] = 0
        print(f"campaignd demo: port {config['server.port']} is taken (is `make run` up?); "
              "the demo listens on a free port instead", flush=True)
    config = config.with_overrides(**overrides)
    print(f"campaignd demo: its own database {db}", flush=True)
    configure_logging("warning", config["log.format"])
    tokens = config["api.tokens"]
    token = tokens[0]["token"] if tokens else None
    tasks: set[asyncio.Task[None]] = set()

    def listening(url: str) -> None:
        task = asyncio.get_running_loop().create_task(
            start_sample(url, token, args.recipients, args.rate))
        tasks.add(task)

    return run_event_loop(serve(config, on_listening=listening))


COMMAND = ("run the daemon with the simulator gateway and its own database, send a sample "
           "campaign and print its page URL", add_arguments, run)

EPILOG = """examples:
  campaignd demo                               # beside `make run`: own database, free port
  campaignd demo --recipients 500 --rate 20
  campaignd --config /etc/campaignd/daemon.toml demo --port 9090

The demo's database is campaignd-demo.sqlite3 beside the configured store.path (one
demo at a time per folder); Ctrl-C stops it."""
