"""Every webhook source, parsed: the fixtures and the cases derived from them (SPEC 2.3, 3.1).

These call the parsers directly (they are pure functions); tests/test_webhooks.py posts
the same fixtures to a running daemon and checks the counters a user sees.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from domain.status import Level
from tests.conftest import fixture_bytes, fixture_json
from web.sources import BadPayload, ParseContext, cloud, evolution, twilio, waha, webjs

CTX = ParseContext(now=1_800_000_000.0)
BAILEYS = ParseContext(now=1_800_000_000.0, ack_numbering="baileys")


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


# --- whatsapp-web.js (the seed's service) ---------------------------------------------


def test_webjs_fixture_ack_2_is_delivered_not_sent():
    [event] = webjs.parse(fixture_bytes("webjs_message_status_updated.json"), CTX)
    assert event.message_id == "3EB0C767D8B4D5E3F0A1"  # serialized id reduced to the bare id
    assert (event.level, event.failed) == (Level.DELIVERED, False)
    # data.timestamp is the message's creation time, not the ACK's: receive time is used
    assert event.at == CTX.now


def test_webjs_read_fixture():
    [event] = webjs.parse(fixture_bytes("webjs_message_read.json"), CTX)
    assert (event.level, event.failed) == (Level.READ, False)
    assert event.recipient == "6281234567890@c.us"


@pytest.mark.parametrize(
    ("ack", "level", "failed"),
    [(-1, Level.QUEUED, True), (0, Level.PENDING, False), (1, Level.SENT, False),
     (2, Level.DELIVERED, False), (3, Level.READ, False), (4, Level.PLAYED, False)],
)
def test_webjs_every_ack_level(ack: int, level: int, failed: bool):
    doc = fixture_json("webjs_message_status_updated.json")
    doc["data"]["ack_level"] = ack
    doc["data"]["status"] = "whatever the seed mapping said"  # ack_level is the truth
    [event] = webjs.parse(dumps(doc), CTX)
    assert (event.level, event.failed) == (level, failed)


@pytest.mark.parametrize(
    ("ack", "level", "failed"),
    [(0, Level.QUEUED, True), (1, Level.PENDING, False), (2, Level.SENT, False),
     (3, Level.DELIVERED, False), (4, Level.READ, False), (5, Level.PLAYED, False)],
)
def test_webjs_baileys_numbering_option(ack: int, level: int, failed: bool):
    doc = fixture_json("webjs_message_status_updated.json")
    doc["data"]["ack_level"] = ack
    [event] = webjs.parse(dumps(doc), BAILEYS)
    assert (event.level, event.failed) == (level, failed)


def test_webjs_error_keeps_reason():
    doc = fixture_json("webjs_message_status_updated.json")
    doc["data"].update(ack_level=-1, error="Evaluation failed: invalid wid")
    [event] = webjs.parse(dumps(doc), CTX)
    assert event.failed and event.reason == "Evaluation failed: invalid wid"


def test_webjs_array_and_incoming_ignored():
    one = fixture_json("webjs_message_status_updated.json")
    incoming = json.loads(json.dumps(one))
    incoming["data"]["fromMe"] = False
    incoming["data"]["message_id"] = "false_6281234567890@c.us_AAAA"
    read = fixture_json("webjs_message_read.json")
    events = webjs.parse(dumps([one, incoming, read]), CTX)
    assert [(e.message_id, e.level) for e in events] == [
        ("3EB0C767D8B4D5E3F0A1", Level.DELIVERED), ("3EB0C767D8B4D5E3F0A1", Level.READ)]


def test_webjs_group_and_lid_ids_reduce_to_bare():
    doc = fixture_json("webjs_message_status_updated.json")
    doc["data"]["message_id"] = "true_120363000000000000@g.us_3EB0ABCDEF_6281234567890@c.us"
    assert webjs.parse(dumps(doc), CTX)[0].message_id == "3EB0ABCDEF"
    doc["data"]["message_id"] = "true_123456789012345@lid_3EB0FEDCBA"
    assert webjs.parse(dumps(doc), CTX)[0].message_id == "3EB0FEDCBA"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["data"].pop("message_id"), "data.message_id"),
        (lambda d: d["data"].update(message_id=12), "data.message_id"),
        (lambda d: d["data"].update(ack_level="2"), "data.ack_level"),
        (lambda d: d["data"].update(ack_level=9), "data.ack_level"),
        (lambda d: d["data"].update(ack_level=True), "data.ack_level"),
        (lambda d: d.update(event=12), "event"),  # unknown names are ignored, not refused
        (lambda d: d.update(data=[1]), "data"),
    ],
)
def test_webjs_bad_fields_are_named(mutate: Any, field: str):
    doc = fixture_json("webjs_message_status_updated.json")
    mutate(doc)
    with pytest.raises(BadPayload) as info:
        webjs.parse(dumps(doc), CTX)
    assert info.value.field == field


def test_webjs_bad_item_in_array_names_index():
    good = fixture_json("webjs_message_status_updated.json")
    bad = fixture_json("webjs_message_status_updated.json")
    bad["data"]["ack_level"] = "x"
    with pytest.raises(BadPayload) as info:
        webjs.parse(dumps([good, good, bad]), CTX)
    assert info.value.field == "[2].data.ack_level"


# --- WAHA ----------------------------------------------------------------------------


def test_waha_fixture_ack_3_is_read():
    [event] = waha.parse(fixture_bytes("waha_message_ack.json"), CTX)
    assert event.message_id == "4CC5EDD64BC22EBA6D639F2AF571346C"
    assert (event.level, event.failed) == (Level.READ, False)


@pytest.mark.parametrize(
    ("ack", "name", "level", "failed"),
    [(-1, "ERROR", Level.QUEUED, True), (0, "PENDING", Level.PENDING, False),
     (1, "SERVER", Level.SENT, False), (2, "DEVICE", Level.DELIVERED, False),
     (3, "READ", Level.READ, False), (4, "PLAYED", Level.PLAYED, False)],
)
def test_waha_every_ack(ack: int, name: str, level: int, failed: bool):
    doc = fixture_json("waha_message_ack.json")
    doc["payload"].update(ack=ack, ackName=name)
    [event] = waha.parse(dumps(doc), CTX)
    assert (event.level, event.failed) == (level, failed)
    doc["payload"].pop("ack")  # ackName alone is enough
    [event] = waha.parse(dumps(doc), CTX)
    assert (event.level, event.failed) == (level, failed)


def test_waha_incoming_and_other_events_ignored():
    doc = fixture_json("waha_message_ack.json")
    doc["payload"]["fromMe"] = False
    assert waha.parse(dumps(doc), CTX) == []
    doc = fixture_json("waha_message_ack.json")
    doc["event"] = "session.status"
    assert waha.parse(dumps(doc), CTX) == []


# --- Evolution API -------------------------------------------------------------------


def test_evolution_fixture_delivery_ack():
    [event] = evolution.parse(fixture_bytes("evolution_messages_update.json"), CTX)
    assert event.message_id == "A5561E44C2A63682E4295B52F484C14E"
    assert (event.level, event.failed) == (Level.DELIVERED, False)
    assert event.at == pytest.approx(1758749877.432)  # the webhook's date_time


@pytest.mark.parametrize(
    ("status", "expected"),
    [("ERROR", (Level.QUEUED, True)), ("PENDING", (Level.PENDING, False)),
     ("SERVER_ACK", (Level.SENT, False)), ("DELIVERY_ACK", (Level.DELIVERED, False)),
     ("READ", (Level.READ, False)), ("PLAYED", (Level.PLAYED, False)),
     ("SENT", (Level.SENT, False)), ("DELIVERED", (Level.DELIVERED, False)),
     ("FAILED", (Level.QUEUED, True)), ("DELETED", None)],
)
def test_evolution_every_status(status: str, expected: tuple[int, bool] | None):
    doc = fixture_json("evolution_messages_update.json")
    doc["data"]["status"] = status
    events = evolution.parse(dumps(doc), CTX)
    if expected is None:
        assert events == []  # DELETED is not a delivery status
    else:
        assert [(e.level, e.failed) for e in events] == [expected]


def test_evolution_incoming_ignored_and_list_data():
    doc = fixture_json("evolution_messages_update.json")
    item = doc["data"]
    incoming = {**item, "fromMe": False, "keyId": "INCOMING"}
    doc["data"] = [item, incoming, {**item, "keyId": "B2", "status": "READ"}]
    events = evolution.parse(dumps(doc), CTX)
    assert [(e.message_id, e.level) for e in events] == [
        ("A5561E44C2A63682E4295B52F484C14E", Level.DELIVERED), ("B2", Level.READ)]


# --- Meta Cloud API ------------------------------------------------------------------


def test_cloud_sent_fixture():
    [event] = cloud.parse(fixture_bytes("cloud_status_sent.json"), CTX)
    assert event.message_id.startswith("wamid.") and event.level == Level.SENT
    assert event.at == 1750030073.0  # the status's own timestamp (seconds as a string)


def test_cloud_failed_fixture_keeps_error():
    [event] = cloud.parse(fixture_bytes("cloud_status_failed.json"), CTX)
    assert event.failed and "131049" in (event.reason or "")


def _cloud_batch(statuses: list[dict[str, Any]], per_change: int = 3) -> dict[str, Any]:
    changes = [{"value": {"messaging_product": "whatsapp",
                          "statuses": statuses[i:i + per_change]}, "field": "messages"}
               for i in range(0, len(statuses), per_change)]
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": changes[:2]}, {"id": "2", "changes": changes[2:]}]}


def test_cloud_batch_across_entries_and_changes():
    statuses = [{"id": f"wamid.{i}", "status": s, "timestamp": str(1750000000 + i),
                 "recipient_id": "1650555"}
                for i, s in enumerate(["sent", "delivered", "read", "played", "failed"] * 4)]
    events = cloud.parse(dumps(_cloud_batch(statuses)), CTX)
    assert len(events) == 20
    assert sum(e.failed for e in events) == 4
    assert [e.level for e in events[:4]] == [Level.SENT, Level.DELIVERED, Level.READ,
                                            Level.PLAYED]


def test_cloud_unknown_status_skipped_and_messages_beside_statuses_parsed():
    doc = fixture_json("cloud_status_sent.json")
    value = doc["entry"][0]["changes"][0]["value"]
    value["messages"] = [{"from": "1650555", "id": "wamid.IN", "type": "text"}]
    value["statuses"].append({"id": "wamid.X", "status": "deleted", "timestamp": "1"})
    status, received = cloud.parse(dumps(doc), CTX)  # SPEC 6.1: both in one POST
    assert status.message_id != "wamid.X"
    assert received.inbound_id == "cloud:wamid.IN" and received.number == "1650555"


def test_cloud_one_bad_status_in_a_large_batch_refuses_the_whole_request():
    statuses = [{"id": f"wamid.{i}", "status": "delivered", "timestamp": "1750000000"}
                for i in range(1000)]
    statuses[637]["timestamp"] = {"not": "a time"}
    with pytest.raises(BadPayload) as info:
        cloud.parse(dumps(_cloud_batch(statuses, per_change=100)), CTX)
    assert info.value.field.endswith(".statuses[37].timestamp")


# --- Twilio --------------------------------------------------------------------------


def test_twilio_read_fixture():
    [event] = twilio.parse(fixture_bytes("twilio_status_read.form"), CTX)
    assert event.message_id == "SMxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    assert event.level == Level.READ and event.recipient == "+39XXXXXXXXXXX"


@pytest.mark.parametrize(
    ("status", "expected"),
    [("queued", (Level.PENDING, False)), ("sending", (Level.PENDING, False)),
     ("sent", (Level.SENT, False)), ("delivered", (Level.DELIVERED, False)),
     ("read", (Level.READ, False)), ("undelivered", (Level.SENT, True)),
     ("failed", (Level.QUEUED, True)), ("received", None)],
)
def test_twilio_every_status(status: str, expected: tuple[int, bool] | None):
    body = f"MessageSid=SM1&MessageStatus={status}&ErrorCode=63016".encode()
    events = twilio.parse(body, CTX)
    if expected is None:
        assert events == []
    else:
        assert [(e.level, e.failed) for e in events] == [expected]
        if expected[1]:
            assert "63016" in (events[0].reason or "")


def test_twilio_missing_sid_named():
    with pytest.raises(BadPayload) as info:
        twilio.parse(b"MessageStatus=sent", CTX)
    assert info.value.field == "MessageSid"
