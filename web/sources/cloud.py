"""Meta WhatsApp Cloud API webhooks: entry[].changes[].value with `statuses[]` (delivery
statuses), `messages[]` + `contacts[]` (what recipients send, SPEC 6.1) and
`user_preferences[]` (marketing stop / resume, SPEC 6.4). One request may carry all.

Up to 1000 items per request. Partial batches: an item that is malformed (missing
id, wrong type) refuses the whole request with the path of the bad item, so nothing
is half-applied; a well-formed status whose value is not a delivery status we know is
skipped. A failed status whose failure is in the `opted_out` category (131050: the
recipient stopped marketing messages) is also an opt-out of that message's recipient.

Account and template webhooks (`phone_number_quality_update`, `account_update`,
`message_template_status_update`, `message_template_quality_update`) come to the same
URL: each such change goes to `ctx.extras` as an `AccountEvent`, stored by the handler
with the events.
"""

from __future__ import annotations

from typing import Any

from domain.account import ACCOUNT_FIELDS, TEMPLATE_QUALITY, event_from_change, field_of
from domain.events import StatusEvent
from domain.failures import Failure, clean_code, short
from domain.inbound import (
    PREFERENCE,
    REPLY,
    START,
    STOP,
    InboundEvent,
    clip,
    opt_out_of_failure,
    reason_for,
)
from domain.phones import MAX_DIGITS, MIN_DIGITS, e164_digits
from domain.status import CLOUD_STATUS, bare_message_id
from web.sources import (
    BadPayload,
    Event,
    ParseContext,
    epoch_seconds,
    load_json,
    obj,
    plain_seconds,
    plain_text,
    text,
)
from web.sources.inbound import optional_text, quoted, reply, sender_number, text_reply

MAX_STATUSES = 5000
ACCOUNT_CHANGES = frozenset((*ACCOUNT_FIELDS, TEMPLATE_QUALITY))
# Message types that are not something a recipient said (a number change, a first open).
IGNORED_TYPES = ("system", "request_welcome", "ephemeral")
MEDIA_TYPES = ("image", "video", "document", "audio", "sticker")
PREFERENCES = {"stop": STOP, "resume": START}


