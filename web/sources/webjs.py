"""whatsapp-web.js services such as the seed's: {"event": E, "data": {...}} or an array.

The seed's service posts every event it has to this one URL (sessions, QR codes, typing,
...): an event name we do not use is ignored (noted in the context), never refused.

`ack_level` is the truth when present (whatsapp-web.js numbering by default, Baileys'
by configuration). Without it, `message_delivered` / `message_read` name their level,
and `status` is read with our own names. `data.timestamp` is the message's creation
time, not the ACK's, so the receive time is used.

`message_received` (SPEC 6.1) is a recipient's message: `data.message` with `from`,
`body`, `timestamp`, `from_me`, `chat_type`, maybe `quoted_message_id` (or whatsapp-web.js
`_data.quotedStanzaID`) and a `media` object whose base64 `data` can be megabytes; the
route streams such bodies and blanks that string before it gets here
(web/bigbody.py), and nothing here reads or decodes it. Our own messages (`from_me`),
group chats and status broadcasts are ignored.
"""

from __future__ import annotations

from typing import Any

from domain.events import StatusEvent
from domain.failures import Failure, clean_code, from_text, short
from domain.phones import is_group
from domain.status import ACK_NUMBERINGS, Level, bare_message_id, parse_status_name
from web.sources import (
    BadPayload,
    Event,
    ParseContext,
    epoch_seconds,
    integer,
    load_json,
    obj,
    plain_text,
    text,
)
from web.sources.inbound import optional_text, quoted, reply, sender_number, workspace

STATUS_EVENTS = ("message_status_updated", "message_delivered", "message_read")
INBOUND_EVENTS = ("message_received",)
EVENTS = STATUS_EVENTS + INBOUND_EVENTS
MAX_ITEMS = 1000
# whatsapp-web.js message types that are a tapped button or a picked list row.
BUTTON_TYPES = ("buttons_response", "template_button_reply", "list_response", "interactive")


def parse(body: bytes, ctx: ParseContext) -> list[Event]:
    doc = load_json(body)
    if doc.__class__ is dict:  # one event per request, as the seed's service posts them
        event = _plain_status(doc, ctx)
        if event is not None:
            return [event]
    if isinstance(doc, list):
        if not doc:
            raise BadPayload("", "the array is empty")
        if len(doc) > MAX_ITEMS:
            raise BadPayload("", f"at most {MAX_ITEMS} events per request")
        items = [(f"[{i}]", item) for i, item in enumerate(doc)]
    else:
        items = [("", doc)]
    events: list[Event] = []
    for prefix, item in items:
        event = _one(item, prefix, ctx)
        if event is not None:
            events.append(event)
    return events


PLAIN_EVENTS = frozenset(STATUS_EVENTS)
NAMED_LEVELS = {"message_delivered": Level.DELIVERED, "message_read": Level.READ}


def _plain_status(item: dict[str, Any], ctx: ParseContext) -> StatusEvent | None:
    """The usual single status (an ACK that did not fail, its id plain, no recipient, no
    error) without the careful walk's field-by-field checks and messages: one webhook
    request each is the hot path (SPEC 4). None for anything else, which `_one` then
    takes (and names the field at fault); both give the same event where this one
    answers (tests/test_webjs_plain.py)."""
    name = item.get("event")
    if name.__class__ is not str or name not in PLAIN_EVENTS:
        return None
    data = item.get("data")
    if data.__class__ is not dict or "fromMe" in data or data.get("recipient") is not None \
            or data.get("error") is not None:
        return None
    message_id = data.get("message_id")
    if not plain_text(message_id):
        return None
    ws = data.get("workspace_id")
    if ws is not None and ws.__class__ is not int and ws.__class__ is not str:
        return None
    ack = data.get("ack_level")
    if ack.__class__ is int:
        hit = ACK_NUMBERINGS[ctx.ack_numbering].get(ack)
        if hit is None or hit[1]:
            return None
        level = hit[0]
    elif ack is None and name in NAMED_LEVELS:
        level = NAMED_LEVELS[name]
    else:
        return None
    return StatusEvent(bare_message_id(message_id), level, False, ctx.now, None, None)


