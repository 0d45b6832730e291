"""whatsapp-web.js services such as the seed's: {"event": E, "data": {...}} or an array.

The seed's service posts every event it has to this one URL (sessions, QR codes, typing,
...): an event name we do not use is ignored (noted in the context), never refused.

`ack_level` is the truth when present (whatsapp-web.js numbering by default, Baileys'
by configuration). Without it, `message_delivered` / `message_read` name their level,
and `status` is read with our own names. `data.timestamp` is the message's creation
time, not the ACK's, so the receive time is used.
"""

from __future__ import annotations

from typing import Any

from domain.events import StatusEvent
from domain.failures import Failure, clean_code, from_text, short
from domain.status import ACK_NUMBERINGS, Level, bare_message_id, parse_status_name
from web.sources import BadPayload, ParseContext, integer, load_json, obj, text

EVENTS = ("message_status_updated", "message_delivered", "message_read")
MAX_ITEMS = 1000


def parse(body: bytes, ctx: ParseContext) -> list[StatusEvent]:
    doc = load_json(body)
    if isinstance(doc, list):
        if not doc:
            raise BadPayload("", "the array is empty")
        if len(doc) > MAX_ITEMS:
            raise BadPayload("", f"at most {MAX_ITEMS} events per request")
        items = [(f"[{i}]", item) for i, item in enumerate(doc)]
    else:
        items = [("", doc)]
    events = []
    for prefix, item in items:
        event = _one(item, prefix, ctx)
        if event is not None:
            events.append(event)
    return events


def _one(item: Any, prefix: str, ctx: ParseContext) -> StatusEvent | None:
    item = obj(item, prefix or "body")
    name = text(item.get("event"), f"{prefix}.event".lstrip("."))
    if name not in EVENTS:  # the seed posts ALL its events here: not ours, not an error
        ctx.ignored.append(name)
        return None
    data = obj(item.get("data"), f"{prefix}.data".lstrip("."))
    at = f"{prefix}.data.".lstrip(".")
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
