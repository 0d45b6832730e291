"""Every inbound payload shape of every source, parsed (SPEC 6.1): the fixtures in
tests/fixtures/inbound, and the rules of the phone normaliser and the keywords.

The parsers are pure functions; tests/test_engagement_webhooks.py posts the same
fixtures to a running daemon and checks what a user sees.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import StatusEvent
from domain.inbound import (
    FAILURE,
    MESSAGE,
    PREFERENCE,
    REPLY,
    START,
    STOP,
    InboundEvent,
    Keywords,
    normalise_keyword,
)
from domain.phones import e164_digits, is_group, is_lid, number_key
from tests.conftest import fixture_json
from tests.examples import examples
from web.sources import BadPayload, ParseContext, cloud, evolution, twilio, waha, webjs

INBOUND = Path(__file__).resolve().parent / "fixtures" / "inbound"
CTX = ParseContext(now=1_800_000_000.0)
KEEP = ParseContext(now=1_800_000_000.0, keep_reply_text=True)
PARSERS = {"webjs": webjs.parse, "waha": waha.parse, "evolution": evolution.parse,
           "cloud": cloud.parse, "twilio": twilio.parse}


def inbound_bytes(name: str) -> bytes:
    return (INBOUND / name).read_bytes()


def inbound_json(name: str) -> Any:
    return json.loads(inbound_bytes(name))


def parse(name: str, ctx: ParseContext = CTX) -> list[Any]:
    return PARSERS[name.split("_", 1)[0]](inbound_bytes(name), ctx)


def one(name: str, ctx: ParseContext = CTX) -> InboundEvent:
    [event] = parse(name, ctx)
    assert isinstance(event, InboundEvent)
    return event


# (fixture, inbound id, number, quoted id, kind, button payload, button title)
CASES = [
    ("webjs_message_received.json", "webjs:3EB0989A15A804E110E557", "6281234567890", None,
     REPLY, None, None),
    ("webjs_message_received_quoted.json", "webjs:3EB0AAAA15A804E110E001", "6281234567890",
     "3EB0C767D8B4D5E3F0A1", REPLY, None, None),
    ("webjs_message_received_button.json", "webjs:3EB0FFFF15A804E110E006", "6281234567890",
     "3EB0C767D8B4D5E3F0A1", REPLY, "promo42:yes", "Ya, saya mau"),
    ("webjs_message_received_stop.json", "webjs:3EB0BBBB15A804E110E002", "6281234567891",
     None, STOP, None, None),
    ("webjs_message_received_lid.json", "webjs:3EB0CCCC15A804E110E003", None,
     "3EB0C767D8B4D5E3F0A1", REPLY, None, None),
    ("webjs_message_received_media.json", "webjs:3EB0EEEE15A804E110E005", "6281234567890",
     None, REPLY, None, None),
    ("waha_message_reply.json", "waha:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "22222222222",
     "BBBBBBBBBBBBBBB", REPLY, None, None),
    ("waha_message_plain.json", "waha:DDDDDDDDDDDDDDDD", "22222222222", None, REPLY, None,
     None),
    ("evolution_messages_upsert_quoted.json",
     "evolution:3EB062B8682B5BB8A17C89A682A8B06E7996CDB6", "5518980000001",
     "3EB0C7359AC49BF1CBF31CE90E655DD6DA16699B", REPLY, None, None),
    ("evolution_messages_upsert_flattened_reply.json",
     "evolution:3EB0FLAT00000000000000000000000000000001", "5518980000005",
     "3EB0C7359AC49BF1CBF31CE90E655DD6DA16699B", REPLY, None, None),
    ("evolution_messages_upsert_button.json",
     "evolution:3EB0A1B2C3D4E5F60718293A4B5C6D7E8F901234", "5518980000002",
     "3EB0C7359AC49BF1CBF31CE90E655DD6DA16699B", REPLY, "promo42:yes", "Quero"),
    ("evolution_messages_upsert_template_button.json",
     "evolution:3EB0TPL000000000000000000000000000000001", "5518980000004",
     "3EB0C7359AC49BF1CBF31CE90E655DD6DA16699B", STOP, "stop", "Stop promotions"),
    ("evolution_messages_upsert_list.json",
     "evolution:3EB0LIST00000000000000000000000000000001", "5518980000003",
     "3EB0C7359AC49BF1CBF31CE90E655DD6DA16699B", REPLY, "priority_express", "Express"),
    ("evolution_messages_upsert_cloud_button.json",
     "evolution:wamid.HBgNNTUxODk4MDAwMDAwNhUCABIYFjNFQjBCMEJCMEIwQjBCMEIwQjBCMAA=",
     "5518980000006", "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
     STOP, None, "Unsubscribe"),
    ("cloud_message_button_unsubscribe.json",
     "cloud:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=", "16505551234",
     "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=", STOP, "Unsubscribe",
     "Unsubscribe"),
    ("cloud_message_button_quick_reply.json",
     "cloud:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMQA=", "16505551234",
     "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=", REPLY, "camp42:yes",
     "Yes, send me the offer"),
    ("cloud_message_text.json", "cloud:wamid.ABGGFlA5FpafAgo6EHU4vUqKaC0y", "16315551181",
     None, REPLY, None, None),
    ("cloud_message_text_quoted.json", "cloud:wamid.ABGGFlA5FpafAgo6EHU4vUqKaC0z",
     "16315551181", "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA", REPLY, None,
     None),
    ("cloud_message_interactive_button_reply.json",
     "cloud:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMgA=", "16505551234",
     "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=", REPLY, "cancel-button",
     "Cancel"),
    ("cloud_message_interactive_list_reply.json",
     "cloud:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMwA=", "16505551234",
     "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=", REPLY,
     "priority_express", "Priority Mail Express"),
    ("cloud_message_reaction.json", "cloud:wamid.ABGGFlA5FpafAgo6EHU4vUqKaC11", "16315551181",
     "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA", REPLY, None, None),
    ("twilio_inbound_button.form", "twilio:SM8824d91645395b17594d92659b878468", "6285176810035",
     "MM5cc44eecf7dab0d48d4529d0fa4af44d", REPLY, "{verifyEmail:asd@asd.com}", "Konfirmasi"),
    ("twilio_inbound_text.form", "twilio:SM1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d", "6285176810035",
     None, STOP, None, None),
    ("twilio_inbound_quoted.form", "twilio:SM9f8e7d6c5b4a39281706f5e4d3c2b1a0",
     "6285176810035", "SMxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", REPLY, None, None),
]


@pytest.mark.parametrize(("name", "inbound_id", "number", "quoted_id", "kind", "payload",
                          "title"), CASES, ids=[c[0] for c in CASES])
def test_every_inbound_fixture(name, inbound_id, number, quoted_id, kind, payload, title):
    event = one(name)
    assert event.inbound_id == inbound_id
    assert event.number == number
    assert event.quoted_id == quoted_id
    assert event.kind == kind and event.via == MESSAGE
    assert (event.button_payload, event.button_title) == (payload, title)
    assert event.text is None  # engagement.keep_reply_text is off by default
    assert (event.reason is None) == (kind == REPLY)


IGNORED = ["webjs_message_received_group.json", "webjs_message_received_from_me.json",
           "waha_message_any_from_me.json", "evolution_messages_upsert_from_me.json",
           "evolution_messages_upsert_group.json", "cloud_message_system.json"]


@pytest.mark.parametrize("name", IGNORED)
def test_own_messages_groups_and_system_messages_are_ignored(name):
    assert parse(name) == []


def test_provider_times_are_kept():
    assert one("webjs_message_received.json").at == 1763092305
    assert one("waha_message_reply.json").at == 1667561485
    assert one("evolution_messages_upsert_quoted.json").at == 1749662152
    assert one("cloud_message_text.json").at == 1750091200
    assert one("twilio_inbound_text.form").at == CTX.now  # Twilio sends no time


def test_webjs_workspace_and_reply_text_only_when_kept():
    event = one("webjs_message_received.json", KEEP)
    assert event.workspace_id == 1 and event.text == "Boleh info harganya?"
    assert one("webjs_message_received_media.json", KEEP).text == "bukti transfer"
    assert one("cloud_message_text.json", KEEP).text == "Is this offer still valid?"


def test_webjs_media_is_never_decoded_or_kept():
    event = one("webjs_message_received_media.json", KEEP)
    assert "iVBOR" not in repr(event)  # the base64 is not in the event (nor the journal)


def test_webjs_inbound_beside_statuses_in_one_array():
    doc = [fixture_json("webjs_message_status_updated.json"),
           inbound_json("webjs_message_received.json")]
    events = webjs.parse(json.dumps(doc).encode(), CTX)
    assert [type(e) for e in events] == [StatusEvent, InboundEvent]


def test_cloud_statuses_and_messages_in_one_post():
    events = parse("cloud_statuses_and_messages.json")
    assert [type(e) for e in events] == [StatusEvent, InboundEvent]
    assert events[1].inbound_id == "cloud:wamid.ABGGFlA5FpafAgo6EHU4vUqKaC10"


def test_cloud_user_preferences_stop_and_resume():
    stop = one("cloud_user_preferences_stop.json")
    resume = one("cloud_user_preferences_resume.json")
    assert (stop.kind, stop.via, stop.number) == (STOP, PREFERENCE, "16505551234")
    assert (resume.kind, resume.via, resume.at) == (START, PREFERENCE, 1731705721)
    assert stop.quoted_id is None and stop.inbound_id != resume.inbound_id
    assert "stopped marketing" in stop.reason


def test_cloud_failure_131050_is_an_opt_out_of_that_message():
    status, stop = parse("cloud_status_failed_131050.json")
    assert isinstance(status, StatusEvent) and status.failed
    assert (stop.kind, stop.via) == (STOP, FAILURE)
    assert stop.quoted_id == status.message_id and stop.number == "6283180783170"
    assert "131050" in stop.reason


def test_cloud_other_failures_are_not_opt_outs():
    doc = inbound_json("cloud_status_failed_131050.json")
    doc["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]["code"] = 131026
    assert [type(e) for e in cloud.parse(json.dumps(doc).encode(), CTX)] == [StatusEvent]


def test_twilio_status_callbacks_are_still_statuses():
    form = ("MessageSid=SMabc&MessageStatus=undelivered&ErrorCode=131050"
            "&To=whatsapp%3A%2B6281234567890&SmsStatus=undelivered")
    status, stop = twilio.parse(form.encode(), CTX)
    assert isinstance(status, StatusEvent) and status.failed
    assert (stop.via, stop.quoted_id, stop.number) == (FAILURE, "SMabc", "6281234567890")
    delivered = "MessageSid=SMabc&MessageStatus=delivered&SmsStatus=delivered&Body=x&From=y"
    assert [type(e) for e in twilio.parse(delivered.encode(), CTX)] == [StatusEvent]


@pytest.mark.parametrize(("code", "stops"), [
    ("131050", True), ("63014", True), ("21610", True),  # opted_out in domain/failures.py
    ("63016", False), ("63003", False), ("", False)])
def test_a_failure_is_a_stop_when_the_failure_table_says_opted_out(code: str,
                                                                    stops: bool) -> None:
    """One list of opt-out codes: the failure table's `opted_out` category (SPEC 7.1)."""
    form = ("MessageSid=SMcode&MessageStatus=undelivered&To=whatsapp%3A%2B6281234567890"
            f"&ErrorCode={code}&ErrorMessage=x")
    events = twilio.parse(form.encode(), CTX)
    assert events[0].failure is not None and events[0].failure.code == (code or None)
    assert [(e.kind, e.via, e.quoted_id) for e in events[1:]] == (
        [(STOP, FAILURE, "SMcode")] if stops else [])
    if stops:
        assert code in events[1].reason


