"""The daemon's HTTP/1.1 as a client sees it over a raw socket: keep-alive, pipelining,
requests split in small writes, Connection: close, HTTP/1.0, chunked bodies, Expect,
malformed heads, body limits, odd paths, signatures, proxy headers, a stop.

Today aiohttp answers all of it. These tests pin what a client sees (statuses, JSON error
codes, answer order, whether the connection stays open, what was counted) so that any
front put before aiohttp on the listening socket can be proved to change none of it.
Counters are read back through the API; a request that must count nothing is followed by
one that counts (a sentinel), and the test waits for that one before checking exactly."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from tests.proc import DaemonProcess, api, write_config
from tests.rawhttp import Conn, Response, exchange, request

MAX_BODY = 4096
CLOUD_SECRET = "http17-cloud-secret"
FIXTURES = Path(__file__).parent / "fixtures"
JSON = {"Content-Type": "application/json"}
OK_ONE = {"ok": True, "events": 1}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One daemon for the module: a small body limit, a signed Cloud source."""
    folder = tmp_path_factory.mktemp("webhook_http")
    config = write_config(folder, **{"server.max_body_bytes": MAX_BODY,
                                     "webhooks.cloud.app_secret": CLOUD_SECRET})
    daemon = DaemonProcess(config)
    try:
        yield daemon.url
    finally:
        if daemon.proc.poll() is None:
            assert daemon.terminate() == 0


def ack(message_id: str, level: int) -> bytes:
    return json.dumps({"event": "message_status_updated",
                       "data": {"message_id": message_id, "ack_level": level}}).encode()


def webhook(body: bytes, **headers: str) -> bytes:
    return request("POST", "/webhooks/webjs", body, {**JSON, **headers})


def campaign(url: str, uuid: str, count: int) -> list[str]:
    """A campaign of `count` registered messages; their ids."""
    api(url + "/api/campaigns", "POST", {"workspace_id": 1, "name": uuid, "uuid": uuid})
    ids = [f"{uuid}-{i}" for i in range(count)]
    api(url + f"/api/campaigns/{uuid}/messages", "POST",
        {"messages": [{"recipient": f"62811{i:06d}", "message_id": m}
                      for i, m in enumerate(ids)]})
    return ids


def counts(url: str, uuid: str) -> tuple[int, int]:
    stats = api(url + f"/api/campaigns/{uuid}")["campaign"]["statistics"]
    return stats["total_delivered_count"], stats["total_read_count"]


def settled(url: str, uuid: str, delivered: int, read: int, timeout: float = 15.0) -> None:
    """Wait until the counters reach (delivered, read), then check they are exactly that:
    a 2xx is durable at once, the counters follow it a moment later."""
    deadline = time.monotonic() + timeout
    while counts(url, uuid) != (delivered, read) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert counts(url, uuid) == (delivered, read)


def assert_ok(response: Response) -> None:
    assert response.status == 200, response.body
    assert response.json() == OK_ONE


def assert_error(response: Response, status: int, code: str) -> None:
    assert response.status == status, response.body
    assert response.json()["error"]["code"] == code


def count_nothing_but_sentinel(url: str, uuid: str, sentinel: str) -> None:
    """After requests that must count nothing: one that counts, then exact counters."""
    assert_ok(exchange(url, webhook(ack(sentinel, 2))))
    settled(url, uuid, delivered=1, read=0)


# 1. keep-alive


def test_fifty_webhooks_one_at_a_time_on_one_connection(url: str) -> None:
    ids = campaign(url, "keepalive", 50)
    with Conn(url) as conn:
        for i, message_id in enumerate(ids):
            conn.send(webhook(ack(message_id, 3 if i < 20 else 2)))
            response = conn.read_response()
            assert response.version == "HTTP/1.1"
            assert_ok(response)
        assert conn.still_open()
    settled(url, "keepalive", delivered=50, read=20)


# 2. pipelining


