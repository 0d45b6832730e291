"""Twilio status callbacks (form-encoded). No timestamp field: the receive time is used."""

from __future__ import annotations

from urllib.parse import parse_qsl

from domain.events import StatusEvent
from domain.failures import Failure, clean_code, short
from domain.status import TWILIO_STATUS, Level
from web.sources import BadPayload, ParseContext, text

IGNORED = ("receiving", "received")  # incoming messages


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


def parse(body: bytes, ctx: ParseContext) -> list[StatusEvent]:
    form = parse_form(body)
    sid = form.get("MessageSid") or form.get("SmsSid")
    if not sid:
        raise BadPayload("MessageSid", "is required")
    sid = text(sid, "MessageSid")  # bounded length, no control characters
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if not status:
        raise BadPayload("MessageStatus", "is required")
    status = text(status, "MessageStatus", max_len=64)
    if status in IGNORED:
        return []
    if status == "canceled":
        level, failed = Level.QUEUED, True
    else:
        mapped = TWILIO_STATUS.get(status)
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
    return [StatusEvent(sid, level, failed, ctx.now, reason, recipient or None, failure)]
