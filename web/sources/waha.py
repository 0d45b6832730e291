"""WAHA webhooks: `message.ack` (statuses) and `message` / `message.any` (what recipients
send, SPEC 6.1; `message.any` also carries our own messages: `fromMe` ones are dropped).
`payload.replyTo.id` is the bare id of a quoted message. Other WAHA events are accepted
and ignored."""

from __future__ import annotations

from typing import Any

from domain.events import StatusEvent
from domain.failures import Failure, short
from domain.phones import is_group
from domain.status import ACK_NUMBERINGS, Level, bare_message_id
from web.sources import (
    BadPayload,
    Event,
    ParseContext,
    epoch_seconds,
    integer,
    load_json,
    obj,
    text,
)
from web.sources.inbound import optional_text, quoted, reply, sender_number

MESSAGE_EVENTS = ("message", "message.any")

ACK_NAMES = {
    "ERROR": (Level.QUEUED, True),
    "PENDING": (Level.PENDING, False),
    "SERVER": (Level.SENT, False),
    "DEVICE": (Level.DELIVERED, False),
    "READ": (Level.READ, False),
    "PLAYED": (Level.PLAYED, False),
}


def parse(body: bytes, ctx: ParseContext) -> list[Event]:
    doc = obj(load_json(body), "body")
    event = text(doc.get("event"), "event")
    if event in MESSAGE_EVENTS:
        received = _message(obj(doc.get("payload"), "payload"), ctx)
        return [received] if received is not None else []
    if event != "message.ack":
        return []
    payload = obj(doc.get("payload"), "payload")
    if payload.get("fromMe") is False:
        return []
    message_id = text(payload.get("id"), "payload.id")
    assert message_id is not None
    if payload.get("ack") is not None:
        ack = integer(payload["ack"], "payload.ack")
        numbering = ACK_NUMBERINGS[ctx.ack_numbering]
        if ack not in numbering:
            raise BadPayload("payload.ack", f"{ack} is not a known ACK")
        level, failed = numbering[ack]
    else:
        name = text(payload.get("ackName"), "payload.ackName")
        if name not in ACK_NAMES:
            raise BadPayload("payload.ackName", f"{name!r} is not one of {', '.join(ACK_NAMES)}")
        level, failed = ACK_NAMES[name]
    recipient = payload.get("to") if isinstance(payload.get("to"), str) else None
    reason = failure = None
    if failed:
        error = payload.get("error")
        reason = str(error)[:500] if error else "ACK_ERROR reported by WAHA"
        failure = Failure("waha", "ack_error", short(error) if error else None, None)
    return [StatusEvent(bare_message_id(message_id), level, failed, ctx.now, reason, recipient,
                        failure)]


def _message(payload: dict[str, Any], ctx: ParseContext) -> Event | None:
    if payload.get("fromMe") is True:
        return None  # message.any: our own message
    sender = payload.get("from")
    if is_group(sender) or payload.get("participant"):
        return None
    message_id = text(payload.get("id"), "payload.id")
    assert message_id is not None
    number = sender_number(sender, "payload.from")
    when = epoch_seconds(payload.get("timestamp"), "payload.timestamp", ctx.now)
    body = optional_text(payload.get("body"), "payload.body")
    reply_to = payload.get("replyTo")
    if reply_to is not None and not isinstance(reply_to, dict):
        raise BadPayload("payload.replyTo", "must be an object")
    quote = quoted(reply_to.get("id"), "payload.replyTo.id") if reply_to else None
    return reply(ctx, "waha:" + bare_message_id(message_id), when, number,
                 quoted_id=quote, body=body)