def test_twenty_pipelined_webhooks_are_answered_in_order(url: str) -> None:
    ids = campaign(url, "pipeline", 20)
    bodies = [ack(m, 9 if i == 7 else 3 if i % 2 == 0 else 2) for i, m in enumerate(ids)]
    with Conn(url) as conn:
        conn.send(b"".join(webhook(body) for body in bodies))
        answers = [conn.read_response() for _ in ids]
        assert conn.still_open()
    for i, response in enumerate(answers):
        if i == 7:  # whatsapp-web.js has no ACK 9: refused, and only this one
            assert_error(response, 422, "invalid_payload")
            assert response.json()["error"]["field"] == "data.ack_level"
        else:
            assert_ok(response)
    # 19 accepted; the read ones are the even positions (7 is odd)
    settled(url, "pipeline", delivered=19, read=10)


def test_pipelined_webhooks_cut_at_odd_places_are_answered_in_order(url: str) -> None:
    """The same bytes as one write, sent in 37-byte pieces: heads and bodies cut anywhere,
    a piece holding the end of one request and the start of the next."""
    ids = campaign(url, "pipecut", 12)
    data = b"".join(webhook(ack(m, 9 if i == 5 else 3 if i < 4 else 2))
                    for i, m in enumerate(ids))
    with Conn(url) as conn:
        for start in range(0, len(data), 37):
            conn.send(data[start:start + 37])
            time.sleep(0.002)
        answers = [conn.read_response() for _ in ids]
        assert conn.still_open()
    for i, response in enumerate(answers):
        if i == 5:
            assert_error(response, 422, "invalid_payload")
        else:
            assert_ok(response)
    settled(url, "pipecut", delivered=11, read=4)


def test_pipelined_webhooks_around_other_routes_keep_their_order(url: str) -> None:
    ids = campaign(url, "pipemixed", 6)
    requests = [webhook(ack(ids[0], 2)), webhook(ack(ids[1], 2)), request("GET", "/healthz"),
                webhook(ack(ids[2], 2)), request("GET", "/webhooks/webjs"),
                webhook(ack(ids[3], 3)), request("GET", "/api/campaigns/pipemixed"),
                webhook(ack(ids[4], 2))]
    with Conn(url) as conn:
        conn.send(b"".join(requests))
        answers = [conn.read_response() for _ in requests]
        assert conn.still_open()
    for i in (0, 1, 3, 5, 7):
        assert_ok(answers[i])
    assert answers[2].status == 200 and answers[2].json() == {"status": "alive"}
    assert_error(answers[4], 405, "method_not_allowed")
    assert answers[6].status == 200
    assert answers[6].json()["campaign"]["uuid"] == "pipemixed"
    settled(url, "pipemixed", delivered=5, read=1)


# 3. mixed routes, one at a time


def test_webhooks_and_other_routes_on_one_keepalive_connection(url: str) -> None:
    ids = campaign(url, "mixed", 3)
    with Conn(url) as conn:
        conn.send(webhook(ack(ids[0], 2)))
        assert_ok(conn.read_response())
        conn.send(request("GET", "/healthz"))
        health = conn.read_response()
        assert health.status == 200 and health.json() == {"status": "alive"}
        conn.send(webhook(ack(ids[1], 3)))
        assert_ok(conn.read_response())
        settled(url, "mixed", delivered=2, read=1)
        conn.send(request("GET", "/api/campaigns/mixed"))
        stats = conn.read_response()
        assert stats.status == 200
        assert stats.json()["campaign"]["statistics"]["total_read_count"] == 1
        conn.send(webhook(ack(ids[2], 2)))  # still taken after the API's answer
        assert_ok(conn.read_response())
        assert conn.still_open()
    settled(url, "mixed", delivered=3, read=1)


# 4. small writes


def test_a_request_written_byte_by_byte_is_answered(url: str) -> None:
    ids = campaign(url, "split", 1)
    head, _, body = webhook(ack(ids[0], 3)).partition(b"\r\n\r\n")
    with Conn(url) as conn:
        for byte in head + b"\r\n\r\n":
            conn.send(bytes([byte]))
            time.sleep(0.001)  # each its own segment
        third = len(body) // 3
        for part in (body[:third], body[third:2 * third], body[2 * third:]):
            time.sleep(0.05)
            conn.send(part)
        assert_ok(conn.read_response())
        assert conn.still_open()
    settled(url, "split", delivered=1, read=1)


