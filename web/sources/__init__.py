"""Webhook sources: each turns one provider's payload into `StatusEvent`s (delivery
statuses) and `InboundEvent`s (what recipients sent back, SPEC 6.1).

A parser is a pure function `parse(body, ctx) -> list[Event]`: no I/O, no state, so it
is tested with the fixtures alone (Meta's account webhooks go to `ctx.extras`). Its
vocabulary is mapped through the tables of domain/status.py (and domain/failures.py),
never with numbers of its own. Structural problems raise `BadPayload`
naming the field (JSON path) at fault; the whole request is then refused (SPEC 3.1:
never a partial apply). Values that are valid but are neither delivery statuses nor
recipients' messages (DELETED, our own or a group's messages, an unknown future status)
are skipped, not refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from domain.inbound import Event, Keywords

__all__ = ["Event"]

class BadPayload(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


DEFAULT_KEYWORDS = Keywords()


@dataclass(slots=True)  # not frozen: a frozen __init__ costs every request ~2 us
class ParseContext:
    now: float
    ack_numbering: str = "webjs"
    keywords: Keywords = DEFAULT_KEYWORDS  # engagement.stop_keywords / start_keywords
    keep_reply_text: bool = False  # engagement.keep_reply_text
    # Names of events the parser accepted but does not use (not ours: answered 2xx).
    ignored: list[str] = field(default_factory=list)
    # What a parser finds beside delivery statuses and the handler stores too: Meta's
    # account and template webhooks (domain/account.py AccountEvent).
    extras: list[Any] = field(default_factory=list)


MAX_DEPTH = 32
# No gateway puts control characters in an id or a status name; a NUL or newline there is
# hostile or corrupt input, refused before it reaches the journal, logs or CSV exports.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def load_json(body: bytes) -> Any:
    if not body.strip():
        raise BadPayload("", "the body is empty; a JSON document was expected")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPayload("", f"the body is not valid JSON ({exc})") from exc


def obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadPayload(field, f"must be an object, got {type_name(value)}")
    return value


def text(value: Any, field: str, required: bool = True, max_len: int = 512) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadPayload(field, f"must be a non-empty string, got {type_name(value)}")
    if len(value) > max_len:
        raise BadPayload(field, f"is longer than {max_len} characters")
    value = value.strip()
    if CONTROL.search(value):
        raise BadPayload(field, "must not contain control characters (NUL, newline, ...)")
    return value


def plain_text(value: Any) -> bool:
    """A string `text()` would take unchanged: not empty, at most 512 characters, no
    surrounding space, no control character (isprintable also refuses a few other
    characters: such a value simply takes the careful path). The parsers' quick paths
    (cloud, webjs) take a field only when this holds."""
    return (type(value) is str and 0 < len(value) <= 512 and value.isprintable()
            and not value[0].isspace() and not value[-1].isspace())


def digits(text: str, max_len: int = 18) -> bool:
    """Only ASCII digits, at most `max_len`: str.isdigit() also takes '²' (which int()
    refuses: a 500) and other scripts' digits, and 18 digits stay inside SQLite's int64."""
    return 0 < len(text) <= max_len and text.isascii() and text.isdigit()


def integer(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadPayload(field, f"must be an integer, got {type_name(value)}")
    return value


def plain_seconds(value: Any) -> bool:
    """A digit string `epoch_seconds` takes as it is (below 1e11: at most 11 digits): the
    quick paths (cloud) take a timestamp only when this holds, else the careful walk."""
    return type(value) is str and digits(value, 11)


def epoch_seconds(value: Any, field: str, default: float) -> float:
    """A provider timestamp (seconds, as number or digit string); `default` when absent."""
    if value is None:
        return default
    if isinstance(value, str) and digits(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadPayload(field, f"must be seconds since the epoch, got {type_name(value)}")
    if not math.isfinite(value) or not 0 <= value < 1e11:
        raise BadPayload(field, f"{value!r} is not a plausible time in seconds")
    return float(value)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)
