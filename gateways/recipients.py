"""Recipient lists as operators paste them: normalise, reject what is not a number, dedupe.

"+62 812-3456-7890", "0062812...", "6281234567890@c.us" all become "6281234567890"
(E.164 digits without '+'). A number starting with a single 0 is a local number with
no country code: refused, because guessing the country messages the wrong person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SEPARATORS = re.compile(r"[\s\-().]")


def normalise(raw: str) -> tuple[str | None, str | None]:
    """(digits, None) or (None, why it is not a valid number)."""
    value = raw.strip()
    for suffix in ("@c.us", "@s.whatsapp.net"):
        if value.endswith(suffix):
            value = value[: -len(suffix)]
    value = SEPARATORS.sub("", value)
    if value.startswith("+"):
        value = value[1:]
    elif value.startswith("00"):
        value = value[2:]
    elif value.startswith("0"):
        return None, "starts with 0: write it with its country code, e.g. +62 812..."
    if not (value.isascii() and value.isdigit()):  # isdigit() alone takes '²' and '٣'
        return None, "must contain only digits, spaces, dashes, dots, parentheses and a leading +"
    if not 8 <= len(value) <= 15:
        return None, f"has {len(value)} digits; a number with country code has 8 to 15"
    return value, None


@dataclass(slots=True)
class Recipient:
    index: int
    number: str
    contact_id: str | None
    variables: dict[str, Any] | None


@dataclass(slots=True)
class RecipientReport:
    valid: list[Recipient] = field(default_factory=list)
    invalid: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": len(self.valid), "invalid": self.invalid,
                "duplicates": self.duplicates}


def parse_recipients(items: list[Any]) -> RecipientReport:
    """Every item is a string or {recipient, contact_id?, variables?}; report by index."""
    report = RecipientReport()
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        contact = variables = None
        raw: Any = item
        if isinstance(item, dict):
            raw = item.get("recipient")
            contact = item.get("contact_id")
            variables = item.get("variables")
            if contact is not None and (isinstance(contact, bool)
                                        or not isinstance(contact, (str, int))):
                report.invalid.append({"index": i, "value": raw,
                                       "reason": "contact_id must be a string or an integer"})
                continue
            if variables is not None and not isinstance(variables, dict):
                report.invalid.append({"index": i, "value": raw,
                                       "reason": "variables must be an object"})
                continue
        if not isinstance(raw, str):
            shown = raw if isinstance(raw, (int, float)) else None
            report.invalid.append({"index": i, "value": shown,
                                   "reason": "a recipient must be a phone number as a string"})
            continue
        number, problem = normalise(raw)
        if number is None:
            report.invalid.append({"index": i, "value": raw[:64], "reason": problem})
            continue
        if number in first:
            report.duplicates.append({"index": i, "recipient": number,
                                      "first_index": first[number]})
            continue
        first[number] = i
        report.valid.append(Recipient(i, number, None if contact is None else str(contact)[:64],
                                      variables))
    return report
