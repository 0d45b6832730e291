"""The listening sockets' first reader: the usual webhook request is answered here,
without aiohttp's request cycle; every other request is aiohttp's.

Why: under single-status webhooks aiohttp's per-request machinery (its parser, Request and
Response objects, a handler task, the payload writer) was most of the loop's CPU, more
than the route itself (docs/BENCHMARKS.md, "Wave 17 (lead)"). The route's taker is the
same one aiohttp's handler calls (web/webhooks.py `make_taker`): the signature checks, the
parse, the journal's group commit and the 2xx only once durable are unchanged. Only how
the bytes come in and go out differs.

What the front takes itself, strictly (`parse_head`): `POST /webhooks/<source>` or the
seed's `/laravel/api/whatsapp/webhooks/webjs` exactly (no query), HTTP/1.1, a Host header,
header lines `Name: value` of printable ASCII, ONE Content-Length up to the route's
streaming size and `server.max_body_bytes`, no Transfer-Encoding, Expect or Upgrade, no
header aiohttp refuses repeated (Content-Type, User-Agent, ...), Connection (and Proxy-
Connection) absent, `keep-alive` or `close`.
Anything else (another route, a malformed head, chunked bodies, HTTP/1.0, WebSockets) is
handed to aiohttp at the first byte of that request, with what was read after it, and
the connection stays aiohttp's from there. So every refusal of a malformed request is
aiohttp's own, and a client sees one HTTP server. Requests on one connection are answered
one at a time, in order (a pipelining client waits in our buffer), and none is taken
while the client leaves its answers unread (`pause_writing`), as aiohttp does.

`server.webhook_front = false` turns it off: aiohttp serves every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any, NamedTuple

import structlog
from aiohttp import web
from aiohttp.helpers import HeadersMixin
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.http_parser import SINGLETON_HEADERS
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from web.keys import RUNTIME, WEBHOOK_ROUTES
from web.webhooks import OK_BODIES, STREAM_ABOVE, Taken, ok_response

log = structlog.get_logger(__name__)

Taker = Callable[[Any], Awaitable[Taken]]  # web/webhooks.py `make_taker`

MAX_HEAD = 16 * 1024  # a longer head is aiohttp's to refuse (its own field limits)
MAX_HEADERS = 128  # aiohttp's limits, past which it refuses a request (400)
MAX_FIELD = 8190
HEADS_KEPT = 256  # parsed heads remembered (`Front.heads`)
PAUSE_ABOVE = 1024 * 1024  # a pipelining client's backlog: stop reading past this
COMPACT_ABOVE = 64 * 1024  # taken bytes dropped from the buffer's front past this
SWEEP_SECONDS = 15  # idle connections are looked for this often (`Front._sweep`)
# The header lines: a token, a colon, a value of printable ASCII (RFC 9110 5.1 and 5.5),
# each line ended by CRLF (the last one's ends the head, cut off before this is matched).
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
HEADER_LINES = re.compile(rb"(?:" + _TOKEN + rb":[\x20-\x7e\t]*\r\n)*" + _TOKEN
                          + rb":[\x20-\x7e\t]*")
# Headers that make a request aiohttp's (bodies we do not frame, protocol switches).
NOT_OURS = ("Transfer-Encoding", "Expect", "Upgrade", "TE")
SERVER = SERVER_SOFTWARE.encode()
# The usual answer, {"ok": true, "events": n}, as bytes around the Date line.
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
OK_TAILS = [b"Content-Length: %d\r\n\r\n%s" % (len(body), body) for body in OK_BODIES]
CLOSE = b"Connection: close\r\n"


class FrontRequest(HeadersMixin):
    """What the webhook handler reads from a request (web/webhooks.py, web/auth.py), with
    aiohttp's own meaning of `content_type` (HeadersMixin)."""

    __slots__ = ("_body", "_headers", "_host", "app", "path", "transport")
    method = "POST"

    def __init__(self, app: web.Application, path: str, headers: CIMultiDictProxy[str],
                 body: bytes, transport: asyncio.Transport, host: str) -> None:
        self.app = app
        self.path = path
        self._headers = headers
        self._body = body
        self.transport = transport
        self._host = host

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._headers

    @property
    def url(self) -> URL:  # what aiohttp gives for a plain-HTTP request without a query
        return URL(f"http://{self._host}{self.path}")

    async def read(self) -> bytes:
        return self._body


