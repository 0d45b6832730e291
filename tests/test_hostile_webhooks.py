"""Hostile input on every webhook source (SPEC 3.1, 5; issue 7.3).

Each refused body must get a 4xx with a JSON error that says what is wrong, nothing may
be journaled (the journal's next sequence number is unchanged) and the counters of a
campaign whose messages the fixtures name must not move. tests/test_webhooks.py covers
the happy path, signatures and a few bad bodies; these go after every field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import ClientSession

from tests.conftest import Daemon, fixture_bytes
from tests.test_webhooks import CASES

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# One fixture per JSON source; its message is registered, so a wrong apply shows up.
FIXTURE = {"webjs": "webjs_message_status_updated.json", "waha": "waha_message_ack.json",
           "evolution": "evolution_messages_update.json", "cloud": "cloud_status_sent.json",
           "twilio": "twilio_status_read.form"}
MESSAGE_ID = {route: mid for fixture, route, mid, _ in CASES if FIXTURE[route] == fixture}
# The fields that decide what is counted: a wrong type there is refused naming the field.
KEY_FIELDS = {
    "webjs": [("event",), ("data", "message_id"), ("data", "ack_level")],
    "waha": [("event",), ("payload", "id"), ("payload", "ack")],
    "evolution": [("event",), ("data", "keyId"), ("data", "status")],
    "cloud": [("entry", 0, "changes", 0, "value", "statuses", 0, "id"),
              ("entry", 0, "changes", 0, "value", "statuses", 0, "status"),
              ("entry", 0, "changes", 0, "value", "statuses", 0, "timestamp")],
}
NESTED = json.loads("[" * 30 + "]" * 30)  # within orjson's limit: reaches the parsers
WRONG_TYPES: list[Any] = [None, True, False, 0, -1, 2**63 - 1, 1.5, 1e308, [], {}, [1, 2],
                          {"a": 1}, NESTED]
HOSTILE_STRINGS = ["", "   ", "\u0000", "id\u0000tail", "line\nbreak", "x" * 100_000,
                   "\ud7ff\U0001f600" * 1000, "\u00b2", "\u0661\u0662", "9" * 5000, "-1"]


async def prepared(daemon: Daemon, route: str) -> str:
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [
        {"recipient": "6281234567890", "message_id": MESSAGE_ID[route]},
        {"recipient": "6281234567891", "message_id": "OTHER-MESSAGE"}])
    return campaign["uuid"]


async def refused(daemon: Daemon, route: str, body: bytes, headers: dict[str, str] | None = None,
                  uuid: str | None = None) -> dict[str, Any]:
    """POST `body`; it must be a 4xx JSON error and change nothing. Returns the error."""
    rt = daemon.runtime
    seq = rt.journal.next_seq
    before = await daemon.stats(uuid) if uuid else None
    hdrs = headers if headers is not None else (FORM if route == "twilio" else JSON)
    status, body_ = await daemon.request("POST", f"/webhooks/{route}", data=body,
                                         headers=hdrs)
    assert 400 <= status < 500, (route, status, body_, body[:200])
    assert isinstance(body_, dict) and set(body_["error"]) >= {"code", "message"}, body_
    assert body_["error"]["message"].strip()
    assert rt.journal.next_seq == seq, "a refused request was journaled"
    if uuid:
        assert await daemon.stats(uuid) == before
    return {"status": status, **body_["error"]}


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def leaves(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from leaves(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from leaves(value, (*path, i))
    elif path:
        yield path


NUMERIC = ("ack_level", "ack", "timestamp")


def must_refuse(path: tuple[Any, ...], value: Any) -> bool:
    """A wrong type, or a number no ACK or clock can have, at a field that decides."""
    if value is None or isinstance(value, str):
        return False
    if path[-1] in NUMERIC and not isinstance(value, bool) and isinstance(value, (int, float)):
        return value in (2**63 - 1, 1e308)
    return True


def dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else f".{key}"
    return out.lstrip(".")


def body_cases(raw: bytes) -> list[tuple[str, bytes]]:
    """Whole-body attacks, built from a valid fixture so only one thing is wrong."""
    raw = raw.strip()

    def inject(member: bytes) -> bytes:
        return raw.replace(b"{", b"{" + member + b", ", 1)

    cuts = sorted({1, 2, len(raw) // 3, len(raw) // 2, len(raw) - 2, len(raw) - 1})
    return [
        *((f"truncated at {n}", raw[:n]) for n in cuts),
        ("NaN literal", inject(b'"x": NaN')),
        ("Infinity literal", inject(b'"x": Infinity')),
        ("-Infinity literal", inject(b'"x": -Infinity')),
        ("huge integer", inject(b'"x": 1' + b"0" * 5000)),
        ("huge exponent", inject(b'"x": 1e999999')),
        ("deeply nested arrays", b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("deeply nested objects", b'{"a":' * 5000 + b"1" + b"}" * 5000),
        ("invalid UTF-8 in a string", inject(b'"x": "\xc3\x28"')),
        ("lone surrogate escape", inject(b'"x": "\\ud800"')),
        ("invalid UTF-8 lead byte", b"\xff" + raw),
        ("UTF-16", raw.decode().encode("utf-16")),
        ("byte order mark", b"\xef\xbb\xbf" + raw),
        ("raw NUL before the document", b"\x00" + raw),
        ("two documents", raw + raw),
        ("trailing garbage", raw + b" x"),
        ("single quotes", raw.replace(b'"', b"'")),
        ("comment", b"/* hi */" + raw),
        ("empty body", b""),
        ("whitespace only", b" \r\n\t "),
        ("a bare number", b"12345678901234567890"),
        ("a bare string", b'"message_status_updated"'),
        ("an empty array", b"[]"),
    ]


@pytest.mark.parametrize("route", ["webjs", "waha", "evolution", "cloud"])
async def test_malformed_bodies_are_refused_and_change_nothing(daemon: Daemon, route: str):
    uuid = await prepared(daemon, route)
    raw = fixture_bytes(FIXTURE[route])
    for name, body in body_cases(raw):
        error = await refused(daemon, route, body, uuid=uuid)
        assert error["code"] == "invalid_payload", (name, error)
    # the fixture itself still goes through, once
    status, body = await daemon.request("POST", f"/webhooks/{route}", data=raw, headers=JSON)
    assert (status, body["events"]) == (200, 1)


@pytest.mark.parametrize("route", ["webjs", "waha", "evolution", "cloud"])
async def test_wrong_types_at_every_field(daemon: Daemon, route: str):
    """Every leaf of the fixture, replaced by each wrong type: never a 5xx; a refusal
    journals nothing; on the fields that decide the count, a refusal names the field."""
    await prepared(daemon, route)
    doc = json.loads(fixture_bytes(FIXTURE[route]))
    key_fields = set(KEY_FIELDS[route])
    rt = daemon.runtime
    for path in list(leaves(doc)):
        for value in [*WRONG_TYPES, *HOSTILE_STRINGS]:
            body = json.dumps(replaced(doc, path, value)).encode()
            seq = rt.journal.next_seq
            status, answer = await daemon.request("POST", f"/webhooks/{route}", data=body,
                                                  headers=JSON)
            where = (dotted(path), repr(value)[:40], status, answer)
            assert status < 500, where
            if status >= 400:
                assert answer["error"]["message"] and rt.journal.next_seq == seq, where
            if path in key_fields and must_refuse(path, value):
                assert 400 <= status < 500 and answer["error"]["field"] == dotted(path), where
            if path in key_fields and isinstance(value, str) and value.strip() and (
                    "\u0000" in value or "\n" in value or len(value) > 512):
                assert status == 422 and answer["error"]["field"] == dotted(path), where


async def test_twilio_hostile_forms(daemon: Daemon):
    uuid = await prepared(daemon, "twilio")
    good = fixture_bytes("twilio_status_read.form").decode()

    def with_sid(value: str) -> bytes:
        return good.replace("SMxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", value).encode()

    cases = [
        ("invalid UTF-8", b"MessageSid=SM1&MessageStatus=read&\xff\xfe=1"),
        ("not form-encoded", b"{\"MessageSid\": \"SM1\"}"),
        ("NUL in the sid", with_sid("SM%00x")),
        ("newline in the sid", with_sid("SM%0Ax")),
        ("100,000-character sid", with_sid("S" * 100_000)),
        ("empty sid", with_sid("")),
        ("more than 200 fields", (good + "&x=1" * 300).encode()),
        ("missing status", b"MessageSid=SM1"),
        ("NUL in the status", good.replace("MessageStatus=read", "MessageStatus=re%00ad")
         .replace("SmsStatus=read", "SmsStatus=re%00ad").encode()),
    ]
    for name, body in cases:
        error = await refused(daemon, "twilio", body, uuid=uuid)
        assert error["code"] == "invalid_payload", (name, error)
    status, _ = await daemon.request("POST", "/webhooks/twilio", data=good.encode(),
                                     headers=FORM)
    assert status == 200


def cloud_batch(count: int) -> dict[str, Any]:
    statuses = [{"id": f"wamid.{i}", "status": "delivered", "timestamp": "1750000000",
                 "recipient_id": "6281234567890"} for i in range(count)]
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"statuses": statuses[i:i + 250]}}
        for i in range(0, count, 250)]}]}


BAD_STATUSES = [  # (status index, what is broken, its value)
    (0, "id", 42), (499, "id", None), (999, "id", ""), (250, "status", ["delivered"]),
    (731, "timestamp", "yesterday"), (998, "timestamp", 1e30), (17, "recipient_id", {}),
    (500, "errors", "oops"), (333, "id", "wamid.\u0000"),
]


async def test_cloud_batch_of_1000_with_one_bad_status_is_refused_whole(daemon: Daemon):
    """docs/architecture.md "Partial batches": one malformed status refuses the request
    with its path; nothing of the other 999 is applied; the corrected batch then goes
    through whole."""
    campaign = await daemon.create_campaign()
    uuid = campaign["uuid"]
    await daemon.register(uuid, [{"recipient": "6281234567890", "message_id": f"wamid.{i}"}
                                 for i in range(1000)])
    for index, field, value in BAD_STATUSES:
        doc = cloud_batch(1000)
        change, pos = divmod(index, 250)
        doc["entry"][0]["changes"][change]["value"]["statuses"][pos][field] = value
        error = await refused(daemon, "cloud", json.dumps(doc).encode(), uuid=uuid)
        assert error["status"] == 422, error
        assert error["field"] == (f"entry[0].changes[{change}].value.statuses[{pos}]"
                                  f".{field}"), error
    doc = cloud_batch(1000)
    doc["entry"][0]["changes"][1]["value"]["statuses"][5] = "not an object"
    error = await refused(daemon, "cloud", json.dumps(doc).encode(), uuid=uuid)
    assert error["field"] == "entry[0].changes[1].value.statuses[5]"
    # the provider retries with the batch fixed: all 1000 count, once
    status, body = await daemon.request("POST", "/webhooks/cloud", headers=JSON,
                                        data=json.dumps(cloud_batch(1000)).encode())
    assert (status, body["events"]) == (200, 1000)
    assert (await daemon.stats(uuid))["total_delivered_count"] == 1000


async def test_cloud_batch_unknown_status_value_is_skipped_not_refused(daemon: Daemon):
    """The other half of the rule: a well-formed status we do not know is skipped."""
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [{"recipient": "1", "message_id": f"wamid.{i}"}
                                             for i in range(1000)])
    doc = cloud_batch(1000)
    doc["entry"][0]["changes"][3]["value"]["statuses"][10]["status"] = "deleted_by_meta"
    status, body = await daemon.request("POST", "/webhooks/cloud", headers=JSON,
                                        data=json.dumps(doc).encode())
    assert (status, body["events"]) == (200, 999)
    assert (await daemon.stats(campaign["uuid"]))["total_delivered_count"] == 999


@pytest.mark.parametrize("route", list(FIXTURE))
async def test_oversized_bodies_get_413(daemon_factory: Any, route: str):
    daemon = await daemon_factory(**{"server.max_body_bytes": 64 * 1024})
    uuid = await prepared(daemon, route)
    if route == "twilio":
        big = (fixture_bytes(FIXTURE[route]).decode() + "&Pad=" + "x" * 70_000).encode()
    else:
        big = fixture_bytes(FIXTURE[route]).replace(
            b"{", b'{"pad": "' + b"x" * 70_000 + b'", ', 1)
    error = await refused(daemon, route, big, uuid=uuid)
    assert (error["status"], error["code"]) == (413, "body_too_large")

    async def chunks() -> Any:  # no Content-Length: the limit holds while reading
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    seq = daemon.runtime.journal.next_seq
    async with ClientSession() as session, session.post(
            daemon.url(f"/webhooks/{route}"), data=chunks(),
            headers=FORM if route == "twilio" else JSON) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "body_too_large"
    assert daemon.runtime.journal.next_seq == seq
    status, _ = await daemon.request("GET", "/healthz")
    assert status == 200


@pytest.mark.parametrize("route", list(FIXTURE))
async def test_wrong_content_types_get_415(daemon: Daemon, route: str):
    uuid = await prepared(daemon, route)
    body = fixture_bytes(FIXTURE[route])
    wrong = ["application/xml", "text/html", "multipart/form-data; boundary=x",
             "application/octet-stream", "image/png"]
    wrong.append("application/json" if route == "twilio" else
                 "application/x-www-form-urlencoded")
    for ctype in wrong:
        error = await refused(daemon, route, body, {"Content-Type": ctype}, uuid=uuid)
        assert (error["status"], error["code"]) == (415, "unsupported_media_type"), ctype


async def test_hostile_query_strings_and_paths(daemon: Daemon):
    """Noise around a valid body does not matter; unknown routes are JSON 404s."""
    body = fixture_bytes(FIXTURE["webjs"])
    status, _ = await daemon.request("POST", "/webhooks/webjs?" + "a=1&" * 2000, data=body,
                                     headers=JSON)
    assert status == 200
    for path in ("/webhooks/" + quote("\u0000"), "/webhooks/webjs/../../api/campaigns",
                 "/webhooks/" + "x" * 4000, "/webhooks/WEBJS"):
        seq = daemon.runtime.journal.next_seq
        status, answer = await daemon.request("POST", path, data=body, headers=JSON)
        assert 400 <= status < 500 and "error" in answer, (path, status, answer)
        assert daemon.runtime.journal.next_seq == seq


async def test_duplicate_keys_take_the_last_value_like_the_gateways_json_parse(
        daemon: Daemon) -> None:
    """JSON allows repeated keys; campaignd reads them as JavaScript's JSON.parse does
    (the gateways are Node services): the last one counts, deterministically. A
    signature covers the raw bytes, so the repeat cannot slip past it either."""
    uuid = await prepared(daemon, "webjs")
    body = (b'{"event": "message_status_updated", "event": "message_read", "data": '
            b'{"message_id": "3EB0C767D8B4D5E3F0A1", "ack_level": 9, "ack_level": 2}}')
    status, answer = await daemon.request("POST", "/webhooks/webjs", data=body, headers=JSON)
    assert (status, answer["events"]) == (200, 1)
    stats = await daemon.stats(uuid)
    assert (stats["total_delivered_count"], stats["total_read_count"]) == (1, 0)
    # the other order: the bad value last is refused, naming the field
    error = await refused(daemon, "webjs", body.replace(b'"ack_level": 9, "ack_level": 2',
                                                        b'"ack_level": 2, "ack_level": 9'),
                          uuid=uuid)
    assert (error["status"], error["field"]) == (422, "data.ack_level")
