"""What every gateway client shares: the outbound message, the outcome, error triage.

A gateway client only talks HTTP (on the event loop) and says what happened. Whether to
retry, give up or pause the campaign is decided from the outcome's `kind`, so every
gateway classifies its answers the same way:

- accepted:  the gateway took the message and gave an id.
- transient: try again later (timeout, connection error, 5xx, 429 with `retry_after`).
- permanent: this message can never be sent as it is (4xx with the gateway's reason).
- halt:      nothing can be sent until an operator acts (bad credentials, no session).
- unknown:   the gateway says it took the message but gave no id: it may be out, so it
             is neither retried nor failed (shown as unknown; retry-unknown re-sends).

Every refusal also carries its `failure` as fields (the provider's code where it gives
one, else `http_<status>`, `timeout`, ...): the sender judges it through the failure
table (domain/failures.py), which has the last word on retry, fail or pause.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from domain.failures import Failure, clean_code, http_code, known, short


@dataclass(slots=True, frozen=True)
class Outbound:
    """One message to hand to a gateway."""

    campaign_uuid: str
    row: int
    recipient: str  # digits only, E.164 without '+'
    text: str
    contact_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # e.g. a Cloud API template
    workspace_id: int | None = None  # the campaign's (the seed's send API wants it)


@dataclass(slots=True, frozen=True)
class Outcome:
    kind: str  # accepted | transient | permanent | halt | unknown (| later: actors/sender.py)
    message_id: str | None = None
    reason: str | None = None
    retry_after: float | None = None
    status: int | None = None  # the HTTP status of a refusal, for a gateway's own mapping
    failure: Failure | None = None


class Gateway(Protocol):
    name: str

    async def send(self, session: aiohttp.ClientSession, message: Outbound) -> Outcome: ...


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def dig(doc: Any, path: str) -> Any:
    """Follow a dotted path ("data.id._serialized", "messages.0.id") into JSON."""
    for part in path.split("."):
        if isinstance(doc, dict):
            doc = doc.get(part)
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return doc


def error_text(body: bytes, status: int) -> str:
    """The gateway's own reason, from the usual JSON error shapes, else the raw text."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return f"HTTP {status}: {text[:300]}" if text else f"HTTP {status}"
    for path in ("error.error_data.details", "error.message", "message", "error", "detail"):
        value = dig(doc, path)
        if isinstance(value, str) and value:
            code = dig(doc, "error.code")
            prefix = f"HTTP {status}" + (f" (code {code})" if code is not None else "")
            return f"{prefix}: {value[:300]}"
    return f"HTTP {status}: {orjson.dumps(doc).decode()[:300]}"


def error_failure(body: bytes, status: int) -> Failure:
    """The refusal as fields: a Graph-style `error.code` the failure table knows, else
    `http_<status>` (the unknown provider code then goes into the details)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    code = clean_code(dig(doc, "error.code"))
    title = next((v for v in (dig(doc, "error.message"), dig(doc, "message"),
                              dig(doc, "error"), dig(doc, "detail")) if isinstance(v, str)
                  and v), None)
    details = dig(doc, "error.error_data.details")
    if code is not None and not known(code):
        details = f"code {code}" + (f": {details}" if isinstance(details, str) else "")
        code = None
    if title is None and doc is None:
        title = body.decode("utf-8", "replace").strip()[:300] or None
    return Failure("", code or http_code(status), short(title),
                   short(details) if isinstance(details, str) else None)


def classify(status: int, headers: Any, body: bytes) -> Outcome:
    """Outcome of a non-2xx answer."""
    reason = error_text(body, status)
    failure = error_failure(body, status)
    if status == 429:
        return Outcome("transient", reason=reason,
                       retry_after=parse_retry_after(headers.get("Retry-After")), status=status,
                       failure=failure)
    if status in (408, 425) or status >= 500:
        return Outcome("transient", reason=reason,
                       retry_after=parse_retry_after(headers.get("Retry-After")), status=status,
                       failure=failure)
    if status in (401, 403):
        return Outcome("halt", reason=reason, status=status, failure=failure)
    return Outcome("permanent", reason=reason, status=status, failure=failure)


async def post_json(session: aiohttp.ClientSession, url: str, doc: Any,
                    headers: dict[str, str], timeout: float) -> tuple[Outcome | None, Any]:
    """POST JSON; (None, reply document) on 2xx, else (the failure outcome, None)."""
    try:
        async with session.post(url, data=orjson.dumps(doc),
                                headers={"Content-Type": "application/json", **headers},
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.read()
            if resp.status >= 300:
                return classify(resp.status, resp.headers, body), None
            try:
                return None, orjson.loads(body) if body else {}
            except orjson.JSONDecodeError:
                # Accepted, but we cannot read an id: the message may be out. Not retried.
                reason = f"unreadable reply: {body[:200]!r}"
                return Outcome("permanent", reason=reason,
                               failure=Failure("", "bad_reply", short(reason))), None
    except TimeoutError:
        reason = f"timeout after {timeout:g}s"
        return Outcome("transient", reason=reason,
                       failure=Failure("", "timeout", reason)), None
    except aiohttp.ClientConnectionError as exc:
        reason = f"connection error: {exc}"
        return Outcome("transient", reason=reason,
                       failure=Failure("", "connection_error", short(reason))), None
    except asyncio.CancelledError:
        raise
    except aiohttp.ClientError as exc:
        reason = f"client error: {exc}"
        return Outcome("transient", reason=reason,
                       failure=Failure("", "connection_error", short(reason))), None


def accepted(reply: Any, id_path: str) -> Outcome:
    message_id = dig(reply, id_path)
    if isinstance(message_id, (int, float)):
        message_id = str(message_id)
    if not isinstance(message_id, str) or not message_id:
        reason = (f"the gateway answered 2xx without an id at {id_path!r}: "
                  f"{orjson.dumps(reply).decode()[:200]}")
        return Outcome("permanent", reason=reason,
                       failure=Failure("", "bad_reply", short(reason)))
    return Outcome("accepted", message_id=message_id)