def _array(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadPayload(field, "must be an array")
    return value


# The common shapes of a webhook, taken by `_plain_batch` without the careful walk: keys
# of a change's value that may be there, the statuses it knows, the messages it takes
# (a text reply or a template's quick-reply button: what recipients of a campaign send).
PLAIN_VALUE_KEYS = frozenset(("messaging_product", "metadata", "statuses", "contacts",
                              "messages"))
PLAIN_STATUS_KEYS = frozenset(("id", "status", "timestamp", "recipient_id", "conversation",
                               "pricing", "biz_opaque_callback_data"))
PLAIN_STATUSES = {name: level for name, (level, failed) in CLOUD_STATUS.items() if not failed}
PLAIN_MESSAGE_TYPES = ("text", "button")
MAX_SENDER = 128  # web/sources/inbound.py sender_number
MAX_BODY = 65536  # web/sources/inbound.py optional_text
MAX_BUTTON_TEXT = 1024


def parse(body: bytes, ctx: ParseContext) -> list[Event]:
    loaded = load_json(body)
    plain = _plain_batch(loaded, ctx)
    return plain if plain is not None else walk(loaded, ctx)


def walk(loaded: Any, ctx: ParseContext) -> list[Event]:
    """The careful parse of any body: every field checked, a bad one named."""
    doc = obj(loaded, "body")
    entries = doc.get("entry")
    if not isinstance(entries, list):
        raise BadPayload("entry", "must be an array")
    events: list[Event] = []
    for e, entry in enumerate(entries):
        entry = obj(entry, f"entry[{e}]")
        changes = entry.get("changes", [])
        if not isinstance(changes, list):
            raise BadPayload(f"entry[{e}].changes", "must be an array")
        for c, change in enumerate(changes):
            change = obj(change, f"entry[{e}].changes[{c}]")
            at = f"entry[{e}].changes[{c}].value"
            value = obj(change.get("value"), at)
            kind = field_of(change.get("field"), value)
            if kind is not None:
                waba = text(entry.get("id"), f"entry[{e}].id", required=False) if isinstance(
                    entry.get("id"), str) else None
                when = epoch_seconds(entry.get("time"), f"entry[{e}].time", ctx.now)
                ctx.extras.append(event_from_change(kind, waba, when, value))
                if len(ctx.extras) > MAX_STATUSES:
                    raise BadPayload("entry", f"more than {MAX_STATUSES} changes in one request")
                continue
            statuses = value.get("statuses", [])
            if not isinstance(statuses, list):
                raise BadPayload(f"{at}.statuses", "must be an array")
            for s, status in enumerate(statuses):
                events.extend(_status(status, f"{at}.statuses[{s}]", ctx))
                if len(events) > MAX_STATUSES:
                    raise BadPayload("entry", f"more than {MAX_STATUSES} statuses in one request")
            for k, contact in enumerate(_array(value.get("contacts"), f"{at}.contacts")):
                contact = obj(contact, f"{at}.contacts[{k}]")
                text(contact.get("wa_id"), f"{at}.contacts[{k}].wa_id", required=False)
            for m, message in enumerate(_array(value.get("messages"), f"{at}.messages")):
                received = _message(message, f"{at}.messages[{m}]", ctx)
                if received is not None:
                    events.append(received)
            for p, pref in enumerate(_array(value.get("user_preferences"),
                                            f"{at}.user_preferences")):
                preference = _preference(pref, f"{at}.user_preferences[{p}]", ctx)
                if preference is not None:
                    events.append(preference)
            if len(events) > MAX_STATUSES:
                raise BadPayload("entry", f"more than {MAX_STATUSES} items in one request")
    return events


def _plain_statuses(doc: Any, now: float) -> list[Event] | None:
    """`_plain_batch` of a body of delivery statuses (the context only dates them)."""
    return _plain_batch(doc, ParseContext(now))


def _plain_batch(doc: Any, ctx: ParseContext) -> list[Event] | None:
    """The events of a webhook that carries only well-formed delivery statuses and plain
    replies (text, quick-reply buttons), what nearly every Cloud API request is, or
    None: then the careful walk below parses it, names any bad field and takes
    everything else (failures, other messages, preferences, account changes).
    Gives exactly what the careful walk gives for such a body (tests/test_cloud_plain.py),
    at a third to half of the cost: every item of a batch of 100 went through five to
    ten helper calls, each building the path of its field, before."""
    if type(doc) is not dict or type(entries := doc.get("entry")) is not list:
        return None
    events: list[Event] = []
    append = events.append
    levels = PLAIN_STATUSES
    keys_ok = PLAIN_STATUS_KEYS.issuperset
    now = ctx.now
    last_stamp: Any = None  # a checked timestamp (a str) and its time
    last_at = now
    last_recipient: Any = None  # a checked recipient (a str)
    new_status = tuple.__new__  # StatusEvent's fields without its keyword defaults
    for entry in entries:
        if type(entry) is not dict or type(changes := entry.get("changes", [])) is not list:
            return None
        for change in changes:
            if type(change) is not dict or type(change.get("field", "")) is not str \
                    or change.get("field") in ACCOUNT_CHANGES:
                return None
            value = change.get("value")
            if type(value) is not dict or not PLAIN_VALUE_KEYS.issuperset(value):
                return None
            statuses = value.get("statuses", [])
            if type(statuses) is not list:
                return None
            for status in statuses:
                # a timestamp or recipient equal to the previous status's is taken
                # without checking again (a batch repeats its timestamp and often its
                # recipient)
                if type(status) is not dict or not keys_ok(status):
                    return None
                message_id, name = status.get("id"), status.get("status")
                level = levels.get(name) if type(name) is str else None
                if level is None or not plain_text(message_id):
                    return None
                stamp = status.get("timestamp")
                if stamp is None:
                    at = now
                elif stamp != last_stamp:
                    if plain_seconds(stamp):
                        at = last_at = float(int(stamp))
                        last_stamp = stamp
                    else:
                        return None
                else:
                    at = last_at
                recipient = status.get("recipient_id")
                if recipient is not None and recipient != last_recipient:
                    if not plain_text(recipient):
                        return None
                    last_recipient = recipient
                append(new_status(StatusEvent, (message_id, level, False, at, None, recipient,
                                                None)))
            if ("contacts" in value or "messages" in value) and \
                    not _plain_messages(value, ctx, events):
                return None
            if len(events) > MAX_STATUSES:
                return None
    return events


def _plain_messages(value: dict[str, Any], ctx: ParseContext, events: list[Event]) -> bool:
    """A change's `contacts` and `messages` as `walk` takes them, appended to `events`;
    False when any is not plain (the careful walk then decides).

    One loop over the messages, not a call each: a text reply that is no keyword (what
    nearly every message of a replies batch is) is made here as `reply` makes it, and a
    timestamp equal to the message's before is taken without checking it again (a batch
    repeats it), as `_plain_batch` does for statuses (the loop spent ~3.4 µs more per
    reply than per status: docs/BENCHMARKS.md, wave 12)."""
    contacts = value.get("contacts")
    if contacts is not None:
        if type(contacts) is not list:
            return False
        for contact in contacts:
            if type(contact) is not dict:
                return False
            wa_id = contact.get("wa_id")
            if wa_id is not None and not plain_text(wa_id):
                return False
    messages = value.get("messages")
    if messages is None:
        return True
    if type(messages) is not list:
        return False
    append = events.append
    now, keep, kind_of_text = ctx.now, ctx.keep_reply_text, ctx.keywords.kind_of_text
    last_stamp: Any = None  # a checked timestamp (a str) and its time
    last_at = now
    for message in messages:
        if type(message) is not dict:
            return False
        message_id, kind, sender = message.get("id"), message.get("type"), message.get("from")
        if kind not in PLAIN_MESSAGE_TYPES or type(kind) is not str or not plain_text(message_id):
            return False
        if type(sender) is str and MIN_DIGITS <= len(sender) <= MAX_DIGITS and sender.isascii() \
                and sender.isdigit() and not sender.startswith("00"):
            number = sender  # bare E.164 digits, as Meta sends them: e164_digits keeps them
        else:
            if not plain_text(sender) or len(sender) > MAX_SENDER:
                return False
            number = e164_digits(sender)  # an @lid sender or a bad number: the careful walk
            if number is None:
                return False
        stamp = message.get("timestamp")
        if stamp is None:
            at = now
        elif stamp != last_stamp:
            if plain_seconds(stamp):
                at = last_at = float(int(stamp))
                last_stamp = stamp
            else:
                return False
        else:
            at = last_at
        quote = None
        context = message.get("context")
        if context is not None:
            if type(context) is not dict:
                return False
            quoted_id = context.get("id")
            if quoted_id is not None and quoted_id != "":
                if not plain_text(quoted_id):
                    return False
                quote = bare_message_id(quoted_id)
        if kind == "text":
            body = None
            content = message.get("text")
            if content is not None:
                if type(content) is not dict:
                    return False
                body = content.get("body")
                if body is not None and (type(body) is not str or len(body) > MAX_BODY):
                    return False
            if kind_of_text(body) == REPLY:  # `reply` of a text that is no keyword
                append(text_reply("cloud:" + message_id, at, number, quote,
                                  clip(body) if keep else None))
            else:
                append(reply(ctx, "cloud:" + message_id, at, number, quoted_id=quote,
                             body=body))
            continue
        button = message.get("button")
        if type(button) is not dict:
            return False
        payload, title = button.get("payload"), button.get("text")
        for part in (payload, title):
            if part is not None and (type(part) is not str or len(part) > MAX_BUTTON_TEXT):
                return False
        append(reply(ctx, "cloud:" + message_id, at, number, quoted_id=quote, body=title,
                     button_payload=payload, button_title=title))
    return True


def _message(message: Any, path: str, ctx: ParseContext) -> Event | None:
    """value.messages[i]: text, a template quick-reply `button`, an `interactive`
    button / list reply, media, a reaction; `context.id` names the message it answers."""
    message = obj(message, path)
    message_id = text(message.get("id"), f"{path}.id")
    kind = text(message.get("type"), f"{path}.type", max_len=64)
    assert message_id is not None and kind is not None
    if kind in IGNORED_TYPES:
        return None
    number = sender_number(message.get("from"), f"{path}.from")
    when = epoch_seconds(message.get("timestamp"), f"{path}.timestamp", ctx.now)
    context = message.get("context")
    if context is not None and not isinstance(context, dict):
        raise BadPayload(f"{path}.context", "must be an object")
    quote = quoted(context.get("id"), f"{path}.context.id") if context else None
    body = payload = title = None
    if kind == "text":
        content = message.get("text")
        if content is not None:
            body = optional_text(obj(content, f"{path}.text").get("body"), f"{path}.text.body")
    elif kind == "button":
        button = obj(message.get("button"), f"{path}.button")
        payload = optional_text(button.get("payload"), f"{path}.button.payload", 1024)
        title = optional_text(button.get("text"), f"{path}.button.text", 1024)
        body = title
    elif kind == "interactive":
        interactive = obj(message.get("interactive"), f"{path}.interactive")
        sub = interactive.get("type")
        picked = interactive.get(sub) if isinstance(sub, str) else None
        if isinstance(picked, dict):
            payload = optional_text(picked.get("id"), f"{path}.interactive.{sub}.id", 1024)
            title = optional_text(picked.get("title"), f"{path}.interactive.{sub}.title", 1024)
            body = title
    elif kind == "reaction":
        reaction = obj(message.get("reaction"), f"{path}.reaction")
        if not reaction.get("emoji"):
            return None  # a reaction taken back
        quote = quoted(reaction.get("message_id"), f"{path}.reaction.message_id") or quote
        body = optional_text(reaction.get("emoji"), f"{path}.reaction.emoji", 64)
    elif kind in MEDIA_TYPES:
        media = message.get(kind)
        if isinstance(media, dict):
            body = optional_text(media.get("caption"), f"{path}.{kind}.caption")
    return reply(ctx, "cloud:" + message_id, when, number, quoted_id=quote, body=body,
                 button_payload=payload, button_title=title)


def _preference(pref: Any, path: str, ctx: ParseContext) -> Event | None:
    """value.user_preferences[i]: a recipient stopped (or resumed) marketing messages."""
    pref = obj(pref, path)
    number = e164_digits(text(pref.get("wa_id"), f"{path}.wa_id"))
    if number is None:
        raise BadPayload(f"{path}.wa_id", "is not a phone number")
    value = text(pref.get("value"), f"{path}.value", max_len=64)
    assert value is not None
    kind = PREFERENCES.get(value.lower())
    if kind is None:
        return None  # a preference we do not know: not an opt-out
    when = epoch_seconds(pref.get("timestamp"), f"{path}.timestamp", ctx.now)
    category = pref.get("category") if isinstance(pref.get("category"), str) else "marketing"
    return InboundEvent(f"cloud-pref:{number}:{category}:{int(when)}:{value.lower()}", kind,
                        PREFERENCE, when, number, reason=reason_for(kind, PREFERENCE))


def _status(status: Any, path: str, ctx: ParseContext) -> list[Event]:
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
        return []
    level, failed = mapped
    if not failed:
        return [StatusEvent(message_id, level, failed, at, None, recipient)]
    failure = cloud_failure(errors)
    reason = failure.text() if failure.code or failure.title else "failed (no error given)"
    events: list[Event] = [StatusEvent(message_id, level, failed, at, reason, recipient,
                                       failure)]
    stop = opt_out_of_failure(f"cloud-failure:{message_id}", message_id, at, recipient,
                              failure)
    if stop is not None:
        events.append(stop)
    return events


def cloud_failure(errors: list[Any] | None, source: str = "cloud") -> Failure:
    """The first of Meta's `errors[]` as fields: code, title (or message), details."""
    if not errors or not isinstance(errors[0], dict):
        return Failure(source, None, None, None)
    err = errors[0]
    data = err.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    title = err.get("title") or err.get("message")
    return Failure(source, clean_code(err.get("code")), short(title), short(details))
