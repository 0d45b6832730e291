"""The failure table (SPEC 7.1): every failure code campaignd knows, in one place.

A failure is kept as structured fields (`Failure`: source, code, title, details), and
its code decides its category through the table below: a plain label, what it means,
what the operator should do, and whether a retry can help. Statistics, the rows API,
the CSV export, the page and the sender all read the category from here, so a code
means the same thing everywhere.

Codes are strings. Meta Cloud API and Twilio codes are their numbers ("131026",
"63016"); failures that have no provider code get a name of ours: `ack_error` (a
whatsapp-web.js / WAHA ACK of -1, Evolution ERROR), `http_<status>` (a gateway's HTTP
refusal at send time), `timeout`, `connection_error`, `session_not_working`,
`bad_reply`. A family (`132xxx`, `http_5xx`) covers codes the table does not list one
by one; anything else is `other`.

Sources: Meta's error-code page and Twilio's error pages, as collected in
../shared/reference/inbound_and_errors.md section 3. docs/failures.md is generated from
this module (scripts/failures-docs.py; a test keeps the two equal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

# --- categories --------------------------------------------------------------------------

# What a retry can do for a category.
NEVER = "never"  # the same message to the same person fails again
BACKOFF = "backoff"  # retried automatically with backoff (seconds to minutes)
LATER = "later"  # may go through after a long wait (sender.marketing_cap_retry_after)


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    label: str
    explanation: str
    action: str  # what to do, one line for the page
    retry: str  # NEVER | BACKOFF | LATER
    pauses: bool = False  # the sender pauses the campaign (nothing else can go out)

    @property
    def retryable(self) -> bool:
        return self.retry != NEVER


CATEGORIES: tuple[Category, ...] = (
    Category(
        "opted_out", "Opted out",
        "The recipient stopped marketing messages from this business, blocked it, or "
        "unsubscribed.",
        "Do not send to them again; remove them from marketing audiences until they opt "
        "back in.", NEVER),
    Category(
        "not_on_whatsapp", "Not on WhatsApp / bad number",
        "The number is not a WhatsApp account, is malformed, or its app is too old to "
        "receive the message.",
        "Check the country code and digits; remove numbers that are not on WhatsApp.",
        NEVER),
    Category(
        "limited_by_meta", "Limited by Meta",
        "Meta chose not to deliver: a per-person limit on marketing messages (frequency "
        "cap), or the number is held back by an experiment. The number itself is fine.",
        "Wait at least 24 hours before the next marketing message to this person; with "
        "sender.retry_limited_by_meta campaignd retries it then.", LATER),
    Category(
        "throttled", "Throttled, retrying",
        "Messages went out faster than the app, the account, the number or this "
        "recipient allows.",
        "Nothing to do: campaignd slows down and retries. If it keeps happening, lower "
        "the campaign's rate.", BACKOFF),
    Category(
        "template", "Template problem",
        "The template is missing, not approved, paused or disabled, or its parameters "
        "do not match it.",
        "Fix the template (name, language, variables) in WhatsApp Manager or pick an "
        "approved one, then retry the failed recipients.", NEVER),
    Category(
        "window_closed", "Window closed",
        "Free-form text can only be sent within 24 hours of the recipient's last "
        "message to you.",
        "Send an approved template instead of free text.", NEVER),
    Category(
        "account", "Account problem, campaign paused",
        "The business account, the sending number, the payment method or the access "
        "token has a problem: no message can go out until it is fixed.",
        "Fix it in Meta Business Manager or the gateway (billing, token, number "
        "registration, policy), then resume the campaign.", NEVER, pauses=True),
    Category(
        "temporary", "Temporary",
        "WhatsApp or the gateway had a passing problem (unknown error, service "
        "unavailable, timeout).",
        "Nothing to do: campaignd retries with backoff. If it persists, check the "
        "gateway's health.", BACKOFF),
    Category(
        "other", "Other",
        "A failure the table does not know, or one the gateway did not explain.",
        "Read the failure's title and details; retry the failed recipients if it looks "
        "passing.", NEVER),
)
CATEGORY: dict[str, Category] = {c.name: c for c in CATEGORIES}
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)


# --- codes ---------------------------------------------------------------------------------

META, TWILIO, GATEWAY = "Meta Cloud API", "Twilio", "gateway"


@dataclass(frozen=True, slots=True)
class Code:
    code: str  # "131026", or a family such as "132xxx"
    family: str  # META | TWILIO | GATEWAY: whose number it is
    title: str  # the provider's title (ours for gateway codes)
    label: str  # plain words for an operator
    category: str


def _rows(family: str, category: str, *rows: tuple[str, str, str]) -> list[Code]:
    return [Code(code, family, title, label, category) for code, title, label in rows]


CODES: tuple[Code, ...] = (
    *_rows(META, "opted_out",
           ("131050", "User has stopped marketing messages", "Opted out of marketing")),
    *_rows(TWILIO, "opted_out",
           ("63014", "Channel message blocked by user action", "Blocked or opted out"),
           ("21610", "Attempt to send to unsubscribed recipient", "Unsubscribed (STOP)")),
    *_rows(META, "not_on_whatsapp",
           ("131026", "Message undeliverable", "Not on WhatsApp or app outdated"),
           ("131009", "Parameter value is not valid", "Invalid value / number")),
    *_rows(TWILIO, "not_on_whatsapp",
           ("63003", "Channel could not find To address", "Not a WhatsApp number"),
           ("63024", "Invalid message recipient", "Invalid WhatsApp recipient")),
    *_rows(META, "limited_by_meta",
           ("131049", "Meta chose not to deliver", "Meta capped marketing to this person"),
           ("130472", "User's number is part of an experiment", "Held back by Meta experiment")),
    *_rows(TWILIO, "limited_by_meta",
           ("63049", "Meta chose not to deliver this WhatsApp marketing message",
            "Meta capped marketing to this person"),
           ("63032", "User's number is part of an experiment", "Held back by Meta experiment")),
    *_rows(META, "throttled",
           ("130429", "Rate limit hit", "Throughput limit, queued"),
           ("131056", "(Business, Consumer) pair rate limit hit", "Too many messages to this "
            "person"),
           ("80007", "Rate limit issues", "Account rate limit, slowing down"),
           ("4", "Too many API calls", "Sending too fast (app limit)")),
    *_rows(TWILIO, "throttled",
           ("63018", "Rate limit exceeded for Channel", "Sending too fast (Twilio limit)")),
    *_rows(META, "template",
           ("132000", "Template param count mismatch", "Template variables don't match"),
           ("132001", "Template does not exist", "Template missing or unapproved"),
           ("132005", "Template hydrated text too long", "Template text too long"),
           ("132007", "Template format character policy violated", "Template violates policy"),
           ("132012", "Template parameter format mismatch", "Variable format wrong"),
           ("132015", "Template is paused", "Template paused by Meta"),
           ("132016", "Template is disabled", "Template disabled"),
           ("132xxx", "Template error", "Template problem"),
           ("131008", "Required parameter is missing", "Template data missing"),
           ("100", "Invalid parameter", "Bad request, check template and fields")),
    *_rows(TWILIO, "template",
           ("63021", "Channel invalid content error", "Content rejected (too long or "
            "invalid)")),
    *_rows(META, "window_closed",
           ("131047", "Re-engagement message", "24-hour window closed")),
    *_rows(TWILIO, "window_closed",
           ("63016", "Outside messaging window. For WhatsApp, use a Message Template "
            "instead", "24-hour window closed")),
    *_rows(META, "account",
           ("131042", "Business eligibility payment issue", "Billing problem, fix payment"),
           ("131031", "Account locked", "Account locked"),
           ("368", "Temporarily blocked for policies violations", "Account blocked by Meta "
            "(policy)"),
           ("131048", "Spam rate limit hit", "Number throttled for spam"),
           ("190", "Access token expired", "Connection expired, reconnect WhatsApp"),
           ("0", "AuthException", "Connection expired, reconnect WhatsApp"),
           ("10", "Permission denied", "App lacks permission"),
           ("200", "Permissions error", "App lacks permission"),
           ("131005", "Access denied", "App lacks permission"),
           ("133010", "Phone number not registered", "Sending number not registered"),
           ("131045", "Incorrect certificate", "Sending number not registered"),
           ("133xxx", "Phone number registration error", "Sending number needs attention")),
    *_rows(GATEWAY, "account",
           ("http_401", "Gateway refused the credentials (HTTP 401)", "Gateway login refused"),
           ("http_403", "Gateway refused the credentials (HTTP 403)", "Gateway login refused"),
           ("session_not_working", "The gateway's WhatsApp session is not connected",
            "WhatsApp session disconnected")),
    *_rows(META, "temporary",
           ("131000", "Something went wrong", "Temporary Meta error"),
           ("131016", "Service unavailable", "Meta service down, will retry"),
           ("133004", "Server temporarily unavailable", "Meta service down, will retry"),
           ("131057", "Account in maintenance mode", "Account under maintenance"),
           ("1", "API Unknown", "Temporary Meta error"),
           ("2", "API Service", "Meta service down, will retry")),
    *_rows(GATEWAY, "throttled",
           ("http_429", "Too many requests (HTTP 429)", "Gateway asked to slow down")),
    *_rows(GATEWAY, "temporary",
           ("http_5xx", "Gateway error (HTTP 5xx)", "Gateway error, will retry"),
           ("http_408", "Request timeout (HTTP 408)", "Gateway timed out, will retry"),
           ("timeout", "No answer from the gateway in time", "Gateway timed out, will retry"),
           ("connection_error", "Could not reach the gateway", "Gateway unreachable, will "
            "retry")),
    *_rows(META, "other",
           ("130403", "Business blocked the user", "You blocked this contact"),
           ("130497", "Business account restricted from messaging users in this country",
            "Country not allowed"),
           ("131021", "Recipient cannot be sender", "Sent to own number"),
           ("131051", "Unsupported message type", "Message type not supported"),
           ("131052", "Media download error", "Couldn't fetch customer's media"),
           ("131053", "Media upload error", "Attachment rejected")),
    *_rows(TWILIO, "other",
           ("30003", "Unreachable destination handset", "Phone unreachable"),
           ("30007", "Message filtered", "Filtered by Twilio or the carrier")),
    *_rows(GATEWAY, "other",
           ("ack_error", "The phone's WhatsApp reported an error (ACK -1)", "WhatsApp could "
            "not send it (no reason given)"),
           ("http_4xx", "Refused by the gateway (HTTP 4xx)", "Refused by the gateway"),
           ("bad_reply", "The gateway's answer could not be read", "Unreadable gateway "
            "answer")),
)
_EXACT: dict[str, Code] = {c.code: c for c in CODES if not c.code.endswith("xx")}
# Families ("132xxx", "http_5xx"): the trailing x's stand for any digit.
_FAMILIES: tuple[tuple[re.Pattern[str], Code], ...] = tuple(
    (re.compile("^" + re.escape(c.code.rstrip("x")) + "[0-9]" * (len(c.code)
                                                               - len(c.code.rstrip("x"))) + "$"), c)
    for c in CODES if c.code.endswith("xx"))
UNKNOWN = Code("", GATEWAY, "Unknown failure", "Failed (no reason given)", "other")


def lookup(code: str | None) -> Code:
    """The table's row for a code: exact, else its family, else `other`."""
    if not code:
        return UNKNOWN
    hit = _EXACT.get(code)
    if hit is not None:
        return hit
    for pattern, row in _FAMILIES:
        if pattern.match(code):
            return row
    return Code(code, GATEWAY, "Unknown code", f"Failed with code {code}", "other")


