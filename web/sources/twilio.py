"""Twilio webhooks (form-encoded), on one route: status callbacks and incoming messages.

A status callback carries `MessageStatus`; an incoming WhatsApp message (SPEC 6.1)
carries `SmsStatus=received` (or no status) with `From=whatsapp:+…`, `Body`, maybe a
tapped button (`ButtonPayload`, `ButtonText`) and `OriginalRepliedMessageSid`, the sid
Twilio gave the message it answers. Twilio sends no timestamp: the receive time is used.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from domain.events import StatusEvent
from domain.failures import Failure, clean_code, short
from domain.inbound import opt_out_of_failure
from domain.status import TWILIO_STATUS, Level
from web.sources import BadPayload, Event, ParseContext, text
from web.sources.inbound import optional_text, quoted, reply, sender_number

INBOUND = ("receiving", "received")  # SmsStatus of an incoming message


def parse_form(body: bytes) -> dict[str, str]:
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPayload("", "the body is not valid UTF-8") from None
    try:
        return dict(parse_qsl(decoded, keep_blank_values=True, strict_parsing=bool(decoded),
                              max_num_fields=200))
    except ValueError as exc:
        raise BadPayload("", f"the body is not form-encoded ({exc})") from None


def is_incoming(form: dict[str, str]) -> bool:
    """An incoming message, not a status callback: told apart by its fields."""
    if form.get("MessageStatus"):
        return False
    status = (form.get("SmsStatus") or "").lower()
    return status in INBOUND or (not status and "Body" in form and "From" in form)


def parse(body: bytes, ctx: ParseContext) -> list[Event]:
    form = parse_form(body)
    sid = form.get("MessageSid") or form.get("SmsSid")
    if not sid:
        raise BadPayload("MessageSid", "is required")
    sid = text(sid, "MessageSid")  # bounded length, no control characters
    assert sid is not None
    if is_incoming(form):
        return [_incoming(form, sid, ctx)]
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if not status:
        raise BadPayload("MessageStatus", "is required")
    status = text(status, "MessageStatus", max_len=64)
    if status == "canceled":
        level, failed = Level.QUEUED, True
    else:
        mapped = TWILIO_STATUS.get(status or "")
        if mapped is None:
            return []
        level, failed = mapped
    reason = failure = None
    if failed:
        code = form.get("ErrorCode")
        message = form.get("ErrorMessage")
        reason = " ".join(p for p in (f"{code}:" if code else "", message or status) if p)
        failure = Failure("twilio", clean_code(code), short(message) or status, None)
    recipient = form.get("ChannelToAddress") or form.get("To", "").removeprefix("whatsapp:")
    events: list[Event] = [StatusEvent(sid, level, failed, ctx.now, reason, recipient or None,
                                       failure)]
    stop = opt_out_of_failure(f"twilio-failure:{sid}", sid, ctx.now, recipient, failure)
    if stop is not None:
        events.append(stop)
    return events


def _incoming(form: dict[str, str], sid: str, ctx: ParseContext) -> Event:
    number = sender_number(form.get("From"), "From")
    body = optional_text(form.get("Body"), "Body")
    payload = optional_text(form.get("ButtonPayload") or None, "ButtonPayload", 1024)
    title = optional_text(form.get("ButtonText") or None, "ButtonText", 1024)
    quote = quoted(form.get("OriginalRepliedMessageSid"), "OriginalRepliedMessageSid")
    return reply(ctx, "twilio:" + sid, ctx.now, number, quoted_id=quote, body=body,
                 button_payload=payload, button_title=title)
