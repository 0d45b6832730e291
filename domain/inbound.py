"""What recipients send back (SPEC 6.1, 6.4): the one event every inbound message,
button tap, opt-out and suppression change becomes, whatever gateway reported it.

Every webhook source's parser turns a recipient's message into an `InboundEvent`; so do
Meta's `user_preferences` stop / resume, a status failure in the `opted_out` category of
domain/failures.py (131050 "this recipient has chosen to stop marketing messages", and
Twilio's 63014 / 21610) and an operator's change to the suppression list.
Whether a message is an opt-out (STOP, UNSUBSCRIBE, BERHENTI, ...) or lifts one (START,
MULAI) is decided here, once, when the message is parsed: the reply text itself is kept
only when `engagement.keep_reply_text` is on, so the journal never holds it otherwise.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any, NamedTuple

from core.config import START_KEYWORDS, STOP_KEYWORDS
from domain.events import StatusEvent
from domain.failures import Failure, lookup
from domain.phones import e164_digits

# kind: what the event means for the recipient
REPLY = 0  # an ordinary answer (text, media, a button that is not a keyword)
STOP = 1  # stop messaging this number
START = 2  # lift a stop
KIND_NAMES = ("reply", "stop", "start")

# via: how it reached us, which decides how it is attributed (domain/attribution.py)
MESSAGE = 0  # a message from the recipient: quoted id first, else the latest message
PREFERENCE = 1  # Cloud API user_preferences: attributed like a message without a quote
FAILURE = 2  # an opted_out failure (131050): belongs to the failed message, by its id only
MANUAL = 3  # the suppression-list API: no message, the workspace is given
VIA_NAMES = ("message", "preference", "failure", "manual")

# The failure category (domain/failures.py) that means "this recipient stopped
# messages from us" (SPEC 6.4): such a failure is also an opt-out.
OPTED_OUT = "opted_out"

# The defaults of engagement.stop_keywords / start_keywords, declared with the key.
DEFAULT_STOP_KEYWORDS = STOP_KEYWORDS
DEFAULT_START_KEYWORDS = START_KEYWORDS

MAX_TEXT = 4096  # WhatsApp allows 4096 characters in a text message


class InboundEvent(NamedTuple):
    """One thing a recipient (or an operator, for MANUAL) did.

    `inbound_id` is unique per inbound message (source-prefixed: `cloud:wamid.…`), so a
    provider's retry or a journal replay counts once. `quoted_id` is the bare id of the
    campaign message it names (quoted reply, button context, the failed message). `at`
    is the provider's time in epoch seconds, else the receive time fixed at parse.
    """

    inbound_id: str
    kind: int
    via: int
    at: float
    number: str | None  # E.164 digits; None for @lid senders
    workspace_id: int | None = None
    quoted_id: str | None = None
    button_payload: str | None = None
    button_title: str | None = None
    text: str | None = None  # only with engagement.keep_reply_text
    reason: str | None = None  # why a stop / start (shown in the suppression list)

    def to_row(self) -> dict[str, list[Any]]:
        """The journal form: a one-key object, never confused with a status row (a list)."""
        return {"in": list(self)}

    @classmethod
    def from_row(cls, row: dict[str, list[Any]]) -> InboundEvent:
        return cls(*row["in"])


# Whatever a webhook becomes: delivery statuses and inbound events share the journal.
Event = StatusEvent | InboundEvent


# The ASCII characters that are not letters or digits: what normalise_keyword drops.
_ASCII_NOT_ALNUM = bytes(c for c in range(128) if not chr(c).isalnum())


def normalise_keyword(text: str | None) -> str:
    """Case, spaces and punctuation ignored: ' Stop! ' and 'stop.' are 'STOP';
    'opt-out' is 'OPTOUT'. Letters and digits of every script are kept."""
    if not text:
        return ""
    if text.isascii():  # most replies: NFKC leaves ASCII as it is, so C-speed bytes do
        return text.encode().translate(None, _ASCII_NOT_ALNUM).decode().upper()
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum()).upper()


class Keywords:
    """The configured stop and start keywords, compared as whole messages."""

    def __init__(self, stop: Iterable[str] = DEFAULT_STOP_KEYWORDS,
                 start: Iterable[str] = DEFAULT_START_KEYWORDS) -> None:
        self.stop = frozenset(filter(None, map(normalise_keyword, stop)))
        self.start = frozenset(filter(None, map(normalise_keyword, start)))

    def kind_of_text(self, text: str | None) -> int:
        """STOP / START when the WHOLE message is a keyword ("Please stop" is a reply)."""
        key = normalise_keyword(text)
        if key in self.stop:
            return STOP
        if key in self.start:
            return START
        return REPLY

    def kind_of_button(self, payload: str | None, title: str | None) -> int:
        """A button whose payload or title is a keyword (Meta's marketing opt-out quick
        reply arrives as an ordinary button with the label as its payload)."""
        for value in (payload, title):
            kind = self.kind_of_text(value)
            if kind != REPLY:
                return kind
        return REPLY


def clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    return text[:limit] if text else None


def reason_for(kind: int, via: int, text: str | None = None, code: str | None = None,
               button: str | None = None) -> str:
    """What the suppression list says about where a stop (or its lifting) came from."""
    if via == FAILURE:
        return f"failure {code}: {lookup(code).label}"
    if via == PREFERENCE:
        return ("stopped marketing messages in WhatsApp" if kind == STOP
                else "resumed marketing messages in WhatsApp")
    if button:
        return f"tapped the button {button[:80]!r}"
    return f"replied {(text or '').strip()[:80]!r}"


def opt_out_of_failure(inbound_id: str, message_id: str, at: float, recipient: str | None,
                       failure: Failure | None) -> InboundEvent | None:
    """The stop a failed status also is when its failure's category is `opted_out` (the
    failure table decides which codes: one list, in domain/failures.py); else None."""
    if failure is None or failure.category != OPTED_OUT:
        return None
    return InboundEvent(inbound_id, STOP, FAILURE, at, e164_digits(recipient),
                        quoted_id=message_id,
                        reason=reason_for(STOP, FAILURE, code=failure.code))


def opt_out_of_refusal(inbound_id: str, number: str | None, workspace: int, at: float,
                       failure: Failure) -> InboundEvent | None:
    """The stop a send refused at once as `opted_out` also is (SPEC 9: 131050, 63014,
    21610 answered to the sender's call, not in a status webhook): no message id was
    given, so it goes straight to the campaign's workspace list, like an operator's."""
    if failure.category != OPTED_OUT or not number:
        return None
    return InboundEvent(inbound_id, STOP, MANUAL, at, number, workspace,
                        reason=reason_for(STOP, FAILURE, code=failure.code))