def _one(item: Any, prefix: str, ctx: ParseContext) -> Event | None:
    item = obj(item, prefix or "body")
    name = text(item.get("event"), f"{prefix}.event".lstrip("."))
    if name not in EVENTS:  # the seed posts ALL its events here: not ours, not an error
        ctx.ignored.append(name)
        return None
    data = obj(item.get("data"), f"{prefix}.data".lstrip("."))
    at = f"{prefix}.data.".lstrip(".")
    if name in INBOUND_EVENTS:
        received = _received(data, at, ctx)
        if received is None:  # our own message, a group's: accepted, not counted
            ctx.ignored.append(name)
        return received
    if data.get("fromMe") is False:
        return None  # message_ack fires for incoming messages too
    message_id = text(data.get("message_id"), at + "message_id")
    assert message_id is not None
    recipient = text(data.get("recipient"), at + "recipient", required=False)
    if "workspace_id" in data and data["workspace_id"] is not None:
        ws = data["workspace_id"]
        if isinstance(ws, bool) or not isinstance(ws, (int, str)):
            raise BadPayload(at + "workspace_id", "must be an integer")
    error = data.get("error")
    if error is not None and not isinstance(error, (str, dict)):
        raise BadPayload(at + "error", "must be a string or an object")
    reason = _reason(error)
    if data.get("ack_level") is not None:
        ack = integer(data["ack_level"], at + "ack_level")
        numbering = ACK_NUMBERINGS[ctx.ack_numbering]
        if ack not in numbering:
            raise BadPayload(at + "ack_level",
                             f"{ack} is not a known ACK ({min(numbering)}..{max(numbering)})")
        level, failed = numbering[ack]
    elif name == "message_delivered":
        level, failed = Level.DELIVERED, False
    elif name == "message_read":
        level, failed = Level.READ, False
    else:
        status = text(data.get("status"), at + "status")
        assert status is not None
        parsed = parse_status_name(status)
        if parsed is None:
            raise BadPayload(at + "status", f"{status!r} is not a known status")
        level, failed = parsed
    if not failed:
        return StatusEvent(bare_message_id(message_id), level, failed, ctx.now, None, recipient)
    failure = _failure(error)
    if reason is None:
        reason = "error reported by the gateway"
    return StatusEvent(bare_message_id(message_id), level, failed, ctx.now, reason, recipient,
                       failure)


def _failure(error: Any) -> Failure:
    """The service's `error` as fields; an ACK error without one is `ack_error`."""
    if isinstance(error, dict):
        code = clean_code(error.get("code"))
        title = short(error.get("message") or error.get("title"))
        if code or title:
            return Failure("webjs", code or "ack_error", title, short(error.get("details")))
    elif isinstance(error, str) and error.strip():
        parsed = from_text(error, "webjs")
        return parsed if parsed.code else Failure("webjs", "ack_error", parsed.title, None)
    return Failure("webjs", "ack_error", None, None)


def _reason(error: Any) -> str | None:
    if error is None:
        return None
    if isinstance(error, str):
        return error[:500] or None
    message = error.get("message") or error.get("title") or error.get("code")
    return str(message)[:500] if message is not None else None


def _received(data: dict[str, Any], at: str, ctx: ParseContext) -> Event | None:
    """A recipient's message; None for our own, a group's or a status broadcast."""
    ws = workspace(data.get("workspace_id"), at + "workspace_id")
    message = obj(data.get("message"), at + "message")
    at += "message."
    if message.get("from_me") is True or message.get("fromMe") is True:
        return None
    sender = message.get("from")
    if message.get("chat_type") == "group" or message.get("group_id") or is_group(sender):
        return None
    message_id = text(message.get("id"), at + "id")
    assert message_id is not None
    number = sender_number(sender, at + "from")
    when = epoch_seconds(message.get("timestamp"), at + "timestamp", ctx.now)
    body = optional_text(message.get("body"), at + "body")
    raw = message.get("_data") if isinstance(message.get("_data"), dict) else {}
    quote = quoted(message.get("quoted_message_id") or message.get("quotedStanzaID")
                   or raw.get("quotedStanzaID"), at + "quoted_message_id")
    payload = title = None
    if message.get("type") in BUTTON_TYPES:
        list_reply = raw.get("listResponse") if isinstance(raw.get("listResponse"), dict) else {}
        single = list_reply.get("singleSelectReply")
        picked = (message.get("selectedButtonId") or message.get("selectedRowId")
                  or raw.get("selectedButtonId")
                  or (single.get("selectedRowId") if isinstance(single, dict) else None))
        payload = optional_text(picked, at + "selectedButtonId", 1024)
        title = body
    return reply(ctx, "webjs:" + bare_message_id(message_id), when, number, workspace_id=ws,
                 quoted_id=quote, body=body, button_payload=payload, button_title=title)