def test_keyword_stop_is_a_whole_message_match():
    keywords = Keywords()
    assert keywords.kind_of_text(" stop! ") == STOP
    assert keywords.kind_of_text("Berhenti.") == STOP
    assert keywords.kind_of_text("opt-out") == STOP
    assert keywords.kind_of_text("Please stop") == REPLY  # inside a sentence: a reply
    assert keywords.kind_of_text("stop the promo please") == REPLY
    assert keywords.kind_of_text("MULAI") == START
    assert keywords.kind_of_button("Unsubscribe", "Unsubscribe") == STOP
    assert keywords.kind_of_button("camp:42", "Stop promotions") == STOP
    assert keywords.kind_of_button("yes", "Yes please") == REPLY
    custom = Keywords(stop=["keluar"], start=["gabung"])
    assert custom.kind_of_text("KELUAR") == STOP and custom.kind_of_text("stop") == REPLY
    assert normalise_keyword("S.T.O.P") == "STOP"


@settings(max_examples=examples(500), deadline=None)
@given(st.one_of(st.text(max_size=12), st.text(st.characters(max_codepoint=127), max_size=12)))
def test_keywords_are_normalised_the_same_on_the_ascii_shortcut(text: str) -> None:
    """ASCII text takes a C-speed path; it must give what NFKC + casefold give."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    assert normalise_keyword(text) == "".join(ch for ch in folded if ch.isalnum()).upper()


def test_configured_keywords_reach_the_parser():
    ctx = ParseContext(now=1.0, keywords=Keywords(stop=["keluar"]))
    doc = inbound_json("webjs_message_received.json")
    doc["data"]["message"]["body"] = "Keluar!"
    [event] = webjs.parse(json.dumps(doc).encode(), ctx)
    assert event.kind == STOP


@pytest.mark.parametrize(("value", "digits"), [
    ("6281234567890@c.us", "6281234567890"),
    ("6281234567890@s.whatsapp.net", "6281234567890"),
    ("6281234567890:12@s.whatsapp.net", "6281234567890"),
    ("whatsapp:+6281234567890", "6281234567890"),
    ("+62 812-3456-7890", "6281234567890"),
    ("0062 812 3456 7890", "6281234567890"),
    ("006281234567890", "6281234567890"),  # bare digits, but an international prefix
    ("16505551234", "16505551234"),
    ("1234567", "1234567"),
    ("(+1) 650.555.1234", "16505551234"),
    ("123456789012345@lid", None),
    ("120363025246125888@g.us", None),
    ("status@broadcast", None),
    ("62812", None),  # too short for E.164
    ("1234567890123456", None),  # too long
    ("+62 abc", None),
    ("", None),
])
def test_phone_numbers_become_e164_digits(value, digits):
    assert e164_digits(value) == digits


def test_lid_and_groups_are_told_apart():
    assert is_lid("123@lid") and not is_lid("628@c.us")
    assert is_group("1203@g.us") and is_group("status@broadcast") and not is_group("62@c.us")
    assert number_key("6281234567890") == number_key("6281234567890") != number_key("628")


HOSTILE = [
    ("webjs", {"event": "message_received", "data": {"message": "x"}}, "data.message"),
    ("webjs", {"event": "message_received", "data": {"message": {"id": "A", "from": 5}}},
     "data.message.from"),
    ("webjs", {"event": "message_received", "data": {"message": {"id": "A",
                                                                 "from": "hello"}}},
     "data.message.from"),
    ("webjs", {"event": "message_received", "data": {"workspace_id": [1], "message": {}}},
     "data.workspace_id"),
    ("webjs", {"event": "message_received", "data": {"message": {
        "id": "A", "from": "6281234567890@c.us", "body": {"x": 1}}}}, "data.message.body"),
    ("webjs", {"event": "message_received", "data": {"message": {
        "id": "A", "from": "6281234567890@c.us", "timestamp": "soon"}}},
     "data.message.timestamp"),
    ("waha", {"event": "message", "payload": {"id": "A", "from": "1@c.us"}}, "payload.from"),
    ("waha", {"event": "message", "payload": {"id": "A", "from": "6281234567890@c.us",
                                              "replyTo": "B"}}, "payload.replyTo"),
    ("evolution", {"event": "messages.upsert", "data": {"key": "k"}}, "data.key"),
    ("evolution", {"event": "messages.upsert", "data": {"key": {
        "remoteJid": "6281234567890@s.whatsapp.net", "id": "A"}, "message": []}},
     "data.message"),
    ("cloud", {"entry": [{"changes": [{"value": {"messages": {}}}]}]},
     "entry[0].changes[0].value.messages"),
    ("cloud", {"entry": [{"changes": [{"value": {"messages": [{"id": "w", "type": "text",
                                                                "from": None}]}}]}]},
     "entry[0].changes[0].value.messages[0].from"),
    ("cloud", {"entry": [{"changes": [{"value": {"messages": [{"id": "w", "type": "button",
                                                                "from": "16505551234",
                                                                "button": 3}]}}]}]},
     "entry[0].changes[0].value.messages[0].button"),
    ("cloud", {"entry": [{"changes": [{"value": {"user_preferences": [{"wa_id": "x"}]}}]}]},
     "entry[0].changes[0].value.user_preferences[0].wa_id"),
    ("cloud", {"entry": [{"changes": [{"value": {"contacts": [7]}}]}]},
     "entry[0].changes[0].value.contacts[0]"),
]


@pytest.mark.parametrize(("source", "doc", "field"), HOSTILE)
def test_hostile_inbound_bodies_name_the_field(source, doc, field):
    with pytest.raises(BadPayload) as info:
        PARSERS[source](json.dumps(doc).encode(), CTX)
    assert info.value.field == field


def test_hostile_twilio_inbound():
    with pytest.raises(BadPayload) as info:
        twilio.parse(b"MessageSid=SM1&SmsStatus=received&From=hello&Body=x", CTX)
    assert info.value.field == "From"