def known(code: str | None) -> bool:
    """Does the table list this code (exactly or by its family)?"""
    return bool(code) and (code in _EXACT or any(p.match(code) for p, _ in _FAMILIES))


def category_of(code: str | None) -> Category:
    return CATEGORY[lookup(code).category]


# --- a failure as fields ---------------------------------------------------------------------


class Failure(NamedTuple):
    """One failure as its source reported it. A tuple: it is journaled as a JSON array."""

    source: str  # webhook source or gateway: cloud, twilio, webjs, ..., api, simulator
    code: str | None
    title: str | None
    details: str | None = None

    @property
    def category(self) -> str:
        return lookup(self.code).category

    def text(self) -> str:
        """The one-line reason shown where there is room for text only."""
        title = self.title or lookup(self.code).title
        out = f"{self.code}: {title}" if self.code else title
        if self.details and self.details != self.title:
            out += f" ({self.details})"
        return out[:500]

    def as_dict(self) -> dict[str, str | None]:
        row = lookup(self.code)
        return {"source": self.source, "code": self.code, "title": self.title,
                "details": self.details, "category": row.category, "label": row.label}

    @classmethod
    def from_row(cls, value: object) -> Failure | None:
        """A journaled failure (a JSON array) back; anything else is None."""
        if not isinstance(value, list | tuple) or len(value) != 4:
            return None
        return cls(*(None if v is None else str(v) for v in value))  # type: ignore[arg-type]


