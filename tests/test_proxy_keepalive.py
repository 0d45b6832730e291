"""Whether a request is remote (web/auth.py `Guard.is_remote`) on keep-alive connections:
the proxy headers are read on every request and the peer's decision is remembered per
address. So a second request on one connection is judged like the first, a proxy header
on it still makes it remote, and a connection from another address gets its own
decision (a guard for any later cache of the decision per connection).

A real daemon on loopback; the "proxy" is a client bound to 127.0.0.2, listed in
server.trusted_proxies (the whole of 127.0.0.0/8 is this machine on Linux).
"""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession, TCPConnector, TraceConfig

from tests.conftest import Daemon, webjs_ack

PROXY = "127.0.0.2"


async def post(d: Daemon, session: ClientSession, message_id: str,
               headers: dict[str, str] | None = None) -> tuple[int, str]:
    """The status and the error code (or "")."""
    async with session.post(d.url("/webhooks/webjs"), json=webjs_ack(message_id, 3),
                            headers=headers or {}) as resp:
        body = await resp.json()
        return resp.status, body.get("error", {}).get("code", "")


def client(local_addr: tuple[str, int] | None, connections: list[str], name: str
           ) -> ClientSession:
    """A session of one keep-alive connection; each connection it opens is noted."""
    async def opened(*_: Any) -> None:
        connections.append(name)

    trace = TraceConfig()
    trace.on_connection_create_end.append(opened)
    return ClientSession(connector=TCPConnector(limit=1, local_addr=local_addr),
                         trace_configs=[trace])


async def test_each_keepalive_connection_keeps_its_own_decision(daemon_factory: Any) -> None:
    d = await daemon_factory(**{"server.trusted_proxies": [f"{PROXY}/32"]})
    connections: list[str] = []
    async with client((PROXY, 0), connections, "proxy") as proxy, \
            client(None, connections, "local") as local:
        answers: dict[str, list[tuple[int, str]]] = {"proxy": [], "local": [], "forwarded": []}
        for i in range(3):  # interleaved: each connection's decision is asked in turn
            answers["proxy"].append(await post(d, proxy, f"P{i}"))
            answers["local"].append(await post(d, local, f"L{i}"))
            # the same local connection with a proxy header: remote for this request only
            answers["forwarded"].append(await post(d, local, f"F{i}",
                                                   {"X-Forwarded-For": "203.0.113.9"}))
        answers["local"].append(await post(d, local, "L-last"))

    assert set(answers["proxy"]) == {(401, "secret_required")}
    assert set(answers["local"]) == {(200, "")}
    assert set(answers["forwarded"]) == {(401, "secret_required")}
    # every request of a client went over its one keep-alive connection
    assert connections == ["proxy", "local"]
    # and only the local requests without a header were journaled
    assert d.runtime.journal.next_seq - 1 == len(answers["local"])