class Head(NamedTuple):
    """A request head the front takes (`parse_head`); read-only, so the requests that
    sent the same head share one (`Front.heads`)."""

    path: str
    take: Taker
    headers: CIMultiDictProxy[str]
    length: int
    close: bool
    host: str


def parse_head(head: bytes, routes: dict[bytes, Taker], max_body: int) -> Head | None:
    """The head (without its blank line) of a request the front answers, or None when it
    is aiohttp's. Strict on purpose: whatever is unusual goes to aiohttp."""
    first = head.find(b"\r\n")
    parts = head[:first].split(b" ")
    if len(parts) != 3 or parts[0] != b"POST" or parts[2] != b"HTTP/1.1" \
            or parts[1] not in routes:
        return None
    block = head[first + 2:]
    if block.count(b"\r\n") >= MAX_HEADERS or HEADER_LINES.fullmatch(block) is None:
        return None  # obs-fold, a space before a colon, a control or non-ASCII byte, ...
    headers: CIMultiDict[str] = CIMultiDict()
    names: set[str] = set()  # lower-cased: a repeated one is a case for aiohttp
    for line in block.decode("ascii").split("\r\n"):
        name, _, value = line.partition(":")
        if len(line) > MAX_FIELD:
            return None  # aiohttp's limit: it refuses the request
        names.add(name.lower())
        headers.add(name, value.strip(" \t"))
    for name in NOT_OURS:
        if name in headers:
            return None
    repeated = len(names) < len(headers)
    if repeated and any(len(headers.getall(name, ())) > 1 for name in SINGLETON_HEADERS):
        return None  # a repeated Content-Type, User-Agent, ...: aiohttp refuses it (400)
    lengths = headers.getall("Content-Length", ())
    hosts = headers.getall("Host", ())
    if len(lengths) != 1 or len(hosts) != 1 or not hosts[0]:
        return None
    length = lengths[0]
    if not length.isdigit() or not length.isascii() or len(length) > 12 \
            or int(length) > max_body:
        return None
    close = False
    connection = headers.get("Connection")
    if "proxy-connection" in names or (repeated and connection is not None):
        # llhttp reads every Connection line, and Proxy-Connection as one: a close in any
        connection = ",".join(headers.getall("Connection", [])
                              + headers.getall("Proxy-Connection", []))
    if connection is not None:
        tokens = {token.strip(" \t") for token in connection.lower().split(",")}
        if tokens == {"close"}:
            close = True
        elif tokens != {"keep-alive"}:
            return None
    return Head(parts[1].decode(), routes[parts[1]], CIMultiDictProxy(headers), int(length),
                close, hosts[0])