MAX_FIELD = 500
CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def clean_code(value: object) -> str | None:
    """A provider's code as our string form (131026 -> "131026"); junk is None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text if CODE_RE.match(text) else None


def short(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:MAX_FIELD] or None


# Text reasons as release 0.1 wrote them: "131049: title (details)", "63016: ...",
# "HTTP 400 (code 131026): ...", "HTTP 503: ...", "timeout after 15s",
# "connection error: ...", "simulated: delivery failed (131026 undeliverable)".
_LEADING_CODE = re.compile(r"^\s*([0-9]{1,7})\s*:\s*(.*)$", re.S)
_HTTP_CODE = re.compile(r"^HTTP ([0-9]{3})(?: \(code ([0-9]{1,7})\))?:?\s*(.*)$", re.S)


def from_text(reason: str | None, source: str) -> Failure:
    """A failure from a text reason alone (journal rows, registrations, stored rows of
    release 0.1): the code where the text starts with one, else no code (`other`)."""
    if not reason:
        return Failure(source, None, None, None)
    text = reason.strip()
    match = _LEADING_CODE.match(text)
    if match:
        return Failure(source, match[1], short(match[2]) or None, None)
    match = _HTTP_CODE.match(text)
    if match:
        code = match[2] or http_code(int(match[1]))
        return Failure(source, code, short(match[3]) or None, None)
    low = text.lower()
    if low.startswith("timeout"):
        return Failure(source, "timeout", short(text), None)
    if low.startswith("connection error"):
        return Failure(source, "connection_error", short(text), None)
    return Failure(source, None, short(text), None)


def http_code(status: int) -> str:
    """Our code for a gateway's HTTP refusal (the table knows some exactly, the rest by
    family: http_5xx, http_4xx)."""
    return f"http_{status}"


# --- which failure a message keeps -------------------------------------------------------------

RankKey = tuple[int, str, str, str, str, str]


def rank(tick: int, failure: Failure | None, reason: str | None) -> RankKey:
    """The order of a message's failures; it keeps the smallest (SPEC 2.1: a function of
    the SET of events): the earliest, ties broken by the code and then every other field,
    so the same failures in any order keep the same one. (A failure that says nothing,
    no code and no text, is never kept: domain/failure_book.py.)"""
    f = failure or Failure("", None, None, None)
    return (tick, f.code or "", f.source or "", f.title or "", f.details or "", reason or "")


# --- what the sender does with a refused send ------------------------------------------------

RETRY, FAIL, PAUSE = "retry", "fail", "pause"


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # RETRY | FAIL | PAUSE
    delay: float | None = None  # RETRY: fixed wait (None: the sender's backoff)
    category: str = "other"


def decide(code: str | None, *, attempt: int, max_attempts: int, retry_later: bool,
           later_after: float) -> Decision:
    """Retry, fail or pause, from the table alone.

    BACKOFF categories retry until `max_attempts`; LATER (Limited by Meta) retries once
    after `later_after` seconds when `retry_later` is on, else fails; account problems
    pause the campaign; everything else fails the message."""
    category = category_of(code)
    if category.pauses:
        return Decision(PAUSE, category=category.name)
    if category.retry == BACKOFF and attempt < max_attempts:
        return Decision(RETRY, category=category.name)
    if category.retry == LATER and retry_later and attempt < max_attempts:
        return Decision(RETRY, later_after, category=category.name)
    return Decision(FAIL, category=category.name)


# Of the throttled codes, those that say the ACCOUNT (the number, the app, the gateway)
# sends too fast: its rate, shared by every campaign on it, goes down (SPEC 9,
# domain/pacing.py). 131056 is about one recipient and slows nobody else.
ACCOUNT_PACE_CODES = frozenset({"130429", "80007", "4", "63018", "http_429"})


def slows_account(code: str | None) -> bool:
    return code in ACCOUNT_PACE_CODES


# --- the documentation ---------------------------------------------------------------------

RETRY_WORDS = {NEVER: "no", BACKOFF: "yes, with backoff",
               LATER: "after sender.marketing_cap_retry_after (24 h), if "
                      "sender.retry_limited_by_meta"}


def failures_markdown() -> str:
    """docs/failures.md's tables, generated from this module (a test keeps them equal)."""
    lines = ["| category | label | what it means | what to do | retry |",
             "|---|---|---|---|---|"]
    for c in CATEGORIES:
        retry = RETRY_WORDS[c.retry] + ("; the campaign pauses" if c.pauses else "")
        lines.append(f"| `{c.name}` | {c.label} | {c.explanation} | {c.action} | {retry} |")
    lines += ["", "| code | from | title | label | category |", "|---|---|---|---|---|"]
    for code in CODES:
        lines.append(f"| `{code.code}` | {code.family} | {code.title} | {code.label} | "
                     f"`{code.category}` |")
    lines += ["", "Any other code is `other`."]
    return "\n".join(lines) + "\n"
