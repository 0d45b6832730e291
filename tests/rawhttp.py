"""HTTP/1.1 over a raw socket, for tests that must see the bytes a client sees: several
requests on one connection, pipelined, split in small writes, malformed on purpose.

The reader is strict on purpose (a status line, CRLF-ended headers, a Content-Length or
chunked body) so that a sloppy server answer fails the test instead of being forgiven
the way a lenient client library would forgive it."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 10.0


@dataclass
class Response:
    version: str
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunked: bool = False

    def header(self, name: str) -> str | None:
        """The one value of a header (None if absent; an error if it is repeated)."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"header {name} repeated: {values}"
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
            version: str = "HTTP/1.1") -> bytes:
    """A well-formed request's bytes: Host, and Content-Length when there is a body or a
    method that carries one, unless `headers` gives its own."""
    given = dict(headers or {})
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    if "Content-Length" not in given and "Transfer-Encoding" not in given and (
            body or method.upper() in ("POST", "PUT")):
        given["Content-Length"] = str(len(body))
    lines += [f"{k}: {v}" for k, v in given.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Conn:
    """One client connection; `read_response` reads exactly one answer off it."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection(address(url), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small writes stay small
        self.buf = b""

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed by the server mid-answer (have {self.buf[:200]!r})")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head_only: bool = False) -> Response:
        status_line = self._line().decode("latin-1")
        version, code, *_ = status_line.split(" ", 2)
        assert version in ("HTTP/1.0", "HTTP/1.1"), status_line
        assert len(code) == 3 and code.isdigit(), status_line
        response = Response(version, int(code))
        while True:
            line = self._line().decode("latin-1")
            if not line:
                break
            name, sep, value = line.partition(":")
            assert sep and name == name.strip() and name, f"bad header line {line!r}"
            response.headers.append((name, value.strip()))
        if head_only or response.status in (100, 101, 204, 304):
            return response
        encoding = response.header("Transfer-Encoding")
        length = response.header("Content-Length")
        if encoding is not None:
            assert encoding.lower() == "chunked" and length is None, response.headers
            response.chunked = True
            response.body = self._chunked()
        elif length is not None:
            assert length.isdigit(), length
            response.body = self._exactly(int(length))
        else:  # body to the close (HTTP/1.0 style)
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
            response.body, self.buf = self.buf, b""
        return response

    def _chunked(self) -> bytes:
        body = b""
        while True:
            size_line = self._line().split(b";", 1)[0].strip()
            size = int(size_line, 16)
            if size == 0:
                while self._line():  # trailers, up to the empty line
                    pass
                return body
            body += self._exactly(size)
            assert self._exactly(2) == b"\r\n", "chunk not followed by CRLF"

    def closed_by_server(self) -> bool:
        """True when the server closed the connection (EOF, or a reset) with nothing more
        to read; False if more bytes came. Waits up to the socket's timeout."""
        if self.buf:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        self.buf += data
        return not data

    def still_open(self, wait: float = 0.2) -> bool:
        """True when, within `wait`, the server neither closed the connection nor sent
        anything: it keeps the connection for the next request."""
        if self.buf:
            return False  # bytes nobody asked for
        self.sock.settimeout(wait)
        try:
            self.sock.recv(1, socket.MSG_PEEK)  # EOF or a byte: not an idle open connection
        except TimeoutError:
            return True
        except ConnectionResetError:
            return False
        finally:
            self.sock.settimeout(TIMEOUT)
        return False


    def no_answer(self, wait: float = 0.5) -> bool:
        """True when no byte comes within `wait` (the connection may stay open or close:
        either way nothing was answered)."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            return not self.sock.recv(1, socket.MSG_PEEK)
        except (TimeoutError, ConnectionResetError):
            return True
        finally:
            self.sock.settimeout(TIMEOUT)


def exchange(url: str, data: bytes) -> Response:
    """Send `data` on a fresh connection and read one answer."""
    with Conn(url) as conn:
        conn.send(data)
        return conn.read_response()