# 5. and 6. closing the connection, HTTP/1.0


def test_connection_close_is_answered_then_closed(url: str) -> None:
    ids = campaign(url, "close", 1)
    with Conn(url) as conn:
        conn.send(webhook(ack(ids[0], 2), Connection="close"))
        response = conn.read_response()
        assert_ok(response)
        assert response.header("Connection") == "close"
        assert conn.closed_by_server()
    settled(url, "close", delivered=1, read=0)


def test_http10_without_keepalive_is_answered_then_closed(url: str) -> None:
    ids = campaign(url, "http10", 1)
    with Conn(url) as conn:
        conn.send(request("POST", "/webhooks/webjs", ack(ids[0], 2), JSON, "HTTP/1.0"))
        response = conn.read_response()
        assert_ok(response)
        assert response.header("Content-Length") == str(len(response.body))  # no chunks
        assert conn.closed_by_server()
    settled(url, "http10", delivered=1, read=0)


def test_http10_with_keepalive_stays_open(url: str) -> None:
    """aiohttp keeps an HTTP/1.0 keep-alive connection and says so in the answer."""
    ids = campaign(url, "http10ka", 2)
    with Conn(url) as conn:
        for message_id in ids:
            conn.send(request("POST", "/webhooks/webjs", ack(message_id, 2),
                              {**JSON, "Connection": "keep-alive"}, "HTTP/1.0"))
            response = conn.read_response()
            assert_ok(response)
            assert (response.header("Connection") or "").lower() == "keep-alive"
            assert response.header("Content-Length") == str(len(response.body))
        assert conn.still_open()
    settled(url, "http10ka", delivered=2, read=0)


# 7. chunked bodies, Expect


def test_a_chunked_body_is_accepted_and_counted(url: str) -> None:
    ids = campaign(url, "chunked", 2)
    body = ack(ids[0], 3)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:]))
    with Conn(url) as conn:
        conn.send(request("POST", "/webhooks/webjs", headers={
            **JSON, "Transfer-Encoding": "chunked"}) + chunks + b"0\r\n\r\n")
        assert_ok(conn.read_response())
        conn.send(webhook(ack(ids[1], 2)))  # the chunked body's end was framed right
        assert_ok(conn.read_response())
        assert conn.still_open()
    settled(url, "chunked", delivered=2, read=1)


def test_expect_100_continue_gets_100_then_the_answer(url: str) -> None:
    ids = campaign(url, "expect", 1)
    body = ack(ids[0], 3)
    with Conn(url) as conn:
        conn.send(request("POST", "/webhooks/webjs", headers={
            **JSON, "Expect": "100-continue", "Content-Length": str(len(body))}))
        interim = conn.read_response()
        assert interim.status == 100 and interim.body == b""
        conn.send(body)
        assert_ok(conn.read_response())
        assert conn.still_open()
    settled(url, "expect", delivered=1, read=1)


def test_expect_with_a_declared_length_over_the_limit_ends_in_413(url: str) -> None:
    """aiohttp sends 100 Continue without looking at the length, then refuses the body;
    a server may as well refuse at once. The client's final answer is the 413."""
    bad, sentinel = campaign(url, "expectbig", 2)
    body = padded(ack(bad, 3), MAX_BODY + 1)
    with Conn(url) as conn:
        conn.send(request("POST", "/webhooks/webjs", headers={
            **JSON, "Expect": "100-continue", "Content-Length": str(len(body))}))
        response = conn.read_response()
        if response.status == 100:
            conn.send(body)
            response = conn.read_response()
        assert_error(response, 413, "body_too_large")
    count_nothing_but_sentinel(url, "expectbig", sentinel)


# 8. malformed heads: aiohttp answers 400 and closes the connection


def _raw(head_lines: list[bytes], body: bytes,
         request_line: bytes = b"POST /webhooks/webjs HTTP/1.1") -> bytes:
    return b"\r\n".join([request_line, b"Host: 127.0.0.1", b"Content-Type: application/json",
                         *head_lines]) + b"\r\n\r\n" + body


