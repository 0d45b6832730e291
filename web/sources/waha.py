"""WAHA `message.ack` webhooks. Other WAHA events are accepted and ignored."""

from __future__ import annotations

from domain.events import StatusEvent
from domain.failures import Failure, short
from domain.status import ACK_NUMBERINGS, Level, bare_message_id
from web.sources import BadPayload, ParseContext, integer, load_json, obj, text

ACK_NAMES = {
    "ERROR": (Level.QUEUED, True),
    "PENDING": (Level.PENDING, False),
    "SERVER": (Level.SENT, False),
    "DEVICE": (Level.DELIVERED, False),
    "READ": (Level.READ, False),
    "PLAYED": (Level.PLAYED, False),
}


def parse(body: bytes, ctx: ParseContext) -> list[StatusEvent]:
    doc = obj(load_json(body), "body")
    event = text(doc.get("event"), "event")
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
