"""Evolution API `messages.update` (Baileys statuses, and its Cloud-API channel's) and
`messages.upsert` (what recipients send, SPEC 6.1).

`data` may be one object or an array of them. Statuses that are not delivery statuses
(DELETED, edits) are skipped. The event time is the webhook's `date_time` when given.
An upsert's quote link is `data.contextInfo.stanzaId`, or the content node's own
`contextInfo` (some Evolution versions lose the top-level one); buttons, template
buttons and list rows come from the Baileys message; the Cloud-API channel keeps only
a button's title (`buttonMessage` / `interactiveMessage` with the title as text).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.events import StatusEvent
from domain.failures import Failure
from domain.phones import is_group
from domain.status import EVOLUTION_STATUS, bare_message_id
from web.sources import BadPayload, Event, ParseContext, epoch_seconds, load_json, obj, text
from web.sources.inbound import optional_text, quoted, reply, sender_number

EVENT_NAMES = ("messages.update", "MESSAGES_UPDATE", "messages_update")
UPSERT_NAMES = ("messages.upsert", "MESSAGES_UPSERT", "messages_upsert")
# Content nodes whose text is a caption or a body (Baileys proto names).
TEXT_NODES = (("extendedTextMessage", "text"), ("imageMessage", "caption"),
              ("videoMessage", "caption"), ("documentMessage", "caption"))
CLOUD_BUTTON_TYPES = ("buttonMessage", "interactiveMessage")


def parse(body: bytes, ctx: ParseContext) -> list[Event]:
    doc = obj(load_json(body), "body")
    event = text(doc.get("event"), "event")
    if event in UPSERT_NAMES:
        return _upserts(doc, ctx)
    if event not in EVENT_NAMES:
        return []
    at = _time(doc.get("date_time"), ctx.now)
    data = doc.get("data")
    items = data if isinstance(data, list) else [data]
    events: list[Event] = []
    for i, item in enumerate(items):
        prefix = f"data[{i}]" if isinstance(data, list) else "data"
        item = obj(item, prefix)
        if item.get("fromMe") is False:
            continue
        key = item.get("key") if isinstance(item.get("key"), dict) else {}
        message_id = text(item.get("keyId") or key.get("id"), f"{prefix}.keyId")
        assert message_id is not None
        status = text(item.get("status"), f"{prefix}.status")
        assert status is not None
        mapped = EVOLUTION_STATUS.get(status.upper())
        if mapped is None:
            continue  # DELETED and other non-delivery updates
        level, failed = mapped
        recipient = item.get("remoteJid") if isinstance(item.get("remoteJid"), str) else None
        reason = failure = None
        if failed:
            reason = "ERROR reported by Evolution API"
            # ERROR is Baileys' ACK error; FAILED (its Cloud-API channel) carries no code.
            failure = Failure("evolution", "ack_error" if status.upper() == "ERROR" else None,
                              f"{status.upper()} reported by Evolution API", None)
        events.append(StatusEvent(bare_message_id(message_id), level, failed, at, reason,
                                  recipient, failure))
    return events


def _time(value: Any, default: float) -> float:
    if not isinstance(value, str):
        return default
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadPayload("date_time", f"{value!r} is not an ISO 8601 time") from None


def _upserts(doc: dict[str, Any], ctx: ParseContext) -> list[Event]:
    data = doc.get("data")
    items = data if isinstance(data, list) else [data]
    events: list[Event] = []
    for i, item in enumerate(items):
        prefix = f"data[{i}]" if isinstance(data, list) else "data"
        event = _upsert(obj(item, prefix), prefix, ctx)
        if event is not None:
            events.append(event)
    return events


def _node(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _upsert(item: dict[str, Any], at: str, ctx: ParseContext) -> Event | None:
    key = obj(item.get("key"), at + ".key")
    if key.get("fromMe") is True:
        return None
    jid = key.get("remoteJid")
    if is_group(jid) or key.get("participant"):
        return None
    message_id = text(key.get("id"), at + ".key.id")
    assert message_id is not None
    number = sender_number(jid, at + ".key.remoteJid")
    stamp = item.get("messageTimestamp")
    if isinstance(stamp, dict) and "low" in stamp:  # a protobuf Long, as some versions send
        stamp = stamp["low"]
    when = epoch_seconds(stamp, at + ".messageTimestamp", ctx.now)
    message = item.get("message")
    if message is not None and not isinstance(message, dict):
        raise BadPayload(at + ".message", "must be an object")
    message = message or {}
    body = optional_text(message.get("conversation"), at + ".message.conversation")
    context = _node(item.get("contextInfo"))
    for name, field in TEXT_NODES:
        node = _node(message.get(name))
        if body is None and node.get(field) is not None:
            body = optional_text(node.get(field), f"{at}.message.{name}.{field}")
        if not context.get("stanzaId") and node.get("contextInfo"):
            context = _node(node.get("contextInfo"))
    payload = title = None
    buttons = _node(message.get("buttonsResponseMessage"))
    template = _node(message.get("templateButtonReplyMessage"))
    listed = _node(message.get("listResponseMessage"))
    if buttons:
        payload = buttons.get("selectedButtonId")
        title = buttons.get("selectedDisplayText")
    elif template:
        payload = template.get("selectedId")
        title = template.get("selectedDisplayText")
    elif listed:
        payload = _node(listed.get("singleSelectReply")).get("selectedRowId")
        title = listed.get("title")
    elif item.get("messageType") in CLOUD_BUTTON_TYPES:
        title = body  # the Cloud-API channel drops the payload; the label is what is left
    for node in (buttons, template, listed):
        if not context.get("stanzaId") and node.get("contextInfo"):
            context = _node(node.get("contextInfo"))
    payload = optional_text(payload, at + ".message.selectedButtonId", 1024)
    title = optional_text(title, at + ".message.selectedDisplayText", 1024)
    quote = quoted(context.get("stanzaId"), at + ".contextInfo.stanzaId")
    return reply(ctx, "evolution:" + message_id, when, number, quoted_id=quote, body=body,
                 button_payload=payload, button_title=title)