def _length(body: bytes) -> bytes:
    return b"Content-Length: %d" % len(body)


MALFORMED = {
    "header_without_colon": lambda b: _raw([b"X-Broken", _length(b)], b),
    "space_before_colon": lambda b: _raw([b"Content-Length : %d" % len(b)], b),
    "length_and_chunked": lambda b: _raw([_length(b), b"Transfer-Encoding: chunked"], b),
    "two_different_lengths": lambda b: _raw([_length(b), b"Content-Length: %d" % (len(b) + 1)],
                                            b),
    "two_equal_lengths": lambda b: _raw([_length(b), _length(b)], b),
    "non_numeric_length": lambda b: _raw([b"Content-Length: abc"], b),
    "signed_length": lambda b: _raw([b"Content-Length: +%d" % len(b)], b),
    "obs_fold": lambda b: _raw([b"X-Folded: a", b" b", _length(b)], b),
    "lowercase_method": lambda b: _raw([_length(b)], b,
                                       b"post /webhooks/webjs HTTP/1.1"),
    "bare_lf_line_ends": lambda b: _raw([_length(b)], b).replace(b"\r\n", b"\n"),
    "http_1_2": lambda b: _raw([_length(b)], b, b"POST /webhooks/webjs HTTP/1.2"),
    "no_host_in_http11": lambda b: _raw([_length(b)], b).replace(b"Host: 127.0.0.1\r\n", b""),
    "identity_encoding_and_length": lambda b: _raw(
        [b"Transfer-Encoding: identity", _length(b)], b),
    "nul_in_a_header_value": lambda b: _raw([b"X-Note: a\x00b", _length(b)], b),
    "cr_inside_a_header_value": lambda b: _raw([b"X-Note: a\rb", _length(b)], b),
    "space_inside_a_header_name": lambda b: _raw([b"X Note: b", _length(b)], b),
    "lowercase_http_version": lambda b: _raw([_length(b)], b, b"POST /webhooks/webjs http/1.1"),
    "empty_length": lambda b: _raw([b"Content-Length: "], b),
    "negative_length": lambda b: _raw([b"Content-Length: -1"], b),
    "overflowing_length": lambda b: _raw([b"Content-Length: " + b"9" * 23], b),
    "length_list": lambda b: _raw([b"Content-Length: %d, %d" % (len(b), len(b))], b),
    # aiohttp's limits (max_field_size, max_line_size 8190; max_headers 128)
    "header_value_over_8190": lambda b: _raw([b"X-Long: " + b"a" * 8191, _length(b)], b),
    "target_over_8190": lambda b: _raw(
        [_length(b)], b, b"POST /webhooks/webjs?x=" + b"a" * 9000 + b" HTTP/1.1"),
    "129_headers": lambda b: _raw([b"X-H%d: v" % i for i in range(126)] + [_length(b)], b),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_head_is_refused_400_closed_and_counts_nothing(url: str, name: str) -> None:
    uuid = "bad-" + name.replace("_", "-")
    bad, sentinel = campaign(url, uuid, 2)
    with Conn(url) as conn:
        conn.send(MALFORMED[name](ack(bad, 3)))
        response = conn.read_response()
        assert response.status == 400
        assert conn.closed_by_server()
    count_nothing_but_sentinel(url, uuid, sentinel)


def test_a_malformed_head_after_pipelined_webhooks_answers_nothing_it_did_not_count(
        url: str) -> None:
    """Two webhooks, a malformed head and a third webhook in one write. Today aiohttp
    parses the whole read first and answers only the 400 (the two are neither answered
    nor counted); a front may answer them first. Either way: 200s in order, then the
    400, then the close; exactly the answered ones counted; nothing after the 400."""
    ids = campaign(url, "pipebad", 4)
    bad = _raw([b"X-Broken", b"Content-Length: 2"], b"{}")
    with Conn(url) as conn:
        conn.send(webhook(ack(ids[0], 3)) + webhook(ack(ids[1], 3)) + bad
                  + webhook(ack(ids[2], 3)))
        answered = 0
        while (response := conn.read_response()).status != 400:
            assert_ok(response)
            answered += 1
        assert answered <= 2
        assert conn.closed_by_server()
    assert_ok(exchange(url, webhook(ack(ids[3], 2))))  # the sentinel, counted last
    settled(url, "pipebad", delivered=answered + 1, read=answered)


ACCEPTED = {  # each answered 200, counted, the connection kept open (unless it says close)
    "lowercase_header_names": lambda b: _raw([b"content-length: %d" % len(b)], b).replace(
        b"Host:", b"host:").replace(b"Content-Type:", b"content-type:"),
    "no_space_after_colon": lambda b: _raw([b"Content-Length:%d" % len(b)], b),
    "tab_and_trailing_spaces": lambda b: _raw([b"Content-Length:\t%d  " % len(b)], b),
    "leading_zero_length": lambda b: _raw([b"Content-Length: 0%d" % len(b)], b),
    "absolute_form_target": lambda b: _raw(
        [_length(b)], b, b"POST http://127.0.0.1/webhooks/webjs HTTP/1.1"),
    "percent_encoded_path": lambda b: _raw([_length(b)], b, b"POST /webhooks/web%6As HTTP/1.1"),
    "json_with_charset": lambda b: _raw([_length(b)], b).replace(
        b"application/json", b"application/json; charset=utf-8"),
    "capitalised_chunked": lambda b: _raw([b"Transfer-Encoding: Chunked"],
                                          b"%x\r\n%s\r\n0\r\n\r\n" % (len(b), b)),
    "upgrade_header_ignored": lambda b: _raw(
        [b"Connection: Upgrade", b"Upgrade: example/1", _length(b)], b),
    "capitalised_close": lambda b: _raw([b"Connection: Close", _length(b)], b),
    "close_in_a_list": lambda b: _raw([b"Connection: TE, close", _length(b)], b),
    # at aiohttp's limits, not over them
    "header_value_of_8190": lambda b: _raw([b"X-Long: " + b"a" * 8190, _length(b)], b),
    "target_of_8000": lambda b: _raw(
        [_length(b)], b, b"POST /webhooks/webjs?x=" + b"a" * 8000 + b" HTTP/1.1"),
    "128_headers": lambda b: _raw([b"X-H%d: v" % i for i in range(125)] + [_length(b)], b),
}
CLOSING = ("capitalised_close", "close_in_a_list")


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_a_well_formed_variant_is_accepted(url: str, name: str) -> None:
    uuid = "ok-" + name.replace("_", "-")
    ids = campaign(url, uuid, 1)
    with Conn(url) as conn:
        conn.send(ACCEPTED[name](ack(ids[0], 3)))
        assert_ok(conn.read_response())
        if name in CLOSING:
            assert conn.closed_by_server()
        else:
            assert conn.still_open()
    settled(url, uuid, delivered=1, read=1)


@pytest.mark.parametrize("request_line", [b"POST  /webhooks/webjs HTTP/1.1",
                                          b"POST /webhooks/webjs  HTTP/1.1"])
def test_a_request_line_with_an_extra_space_is_accepted_today(url: str,
                                                              request_line: bytes) -> None:
    """aiohttp (llhttp, lenient) takes a doubled space in the request line as one: the
    webhook is answered 200 and counted, and the connection stays open."""
    uuid = "extraspace-" + str(request_line.index(b"  "))
    ids = campaign(url, uuid, 1)
    body = ack(ids[0], 3)
    with Conn(url) as conn:
        conn.send(_raw([_length(body)], body, request_line))
        assert_ok(conn.read_response())
        assert conn.still_open()
    settled(url, uuid, delivered=1, read=1)


# 9. body limits, a body that never comes


def padded(body: bytes, size: int) -> bytes:
    """`body` led by spaces to `size` bytes: still valid JSON, so only a limit refuses it."""
    return b" " * (size - len(body)) + body


def test_a_body_at_the_limit_is_taken_one_over_is_413_and_the_connection_goes_on(
        url: str) -> None:
    at_limit, over, sentinel = campaign(url, "toolarge", 3)
    with Conn(url) as conn:
        conn.send(webhook(padded(ack(over, 3), MAX_BODY + 1)))
        assert_error(conn.read_response(), 413, "body_too_large")
        conn.send(webhook(padded(ack(at_limit, 2), MAX_BODY)))  # the big one was skipped
        assert_ok(conn.read_response())
        conn.send(webhook(ack(sentinel, 2)))
        assert_ok(conn.read_response())
        assert conn.still_open()
    settled(url, "toolarge", delivered=2, read=0)


def test_a_declared_length_over_the_limit_is_413_before_the_body_is_all_sent(
        url: str) -> None:
    """The answer comes once the limit is passed, without the rest of the declared body;
    bytes sent after it are still that body, never a request of their own."""
    bad, sentinel = campaign(url, "declared", 2)
    with Conn(url) as conn:
        conn.send(request("POST", "/webhooks/webjs", padded(ack(bad, 3), MAX_BODY + 500),
                          {**JSON, "Content-Length": str(100 * MAX_BODY)}))
        assert_error(conn.read_response(), 413, "body_too_large")
        conn.send(request("GET", "/healthz"))  # inside the declared body
        assert conn.no_answer()  # (aiohttp drains it, then closes after its linger)
    count_nothing_but_sentinel(url, "declared", sentinel)


def test_a_request_inside_a_body_is_body(url: str) -> None:
    smuggled = request("GET", "/healthz")
    with Conn(url) as conn:
        conn.send(webhook(smuggled))
        assert_error(conn.read_response(), 400, "invalid_payload")  # not JSON
        assert conn.still_open()  # and no second answer


def test_an_empty_body_is_a_json_400_on_an_open_connection(url: str) -> None:
    with Conn(url) as conn:
        conn.send(webhook(b""))
        assert_error(conn.read_response(), 400, "invalid_payload")
        assert conn.still_open()


def test_a_body_cut_short_by_the_client_counts_nothing(url: str) -> None:
    bad, sentinel = campaign(url, "cutshort", 2)
    body = ack(bad, 3)
    with Conn(url) as conn:
        conn.send(request("POST", "/webhooks/webjs", body,
                          {**JSON, "Content-Length": str(len(body) + 50)}))
    health = exchange(url, request("GET", "/healthz"))
    assert health.status == 200
    count_nothing_but_sentinel(url, "cutshort", sentinel)


# 10. and 11. odd paths and methods


def test_a_query_string_on_the_webhook_path_is_accepted(url: str) -> None:
    ids = campaign(url, "query", 1)
    with Conn(url) as conn:
        conn.send(request("POST", "/webhooks/webjs?x=1", ack(ids[0], 3), JSON))
        assert_ok(conn.read_response())
    settled(url, "query", delivered=1, read=1)


def test_other_webhook_paths_and_methods_are_json_errors(url: str) -> None:
    bad, sentinel = campaign(url, "paths", 2)
    with Conn(url) as conn:
        conn.send(request("POST", "/webhooks/webjs/", ack(bad, 3), JSON))
        assert_error(conn.read_response(), 404, "not_found")
        conn.send(request("POST", "/webhooks/nope", ack(bad, 3), JSON))
        assert_error(conn.read_response(), 404, "not_found")
        conn.send(request("GET", "/webhooks/webjs"))
        refused = conn.read_response()
        assert_error(refused, 405, "method_not_allowed")
        assert "POST" in (refused.header("Allow") or "")
        assert conn.still_open()
    count_nothing_but_sentinel(url, "paths", sentinel)


# 12. and 13. credentials


def cloud_body(message_id: str, status: str) -> bytes:
    doc = json.loads((FIXTURES / "cloud_status_sent.json").read_text())
    item = doc["entry"][0]["changes"][0]["value"]["statuses"][0]
    item.update(id=message_id, status=status, timestamp=str(int(time.time())))
    return json.dumps(doc).encode()


def cloud_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(CLOUD_SECRET.encode(), body, hashlib.sha256).hexdigest()


def test_a_signed_source_takes_a_good_signature_and_refuses_a_bad_one(url: str) -> None:
    good, bad = campaign(url, "cloud", 2)
    with Conn(url) as conn:
        body = cloud_body(bad, "read")
        conn.send(request("POST", "/webhooks/cloud", body,
                          {**JSON, "X-Hub-Signature-256": "sha256=" + "0" * 64}))
        assert_error(conn.read_response(), 401, "bad_signature")
        conn.send(request("POST", "/webhooks/cloud", body, JSON))  # none at all
        assert_error(conn.read_response(), 401, "bad_signature")
        body = cloud_body(good, "delivered")
        conn.send(request("POST", "/webhooks/cloud", body,
                          {**JSON, "X-Hub-Signature-256": cloud_signature(body)}))
        assert_ok(conn.read_response())
        assert conn.still_open()
    settled(url, "cloud", delivered=1, read=0)


def test_a_proxied_request_to_a_source_without_secret_is_refused(url: str) -> None:
    bad, sentinel = campaign(url, "proxied", 2)
    with Conn(url) as conn:
        conn.send(webhook(ack(bad, 3), **{"X-Forwarded-For": "203.0.113.9"}))
        assert_error(conn.read_response(), 401, "secret_required")
        assert conn.still_open()
    count_nothing_but_sentinel(url, "proxied", sentinel)


# 14. the answer's head


def test_the_head_of_a_webhook_answer(url: str) -> None:
    ids = campaign(url, "head", 1)
    with Conn(url) as conn:
        conn.send(webhook(ack(ids[0], 2)))
        response = conn.read_response()
    assert response.version == "HTTP/1.1" and response.status == 200
    assert (response.header("Content-Type") or "").split(";")[0].strip() == "application/json"
    assert response.header("Content-Length") == str(len(response.body))
    assert response.header("Transfer-Encoding") is None
    date = parsedate_to_datetime(response.header("Date") or "")
    assert date.tzinfo is not None and date.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert response.json() == OK_ONE


# 15. a stop with an idle keep-alive connection


def test_sigterm_with_an_idle_keepalive_connection(tmp_path: Path) -> None:
    daemon = DaemonProcess(write_config(tmp_path))
    try:
        with Conn(daemon.url) as conn:
            conn.send(request("GET", "/healthz"))
            assert conn.read_response().status == 200
            assert daemon.terminate() == 0  # within terminate's 15 s, under systemd's 30 s
            assert conn.closed_by_server()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()


# 16. the front's own count (web/front.py): which requests it answered, which it handed on


def front_counts(url: str) -> dict[str, float]:
    """campaignd_http_front_total by outcome, read from GET /metrics (its own connection
    is handed to aiohttp before it is answered, so it is counted in what it reads)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found = re.findall(r'^campaignd_http_front_total\{outcome="(\w+)"\} (\S+)$', text, re.M)
    return {outcome: float(value) for outcome, value in found}


def test_the_front_answers_webhooks_itself_and_hands_other_requests_on(url: str) -> None:
    ids = campaign(url, "front-counts", 3)
    before = front_counts(url)
    with Conn(url) as webhooks_only, Conn(url) as mixed:
        webhooks_only.send(webhook(ack(ids[0], 2)))
        assert_ok(webhooks_only.read_response())
        webhooks_only.send(request("POST", "/laravel/api/whatsapp/webhooks/webjs",
                                   ack(ids[1], 3), JSON))  # where the seed's service posts
        assert_ok(webhooks_only.read_response())
        middle = front_counts(url)  # this read's own connection is handed on: 1
        assert middle["answered"] - before["answered"] == 2
        assert middle["handed_over"] - before["handed_over"] == 1
        with Conn(url) as closed_after_one:  # a webhook and a close: nothing handed on
            closed_after_one.send(webhook(ack(ids[1], 3)))
            assert_ok(closed_after_one.read_response())
        mixed.send(webhook(ack(ids[2], 2)))
        assert_ok(mixed.read_response())
        mixed.send(request("GET", "/healthz"))
        assert mixed.read_response().status == 200
        after = front_counts(url)
        assert after["answered"] - middle["answered"] == 2
        assert after["handed_over"] - middle["handed_over"] == 2  # the GET's, this read's
        assert webhooks_only.still_open()
    settled(url, "front-counts", delivered=3, read=1)
