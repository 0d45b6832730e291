"""Evolution API `messages.update` (Baileys statuses, and its Cloud-API channel's).

`data` may be one object or an array of them. Statuses that are not delivery statuses
(DELETED, edits) are skipped. The event time is the webhook's `date_time` when given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.events import StatusEvent
from domain.failures import Failure
from domain.status import EVOLUTION_STATUS, bare_message_id
from web.sources import BadPayload, ParseContext, load_json, obj, text

EVENT_NAMES = ("messages.update", "MESSAGES_UPDATE", "messages_update")


def parse(body: bytes, ctx: ParseContext) -> list[StatusEvent]:
    doc = obj(load_json(body), "body")
    event = text(doc.get("event"), "event")
    if event not in EVENT_NAMES:
        return []
    at = _time(doc.get("date_time"), ctx.now)
    data = doc.get("data")
    items = data if isinstance(data, list) else [data]
    events = []
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
