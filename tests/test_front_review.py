"""An adversarial review of the webhook front (web/front.py), over raw sockets against a
real daemon process: what a client, an attacker or an operator would see where the front
answers a request itself instead of aiohttp. Each test pins what aiohttp does today
(`server.webhook_front = false` gives the same answer)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from domain.signatures import form_params, twilio_signature
from tests.proc import DaemonProcess, write_config
from tests.rawhttp import Conn, exchange, request
from tests.test_webhook_http import FIXTURES, ack, assert_ok, campaign, settled, webhook
from web.front import Front, FrontSite

STREAM_ABOVE = 256 * 1024  # web/webhooks.py: webjs bodies above this are streamed
TWILIO_TOKEN = "review17-twilio"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One daemon with the default body limit (4 MiB, above the streaming size) and a
    Twilio auth token (its signature covers the URL, made from the Host header)."""
    daemon = DaemonProcess(write_config(tmp_path_factory.mktemp("front_review"),
                                        **{"webhooks.twilio.auth_token": TWILIO_TOKEN}))
    try:
        yield daemon.url
    finally:
        if daemon.proc.poll() is None:
            assert daemon.terminate() == 0


def test_a_webjs_body_over_the_streaming_size_is_taken(url: str) -> None:
    """whatsapp-web.js posts message_received with inline media: bodies of megabytes,
    which the route reads streamed past the media (web/bigbody.py). A status webhook
    padded past 256 KiB stands for one here: it is 200 and counted."""
    ids = campaign(url, "bigwebjs", 2)
    body = ack(ids[0], 3)
    big = b" " * (STREAM_ABOVE + 1000) + body
    with Conn(url) as conn:
        conn.send(webhook(big))
        assert_ok(conn.read_response())
        conn.send(webhook(ack(ids[1], 2)))  # the connection goes on
        assert_ok(conn.read_response())
    settled(url, "bigwebjs", delivered=2, read=1)


@pytest.mark.parametrize(("host", "signed_url"), [
    ("127.0.0.1", "http://127.0.0.1/webhooks/twilio"),
    ("Hooks.Example.COM:80", "http://hooks.example.com/webhooks/twilio"),
    ("[::1]:8080", "http://[::1]:8080/webhooks/twilio"),
])
def test_a_twilio_signature_over_the_url_made_from_the_host(url: str, host: str,
                                                            signed_url: str) -> None:
    """Twilio signs the URL it calls; without webhooks.twilio.public_url the daemon
    rebuilds it as aiohttp's request.url does (Host header, lower-cased, default port
    dropped): signed over that URL it is taken, over another it is 401."""
    body = (FIXTURES / "twilio_status_read.form").read_bytes().strip()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with Conn(url) as conn:
        for signed, status in ((signed_url + "x", 401), (signed_url, 200)):
            signature = twilio_signature(TWILIO_TOKEN, signed, form_params(body))
            conn.send(request("POST", "/webhooks/twilio", body, {
                **form, "X-Twilio-Signature": signature}).replace(
                    b"Host: 127.0.0.1\r\n", f"Host: {host}\r\n".encode()))
            response = conn.read_response()
            assert response.status == status, response.body
        assert conn.still_open()


def _head(lines: list[bytes], body: bytes) -> bytes:
    return b"\r\n".join([b"POST /webhooks/webjs HTTP/1.1", b"Host: 127.0.0.1",
                         b"Content-Length: %d" % len(body), *lines]) + b"\r\n\r\n" + body


# aiohttp refuses these headers repeated (RFC 9110 singletons; aiohttp.http_parser)
SINGLETONS = ["Content-Type", "User-Agent", "Content-Location", "Content-Range", "ETag",
              "Max-Forwards", "Server"]


@pytest.mark.parametrize("name", SINGLETONS)
def test_a_repeated_singleton_header_is_refused_400_and_counts_nothing(
        url: str, name: str) -> None:
    """Two Content-Type (or User-Agent, ...) headers: aiohttp answers 400 and closes; a
    front that took the first would count a request aiohttp refuses."""
    uuid = "dup-" + name.lower()
    bad, sentinel = campaign(url, uuid, 2)
    line = f"{name}: application/json".encode()
    with Conn(url) as conn:
        conn.send(_head([line, line.lower()], ack(bad, 3)))
        response = conn.read_response()
        assert response.status == 400, response.body
        assert conn.closed_by_server()
    assert_ok(exchange(url, webhook(ack(sentinel, 2))))
    settled(url, uuid, delivered=1, read=0)


CLOSING = {
    "keepalive_then_close": [b"Connection: keep-alive", b"Connection: close"],
    "close_then_keepalive": [b"Connection: close", b"Connection: keep-alive"],
    "proxy_connection_close": [b"Proxy-Connection: close"],
    "keepalive_and_proxy_close": [b"Connection: keep-alive", b"Proxy-Connection: close"],
}