class Front:
    """The front of one application: its webhook routes, its connections, the answers'
    Date header (remade once a second)."""

    def __init__(self, runner: web.AppRunner, routes: dict[bytes, Taker],
                 max_body: int, shutdown_timeout: float,
                 counts: dict[str, int] | None = None) -> None:
        assert runner.server is not None, "set the runner up first"
        self.runner = runner
        self.app = runner.app
        self.aiohttp = runner.server
        # An idle connection is closed after the time aiohttp would keep it (the runner's
        # keepalive_timeout; without one, aiohttp's default: an hour, longer than the idle
        # timeout of the load balancers in front, which must close first).
        self.keepalive = self.aiohttp().keepalive_timeout
        self.routes = routes
        # A larger body is read streamed by the route (web/bigbody.py, from a request's
        # `content`, which FrontRequest has not): aiohttp's.
        self.max_body = min(max_body, STREAM_ABOVE)
        self.shutdown_timeout = shutdown_timeout
        self.connections: set[FrontProtocol] = set()
        # Heads seen, parsed: a gateway sends the same head but for the body's length
        # (and a signature, when it signs), so most requests' heads were seen before.
        # A Head is read-only (its headers a proxy), shared by the requests that sent it.
        self.heads: dict[bytes, Head] = {}
        # answered / handed_over, exported as campaignd_http_front (core/metrics.py)
        self.counts = counts if counts is not None else {"answered": 0, "handed_over": 0}
        self._second = 0
        self._stamp = b""
        self._sweeper: asyncio.TimerHandle | None = None

    @classmethod
    def of_app(cls, runner: web.AppRunner, shutdown_timeout: float) -> Front:
        """The front of the daemon's application (web/app.py `make_app`): its webhook
        routes, its body limit and the runtime's counts."""
        rt = runner.app[RUNTIME]
        return cls(runner, runner.app[WEBHOOK_ROUTES], rt.config["server.max_body_bytes"],
                   shutdown_timeout, rt.metrics.front.counts)

    def remember(self, raw: bytes, head: Head) -> None:
        if len(self.heads) >= HEADS_KEPT:
            self.heads.clear()  # signed requests' heads are all new: start over
        self.heads[raw] = head

    def stamp(self) -> tuple[int, bytes]:
        """The second and the Date and Server header lines for an answer."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._stamp = (b"Date: " + formatdate(now, usegmt=True).encode()
                           + b"\r\nServer: " + SERVER + b"\r\n")
        return now, self._stamp

    def start_sweeping(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(SWEEP_SECONDS, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle longer than aiohttp would keep them."""
        cutoff = time.time() - self.keepalive
        for conn in list(self.connections):
            if not conn.busy and conn.last < cutoff:
                conn.close()
        self.start_sweeping()

    async def shutdown(self, timeout: float) -> None:
        """Idle connections closed now; those answering close once answered, within
        `timeout` (the journal is still running: the runtime stops after the sites)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            conn.closing = True
            if not conn.busy:
                conn.close()
        deadline = time.monotonic() + timeout
        while any(conn.busy for conn in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.close()


class FrontProtocol(asyncio.Protocol):
    """One connection while the front has it (`Front`'s docstring)."""

    __slots__ = ("blocked", "buffer", "busy", "closing", "front", "last", "offset", "paused",
                 "transport")

    def __init__(self, front: Front) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()  # read, not yet taken from `offset` on
        self.offset = 0
        self.busy = False
        self.closing = False
        self.paused = False  # reading paused: a backlog of requests waits
        self.blocked = False  # writing paused: answers wait for the client to read them
        self.last = time.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        self.transport = None
        self.buffer = bytearray()
        self.offset = 0

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        if self.offset > COMPACT_ABOVE:  # what was taken is dropped now and then
            del buffer[:self.offset]
            self.offset = 0
        buffer += data
        if not self.busy and not self.blocked:
            self._take_next()
        elif len(buffer) - self.offset > PAUSE_ABOVE and not self.paused and self.transport:
            self.paused = True
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        """The client does not read its answers: take no more requests until it does
        (as aiohttp awaits `drain` after each answer), so they do not pile up here."""
        self.blocked = True

    def resume_writing(self) -> None:
        self.blocked = False
        if not self.busy:
            self._go_on()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _next(self) -> None:
        """Start answering the request at the buffer's head, if it is whole; hand the
        connection to aiohttp if it is not the front's kind."""
        buf, at = self.buffer, self.offset
        if at >= len(buf):
            buf.clear()  # all taken: start the buffer over
            self.offset = 0
            return
        if self.transport is None:
            return
        end = buf.find(b"\r\n\r\n", at, at + MAX_HEAD)
        if end < 0:
            if len(buf) - at >= MAX_HEAD or buf.find(b"\n\n", at) >= 0 \
                    or not b"POST /".startswith(buf[at:at + 6]):
                self._hand_over()  # bare LFs, a long head, or not a POST at all
            return
        front = self.front
        raw = bytes(buf[at:end])
        head = front.heads.get(raw)
        if head is None:
            head = parse_head(raw, front.routes, front.max_body)
            if head is None:
                self._hand_over()
                return
            front.remember(raw, head)
        start = end + 4
        if len(buf) < start + head.length:
            return  # the body is still coming (its head is remembered: not parsed again)
        body = bytes(buf[start:start + head.length])
        self.offset = start + head.length
        self.busy = True
        request = FrontRequest(front.app, head.path, head.headers, body, self.transport,
                               head.host)
        front.counts["answered"] += 1
        asyncio.get_running_loop().create_task(self._answer(head.take, request, head.close))

    async def _answer(self, take: Taker, request: FrontRequest, close: bool) -> None:
        try:
            taken = await take(request)
            if taken.__class__ is tuple and not taken[1] and taken[0] < len(OK_TAILS):
                now, stamp = self.front.stamp()
                self.last = now
                answer = b"".join((OK_HEAD, stamp, CLOSE if close else b"",
                                   OK_TAILS[taken[0]]))
            else:
                answer = self._encode(ok_response(*taken) if taken.__class__ is tuple
                                      else taken, close)
        except Exception as exc:  # the taker answers its own refusals: this is a bug
            log.exception("http.front_failed", path=request.path, exc_info=exc)
            self.busy = False
            self.close()
            return
        self.busy = False
        transport = self.transport
        if transport is None:
            return  # the client went away; what was committed stays committed
        transport.write(answer)  # may pause writing (`pause_writing`)
        if close or self.closing:
            transport.close()
            return
        self._go_on()

    def _go_on(self) -> None:
        """After an answer, or once the client read the answers: the next request (none
        once the connection is closing: after a close, at a stop)."""
        transport = self.transport
        if self.blocked or transport is None or transport.is_closing() or self.closing:
            return
        if self.paused:
            self.paused = False
            transport.resume_reading()
        if self.offset < len(self.buffer):
            self._take_next()

    def _take_next(self) -> None:
        try:
            self._next()
        except Exception as exc:  # a bug of ours: logged, the connection closed
            log.exception("http.front_failed", exc_info=exc)
            self.close()

    def _encode(self, response: web.StreamResponse, close: bool) -> bytes:
        body = response.body if isinstance(response, web.Response) else None
        if not isinstance(body, bytes):
            raise TypeError(f"the front writes byte bodies only, not {type(body).__name__}")
        now, stamp = self.front.stamp()
        self.last = now
        lines = [b"HTTP/1.1 %d %s\r\n" % (response.status, response.reason.encode())]
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "date", "server", "connection"):
                lines.append(f"{name}: {value}\r\n".encode())
        lines.append(stamp)
        if close:
            lines.append(b"Connection: close\r\n")
        lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
        lines.append(body)
        return b"".join(lines)

    def _hand_over(self) -> None:
        """From here the connection is aiohttp's, starting with the bytes we hold."""
        transport, data = self.transport, bytes(self.buffer[self.offset:])
        assert transport is not None
        self.front.connections.discard(self)
        self.front.counts["handed_over"] += 1
        self.transport = None
        self.buffer = bytearray()
        self.offset = 0
        protocol = self.front.aiohttp()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if data:
            protocol.data_received(data)


class FrontSite(web.BaseSite):
    """A listening socket served by the front, stopped in aiohttp's order with the other
    sites (runner.cleanup: the sites stop, then on_shutdown, then the runtime)."""

    __slots__ = ("_front", "_sock")

    def __init__(self, runner: web.AppRunner, sock: Any, front: Front) -> None:
        super().__init__(runner)
        self._sock = sock
        self._front = front

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        front = self._front
        self._server = await loop.create_server(lambda: FrontProtocol(front), sock=self._sock,
                                                backlog=self._backlog)
        if front._sweeper is None:
            front.start_sweeping()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(Exception):
            await self._front.shutdown(self._front.shutdown_timeout)
        await super().stop()
