"""Ports for servers a test starts in another process (redis-server, nginx, a daemon
node), which must be told their port before they bind it.

Probing port 0 and handing the number on was a race: between the probe's close and the
server's bind, any other test binding port 0, or any outgoing connection, could be given
the same number from the kernel's ephemeral range ("Address already in use" in
test_cluster_page). These ports come from below that range, where the kernel never hands
out numbers by itself, in a block of their own for each pytest-xdist worker, and a
worker never hands the same one out twice."""

from __future__ import annotations

import itertools
import os
import random
import socket

BLOCK = 2000


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _worker_block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    top = _ephemeral_low()
    start = max(1024, top - BLOCK * (index + 1))
    return range(start, min(top, start + BLOCK))


_BLOCK = _worker_block()
# A random start: a port a previous run left in TIME_WAIT is not the first one tried.
_NEXT = itertools.islice(itertools.cycle(_BLOCK), random.randrange(len(_BLOCK)), None)


def free_port() -> int:
    """A port nobody listens on now, outside the ephemeral range, this worker's only."""
    for _ in range(len(_BLOCK)):
        port = next(_NEXT)
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_BLOCK}")