@pytest.mark.parametrize("name", sorted(CLOSING))
def test_any_close_among_the_connection_headers_closes(url: str, name: str) -> None:
    """aiohttp (llhttp) reads every Connection header, and Proxy-Connection as one: a
    close in any of them closes the connection after the answer."""
    uuid, lines = "close-" + name.replace("_", "-"), CLOSING[name]
    ids = campaign(url, uuid, 1)
    with Conn(url) as conn:
        conn.send(_head(lines, ack(ids[0], 3)))
        assert_ok(conn.read_response())
        assert conn.closed_by_server()
    settled(url, uuid, delivered=1, read=1)


def test_a_pipelined_mix_cut_in_two_at_every_byte_is_answered_in_order(url: str) -> None:
    """A webhook, a request that is aiohttp's, a webhook: in two writes, cut at every
    byte. Wherever the cut falls (in a head, a body, the prefix the front checks, the
    hand-over), the three answers come in order and the connection stays open."""
    first = webhook(ack("cut-a", 2))
    data = first + request("GET", "/healthz") + webhook(ack("cut-b", 3))
    for cut in range(1, len(data)):
        with Conn(url) as conn:
            conn.send(data[:cut])
            time.sleep(0.001)  # its own read, most of the time
            conn.send(data[cut:])
            answers = [conn.read_response() for _ in range(3)]
            assert [a.status for a in answers] == [200, 200, 200], (cut, answers)
            assert answers[1].json() == {"status": "alive"}, cut
            if cut == len(first):  # the front answered, aiohttp has the connection
                assert conn.still_open()


def test_a_webhook_whose_client_left_before_the_answer_is_counted(url: str) -> None:
    """The client sends and closes at once (a gateway's timeout): the answer has nowhere
    to go, but what was committed stays committed, and is counted."""
    ids = campaign(url, "gone", 3)
    for message_id in ids[:2]:
        conn = Conn(url)
        conn.send(webhook(ack(message_id, 3)))
        conn.close()
    assert_ok(exchange(url, webhook(ack(ids[2], 2))))
    settled(url, "gone", delivered=3, read=2)


def _websocket(conn: Conn, path: str) -> None:
    """The client side of a WebSocket handshake on a raw connection."""
    key = base64.b64encode(os.urandom(16)).decode()
    conn.send(request("GET", path, headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                            "Sec-WebSocket-Key": key,
                                            "Sec-WebSocket-Version": "13"}))
    assert conn.read_response(head_only=True).status == 101


def _frame(conn: Conn) -> tuple[int, bytes]:
    """One unmasked frame from the server: (opcode, payload)."""
    first, second = conn._exactly(2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", conn._exactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", conn._exactly(8))[0]
    return first & 0x0F, conn._exactly(length)


def test_sigterm_closes_every_connection_and_tells_a_websocket_4200(tmp_path: Path) -> None:
    """At a stop: an idle connection the front holds, one it handed to aiohttp, one in
    the middle of a request head, and a live-push WebSocket opened through the front
    (told 4200: reconnect) are all closed, and the daemon exits 0."""
    daemon = DaemonProcess(write_config(tmp_path))
    try:
        ids = campaign(daemon.url, "stop", 1)
        front, handed, partial, ws = (Conn(daemon.url) for _ in range(4))
        front.send(webhook(ack(ids[0], 2)))
        assert_ok(front.read_response())
        handed.send(request("GET", "/healthz"))
        assert handed.read_response().status == 200
        partial.send(webhook(ack(ids[0], 3))[:40])
        _websocket(ws, "/app/campaignd-key?protocol=7")
        opcode, hello = _frame(ws)
        assert opcode == 1 and b"pusher:connection_established" in hello
        assert daemon.terminate() == 0
        for conn in (front, handed, partial):
            assert conn.closed_by_server()
            conn.close()
        opcode, payload = _frame(ws)
        assert opcode == 8 and struct.unpack("!H", payload[:2])[0] == 4200
        ws.close()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()


@contextlib.asynccontextmanager
async def in_process_front(take: Callable[[object], Awaitable[object]]
                           ) -> AsyncIterator[tuple[Front, web.AppRunner, tuple[str, int]]]:
    """A front on loopback over an empty application, its one webhook route `take`
    (for what needs the front's insides: its clock, its transports)."""
    runner = web.AppRunner(web.Application(), handle_signals=False, access_log=None)
    await runner.setup()
    front = Front(runner, {b"/webhooks/webjs": take}, 4096, 1)  # type: ignore[dict-item]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    await FrontSite(runner, sock, front).start()
    try:
        yield front, runner, sock.getsockname()
    finally:
        if runner.server is not None:  # not stopped by the test
            await runner.cleanup()
        sock.close()


async def test_an_idle_connection_is_kept_as_long_as_aiohttp_would_keep_it() -> None:
    """The front closes idle keep-alive connections "as aiohttp does": after the idle
    time of the handler aiohttp would give the connection (the daemon's AppRunner sets
    none: aiohttp's default, an hour, longer than a load balancer's idle timeout, so the
    balancer never sends a request on a connection we are closing). Idle one second less
    than that: kept; one second more: closed. The clock is moved by aging the connection."""

    async def take(request: object) -> tuple[int, list[str]]:
        return 1, []

    async with in_process_front(take) as (front, runner, address):
        idle = runner.server().keepalive_timeout  # what aiohttp keeps an idle connection
        reader, writer = await asyncio.open_connection(*address)
        for age in (None, idle - 1):  # answered, then aged just under aiohttp's idle time
            if age is not None:
                (conn,) = front.connections
                conn.last = time.time() - age
                front._sweep()
            writer.write(webhook(b"{}"))  # answered: the connection was kept
            assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
            await reader.readuntil(b'"events":1}')
        conn.last = time.time() - idle - 1
        front._sweep()
        assert await reader.read() == b""  # closed, with nothing more said
        writer.close()


