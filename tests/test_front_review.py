"""An adversarial review of the webhook front (web/front.py), over raw sockets against a
real daemon process: what a client, an attacker or an operator would see where the front
answers a request itself instead of aiohttp. Each test pins what aiohttp does today
(`server.webhook_front = false` gives the same answer)."""

from __future__ import annotations

import asyncio
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.proc import DaemonProcess, write_config
from tests.rawhttp import Conn, exchange, request
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
