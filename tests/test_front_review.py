"""An adversarial review of the webhook front (web/front.py), over raw sockets against a
real daemon process: what a client, an attacker or an operator would see where the front
answers a request itself instead of aiohttp. Each test pins what aiohttp does today
(`server.webhook_front = false` gives the same answer)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.proc import DaemonProcess, write_config
from tests.rawhttp import Conn, exchange
from tests.test_webhook_http import ack, assert_ok, campaign, settled, webhook

STREAM_ABOVE = 256 * 1024  # web/webhooks.py: webjs bodies above this are streamed


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One daemon with the default body limit (4 MiB, above the streaming size)."""
    daemon = DaemonProcess(write_config(tmp_path_factory.mktemp("front_review")))
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
