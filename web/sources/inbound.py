"""What every source's parser shares for inbound messages (SPEC 6.1): reading the sender,
the workspace, the text and the button the same way, and making the `InboundEvent`.

Keywords are matched here, at parse time, so the reply text reaches the journal only
when `engagement.keep_reply_text` is on.
"""

from __future__ import annotations

from typing import Any

from domain.inbound import (
    MESSAGE,
    REPLY,
    InboundEvent,
    clip,
    reason_for,
)
from domain.phones import e164_digits, is_lid
from domain.status import bare_message_id
from web.sources import BadPayload, ParseContext, digits, text, type_name

MAX_BUTTON = 256


def sender_number(value: Any, field: str) -> str | None:
    """E.164 digits of the sender, None for an `@lid` sender (matched by quote only)."""
    sender = text(value, field, max_len=128)
    number = e164_digits(sender)
    if number is None and not is_lid(sender):
        raise BadPayload(field, f"{sender!r} is not a phone number or WhatsApp id")
    return number


def workspace(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and digits(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadPayload(field, f"must be an integer, got {type_name(value)}")
    return value


def optional_text(value: Any, field: str, max_len: int = 65536) -> str | None:
    """A free text field (a body, a caption): a string or absent; control characters are
    allowed (people write newlines), only the type and length are checked."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadPayload(field, f"must be a string, got {type_name(value)}")
    if len(value) > max_len:
        raise BadPayload(field, f"is longer than {max_len} characters")
    return value


def quoted(value: Any, field: str) -> str | None:
    """The bare id of the message a reply names (serialized webjs ids reduced)."""
    if value is None or value == "":
        return None
    return bare_message_id(text(value, field) or "")


def reply(ctx: ParseContext, inbound_id: str, at: float, number: str | None, *,
          workspace_id: int | None = None, quoted_id: str | None = None,
          body: str | None = None, button_payload: str | None = None,
          button_title: str | None = None) -> InboundEvent:
    """A message from a recipient: a reply, or a stop / start when it is a keyword."""
    payload = button_payload[:MAX_BUTTON] if button_payload else None  # clip
    title = button_title[:MAX_BUTTON] if button_title else None
    if payload or title:
        kind = ctx.keywords.kind_of_button(payload, title)
    else:
        kind = ctx.keywords.kind_of_text(body)
    reason = None if kind == REPLY else reason_for(kind, MESSAGE, body, button=title or payload)
    # made without InboundEvent.__new__'s Python frame: one per message of every batch
    return tuple.__new__(InboundEvent, (
        inbound_id, kind, MESSAGE, at, number, workspace_id, quoted_id, payload, title,
        clip(body) if ctx.keep_reply_text else None, reason))


def text_reply(inbound_id: str, at: float, number: str | None, quoted_id: str | None,
               kept_text: str | None) -> InboundEvent:
    """`reply` of a text its keyword check found no keyword (`kept_text` clipped, or
    None when reply texts are not kept): the Cloud quick parse's usual message, made
    without `reply`'s button and reason steps (web/sources/cloud.py)."""
    return tuple.__new__(InboundEvent, (
        inbound_id, REPLY, MESSAGE, at, number, None, quoted_id, None, None, kept_text, None))
