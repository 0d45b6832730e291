"""The rules one send follows, apart from the sending runtime that applies them
(actors/sender_service.py): what a gateway's refusal means for the message and the
campaign (the failure table's decision, SPEC 7.1), the text sent to a recipient (its
variables in the campaign's `{{placeholders}}`), and a lateness as people say it."""

from __future__ import annotations

import re
from dataclasses import replace

import orjson

from core.config import Config
from domain.failures import FAIL, PAUSE, decide, from_text, known
from gateways.base import Outcome

VAR_RE = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")


def judge_outcome(outcome: Outcome, attempt: int, gateway: str, config: Config) -> Outcome:
    """What a refused send means, decided by the failure table (SPEC 7.1), not by the
    gateway: retry with backoff (throttled, temporary), retry after
    `sender.marketing_cap_retry_after` (Limited by Meta, when
    `sender.retry_limited_by_meta` is on: kind "later"), pause the campaign (account
    problems: kind "halt"), or fail the message (kind "permanent"). A refusal whose code
    the table does not know keeps the gateway's own triage (e.g. the seed service's
    "session not connected" halt), within `sender.max_attempts`."""
    if outcome.kind in ("accepted", "unknown"):
        return outcome
    failure = outcome.failure or from_text(outcome.reason, gateway)
    if not failure.source:
        failure = failure._replace(source=gateway)
    if not known(failure.code):
        if outcome.kind == "transient" and attempt >= config["sender.max_attempts"]:
            return Outcome("permanent", reason=f"gave up after {attempt} attempts: "
                           f"{outcome.reason}", failure=failure)
        return replace(outcome, failure=failure)
    decision = decide(failure.code, attempt=attempt,
                      max_attempts=config["sender.max_attempts"],
                      retry_later=config["sender.retry_limited_by_meta"],
                      later_after=config["sender.marketing_cap_retry_after"])
    reason = outcome.reason or failure.text()
    if decision.action == PAUSE:
        return Outcome("halt", reason=reason, failure=failure)
    if decision.action == FAIL:
        if outcome.kind == "transient" or decision.category in ("throttled", "temporary"):
            reason = f"gave up after {attempt} attempts: {reason}"
        return Outcome("permanent", reason=reason, failure=failure)
    if decision.delay is not None:
        return Outcome("later", reason=reason, retry_after=decision.delay, failure=failure)
    return Outcome("transient", reason=reason, retry_after=outcome.retry_after,
                   failure=failure)


def render(text: str, variables: str | None) -> str:
    """`{{name}}` placeholders from the recipient's variables (unknown ones stay)."""
    if not variables or "{{" not in text:
        return text
    values = orjson.loads(variables)
    return VAR_RE.sub(lambda m: str(values.get(m[1], m[0])), text)


def duration_text(seconds: float) -> str:
    """A lateness as people say it: "40 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
