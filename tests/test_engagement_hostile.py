"""Hostile inbound bodies on every source (SPEC 5, 6.1): malformed documents built from
each inbound fixture, every leaf replaced by each wrong type, hostile Twilio forms, and
hostile large bodies on the streamed webjs path. Each refusal is a 4xx JSON error and
journals nothing; nothing is ever a 5xx.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Daemon
from tests.test_hostile_webhooks import (
    HOSTILE_STRINGS,
    JSON,
    WRONG_TYPES,
    body_cases,
    dotted,
    leaves,
    refused,
    replaced,
)
from tests.test_inbound_sources import inbound_bytes

FIXTURES = {
    "webjs": ["webjs_message_received_quoted.json", "webjs_message_received_button.json"],
    "waha": ["waha_message_reply.json"],
    "evolution": ["evolution_messages_upsert_button.json",
                  "evolution_messages_upsert_flattened_reply.json"],
    "cloud": ["cloud_message_button_quick_reply.json", "cloud_user_preferences_stop.json",
              "cloud_message_interactive_list_reply.json"],
}
# The fields an inbound message is counted by: a wrong type there names the field.
KEY_FIELDS = {
    "webjs_message_received_quoted.json": [("data", "message"), ("data", "message", "id"),
                                           ("data", "message", "from")],
    "waha_message_reply.json": [("payload",), ("payload", "id"), ("payload", "from")],
    "evolution_messages_upsert_button.json": [("data", "key"), ("data", "key", "id")],
    "cloud_message_button_quick_reply.json": [
        ("entry", 0, "changes", 0, "value", "messages", 0, "id"),
        ("entry", 0, "changes", 0, "value", "messages", 0, "from"),
        ("entry", 0, "changes", 0, "value", "messages", 0, "button")],
    "cloud_user_preferences_stop.json": [
        ("entry", 0, "changes", 0, "value", "user_preferences", 0, "wa_id")],
}
CASES = [(route, name) for route, names in FIXTURES.items() for name in names]


def original(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


async def prepared(daemon: Daemon) -> str:
    """A campaign whose messages the fixtures answer, so a wrong apply would show."""
    await daemon.create_campaign(uuid="target")
    await daemon.register("target", [
        {"recipient": "6281234567890", "message_id": "3EB0C767D8B4D5E3F0A1"},
        {"recipient": "22222222222", "message_id": "BBBBBBBBBBBBBBB"},
        {"recipient": "5518980000002",
         "message_id": "3EB0C7359AC49BF1CBF31CE90E655DD6DA16699B"},
        {"recipient": "16505551234",
         "message_id": "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="}])
    return "target"


@pytest.mark.parametrize(("route", "name"), CASES, ids=[c[1] for c in CASES])
async def test_malformed_inbound_bodies_are_refused(daemon: Daemon, route: str, name: str):
    uuid = await prepared(daemon)
    raw = inbound_bytes(name)
    for case, body in body_cases(raw):
        error = await refused(daemon, route, body, uuid=uuid)
        assert error["code"] == "invalid_payload", (case, error)
    status, body = await daemon.request("POST", f"/webhooks/{route}", data=raw, headers=JSON)
    assert (status, body["events"]) == (200, 1)


@pytest.mark.parametrize(("route", "name"), CASES, ids=[c[1] for c in CASES])
async def test_wrong_types_at_every_inbound_field(daemon: Daemon, route: str, name: str):
    await prepared(daemon)
    doc = json.loads(inbound_bytes(name))
    key_fields = set(KEY_FIELDS.get(name, []))
    rt = daemon.runtime
    for path in list(leaves(doc)) + sorted(key_fields, key=str):
        for value in [*WRONG_TYPES, *HOSTILE_STRINGS]:
            body = json.dumps(replaced(doc, path, value)).encode()
            seq = rt.journal.next_seq
            status, answer = await daemon.request("POST", f"/webhooks/{route}", data=body,
                                                  headers=JSON)
            where = (name, dotted(path), repr(value)[:40], status, answer)
            assert status < 500, where
            if status >= 400:
                assert answer["error"]["message"] and rt.journal.next_seq == seq, where
            is_object = isinstance(original(doc, path), dict)
            if path in key_fields and not isinstance(value, (str, type(None))) and not (
                    is_object and isinstance(value, dict)):
                # an object where one is expected is refused naming it (or its member)
                assert 400 <= status < 500, where
                assert answer["error"]["field"].startswith(dotted(path)), where


async def test_hostile_twilio_inbound_forms(daemon: Daemon):
    uuid = await prepared(daemon)
    good = inbound_bytes("twilio_inbound_button.form").decode()
    cases = [
        ("not a phone number", good.replace("From=whatsapp%3A%2B6285176810035",
                                            "From=whatsapp%3Ahello")),
        ("NUL in the quoted sid", good.replace("OriginalRepliedMessageSid=MM5c",
                                               "OriginalRepliedMessageSid=MM%005c")),
        ("a 100,000-character body", good.replace("Body=Konfirmasi", "Body=" + "x" * 100_000)),
        ("newline in the sid", good.replace("MessageSid=SM8824", "MessageSid=SM%0A8824")),
    ]
    for case, body in cases:
        error = await refused(daemon, "twilio", body.encode(), uuid=uuid)
        assert error["code"] == "invalid_payload", (case, error)
    status, _ = await daemon.request("POST", "/webhooks/twilio", data=good.encode(),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200


def big(prefix: bytes, size: int, suffix: bytes) -> Any:
    async def chunks() -> Any:
        yield prefix
        for _ in range(size // 65536):
            yield b"A" * 65536
        yield suffix
    return chunks()


async def test_hostile_streamed_webjs_bodies(daemon: Daemon):
    """Bodies over 256 KiB take the streamed path: the same refusals, never a 5xx."""
    uuid = await prepared(daemon)
    doc = json.loads(inbound_bytes("webjs_message_received_media.json"))
    doc["data"]["message"]["media"]["data"] = "@@"
    head, tail = json.dumps(doc).encode().split(b"@@")
    one_mib = 1024 * 1024
    cases = [
        ("unterminated media string", big(head, one_mib, b"")),
        ("truncated after the media", big(head, one_mib, tail[:5])),
        ("garbage after the document", big(head, one_mib, tail + b" x")),
        ("a huge number outside strings", big(b'{"event": "message_received", "n": 1',
                                              one_mib, b"}")),
        ("the media where the event name goes", big(b'{"event": "', one_mib,
                                                    b'", "data": {}}')),
        ("invalid UTF-8 in a short string", big(head.replace(
            b'"bukti transfer"', b'"\xc3\x28"'), one_mib, tail)),
    ]
    rt = daemon.runtime
    for case, body in cases:
        seq = rt.journal.next_seq
        before = await daemon.stats(uuid)
        async with daemon.session.post(daemon.url("/webhooks/webjs"), data=body,
                                       headers=JSON) as resp:
            answer = await resp.json()
            assert 400 <= resp.status < 500, (case, resp.status, answer)
            assert answer["error"]["code"] in ("invalid_payload", "body_too_large"), case
        assert rt.journal.next_seq == seq and await daemon.stats(uuid) == before, case
    # the well-formed large one goes through
    async with daemon.session.post(daemon.url("/webhooks/webjs"),
                                   data=big(head, one_mib, tail), headers=JSON) as resp:
        assert resp.status == 200 and (await resp.json())["events"] == 1