ANSWER = 4096  # the body of each answer below
PIPELINED = 3000  # 12 MB of answers to 300 kB of requests


async def test_a_client_that_does_not_read_its_answers_is_not_answered_ahead() -> None:
    """A client pipelines 3,000 small requests whose answers are 4 kB each and reads
    nothing for a while. aiohttp stops at its transport's high-water mark (each answer
    awaits `drain`; past 32 parsed requests it stops reading): what the daemon holds for
    a client that does not read stays bounded. The front must not take more requests
    while its answers pile up unsent: no request is taken with a megabyte of answers
    already waiting for the client. Then the client reads: all answered, in order."""
    backlog: list[int] = []
    all_taken = asyncio.Event()

    async def take(request: object) -> web.Response:
        backlog.append(request.transport.get_write_buffer_size())  # type: ignore[attr-defined]
        if len(backlog) == PIPELINED:
            all_taken.set()
        return web.Response(body=b"%06d" % len(backlog) + b"x" * (ANSWER - 6))

    async with in_process_front(take) as (_, _, address):
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting
        client.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(client, address)
        await loop.sock_sendall(client, webhook(b"{}") * PIPELINED)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_taken.wait(), 1.0)  # the front takes what it will
        received = bytearray()
        last = b"%06d" % PIPELINED + b"x" * (ANSWER - 6)  # the last answer's body
        while received[-ANSWER:] != last:
            chunk = await loop.sock_recv(client, 1 << 20)
            assert chunk, "closed before every answer came"
            received += chunk
        client.close()
    assert len(backlog) == PIPELINED
    assert max(backlog) < 1024 * 1024, f"{max(backlog)} bytes of answers were waiting"
    assert received.count(b"HTTP/1.1 200 OK\r\n") == PIPELINED
    assert received.count(b"x" * (ANSWER - 6)) == PIPELINED


async def test_a_stop_answers_the_webhook_in_flight_and_closes_the_idle_ones() -> None:
    """A stop (runner.cleanup, as at SIGTERM) while a webhook waits for its commit: that
    one is answered 200, then closed; an idle connection is closed at once; a request
    pipelined behind the one in flight is not started."""
    committed = asyncio.Event()
    started = asyncio.Event()

    async def take(request: object) -> tuple[int, list[str]]:
        started.set()
        await committed.wait()
        return 1, []

    async with in_process_front(take) as (front, runner, address):
        idle_reader, idle_writer = await asyncio.open_connection(*address)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(webhook(b"{}"))
        await started.wait()
        writer.write(webhook(b"{}"))  # behind the one in flight
        await asyncio.sleep(0)
        stopping = asyncio.create_task(runner.cleanup())
        assert await idle_reader.read() == b""  # closed, while the other still waits
        assert not stopping.done()
        committed.set()
        assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
        rest = await reader.read()  # then the close
        assert rest.endswith(b'{"ok":true,"events":1}') and b"HTTP/1.1" not in rest
        await stopping
        idle_writer.close()
        writer.close()


async def test_nothing_pipelined_after_a_close_is_taken_once_the_client_reads() -> None:
    """A webhook with Connection: close and another pipelined behind it; the first
    answer is large and the client reads it late (the front's writing was paused). The
    connection ends with that answer: the second request is neither taken nor answered
    (aiohttp reads nothing after a close)."""
    taken: list[int] = []

    async def take(request: object) -> web.Response:
        taken.append(1)
        return web.Response(body=b"x" * (8 << 20))  # past every socket buffer

    async with in_process_front(take) as (_, _, address):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(request("POST", "/webhooks/webjs", b"{}", {"Connection": "close"})
                     + webhook(b"{}"))
        while not taken:
            await asyncio.sleep(0.01)
        received = await reader.read()  # everything, to the close
        writer.close()
    assert received.count(b"HTTP/1.1 200") == 1 and received.endswith(b"x" * 100)
    assert len(taken) == 1


async def test_megabytes_of_pipelined_requests_are_all_answered_in_order() -> None:
    """3 MB of pipelined requests in one go, read back as they come: the front pauses
    reading past its backlog and resumes, and every request is answered once, in
    order, with its own body."""
    count = 1500

    async def take(request: object) -> web.Response:
        body = await request.read()  # type: ignore[attr-defined]
        return web.Response(body=body.strip())

    async with in_process_front(take) as (_, _, address):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"".join(webhook(b" " * 2000 + b"%d" % i) for i in range(count)))
        for i in range(count):
            assert (await reader.readuntil(b"\r\n")) == b"HTTP/1.1 200 OK\r\n"
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            assert await reader.readexactly(length) == b"%d" % i
        writer.close()
