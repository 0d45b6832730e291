"""Meta WhatsApp Cloud API status webhooks: entry[].changes[].value.statuses[].

Up to 1000 statuses per request. Partial batches: a status that is malformed (missing
id, wrong type) refuses the whole request with the path of the bad status, so nothing
is half-applied; a well-formed status whose value is not a delivery status we know is
skipped, like incoming `messages[]`, which are not ours to count.

Account and template webhooks (`phone_number_quality_update`, `account_update`,
`message_template_status_update`, `message_template_quality_update`) come to the same
URL: each such change goes to `ctx.extras` as an `AccountEvent`, stored by the handler
with the statuses.
"""

from __future__ import annotations

from typing import Any

from domain.account import event_from_change, field_of
from domain.events import StatusEvent
from domain.failures import Failure, clean_code, short
from domain.status import CLOUD_STATUS
from web.sources import BadPayload, ParseContext, epoch_seconds, load_json, obj, text

MAX_STATUSES = 5000


def parse(body: bytes, ctx: ParseContext) -> list[StatusEvent]:
    doc = obj(load_json(body), "body")
    entries = doc.get("entry")
    if not isinstance(entries, list):
        raise BadPayload("entry", "must be an array")
    events: list[StatusEvent] = []
    for e, entry in enumerate(entries):
        entry = obj(entry, f"entry[{e}]")
        changes = entry.get("changes", [])
        if not isinstance(changes, list):
            raise BadPayload(f"entry[{e}].changes", "must be an array")
        for c, change in enumerate(changes):
            change = obj(change, f"entry[{e}].changes[{c}]")
            value = obj(change.get("value"), f"entry[{e}].changes[{c}].value")
            kind = field_of(change.get("field"), value)
            if kind is not None:
                waba = text(entry.get("id"), f"entry[{e}].id", required=False) if isinstance(
                    entry.get("id"), str) else None
                at = epoch_seconds(entry.get("time"), f"entry[{e}].time", ctx.now)
                ctx.extras.append(event_from_change(kind, waba, at, value))
                if len(ctx.extras) > MAX_STATUSES:
                    raise BadPayload("entry", f"more than {MAX_STATUSES} changes in one request")
                continue
            statuses = value.get("statuses", [])
            if not isinstance(statuses, list):
                raise BadPayload(f"entry[{e}].changes[{c}].value.statuses", "must be an array")
            for s, status in enumerate(statuses):
                path = f"entry[{e}].changes[{c}].value.statuses[{s}]"
                event = _status(status, path, ctx)
                if event is not None:
                    events.append(event)
                if len(events) > MAX_STATUSES:
                    raise BadPayload("entry", f"more than {MAX_STATUSES} statuses in one request")
    return events


def _status(status: Any, path: str, ctx: ParseContext) -> StatusEvent | None:
    status = obj(status, path)
    message_id = text(status.get("id"), f"{path}.id")
    name = text(status.get("status"), f"{path}.status")
    at = epoch_seconds(status.get("timestamp"), f"{path}.timestamp", ctx.now)
    recipient = text(status.get("recipient_id"), f"{path}.recipient_id", required=False)
    errors = status.get("errors")
    if errors is not None and not isinstance(errors, list):
        raise BadPayload(f"{path}.errors", "must be an array")
    assert message_id is not None and name is not None
    mapped = CLOUD_STATUS.get(name.lower())
    if mapped is None:
        return None
    level, failed = mapped
    if not failed:
        return StatusEvent(message_id, level, failed, at, None, recipient)
    failure = cloud_failure(errors)
    reason = failure.text() if failure.code or failure.title else "failed (no error given)"
    return StatusEvent(message_id, level, failed, at, reason, recipient, failure)


def cloud_failure(errors: list[Any] | None, source: str = "cloud") -> Failure:
    """The first of Meta's `errors[]` as fields: code, title (or message), details."""
    if not errors or not isinstance(errors[0], dict):
        return Failure(source, None, None, None)
    err = errors[0]
    data = err.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    title = err.get("title") or err.get("message")
    return Failure(source, clean_code(err.get("code")), short(title), short(details))
