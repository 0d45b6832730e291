"""Phone numbers as E.164 digits, whatever form a gateway writes them in (SPEC 6.2).

Replies are attributed by number, and every gateway spells a number its own way:
whatsapp-web.js and WAHA `6281234567890@c.us`, Baileys / Evolution
`6281234567890@s.whatsapp.net` (sometimes with a `:device` suffix), Twilio
`whatsapp:+6281234567890`, Cloud API `6281234567890`, people `+62 812-3456-7890`. They all
become the same digits here. A `@lid` sender (WhatsApp's privacy id) is not a phone
number and is never guessed into one: such replies are attributed only by an explicit
quoted id. Group (`@g.us`), broadcast and newsletter ids are not people at all.
"""

from __future__ import annotations

import hashlib

MIN_DIGITS = 7  # the shortest E.164 numbers (a few small countries) have 7 digits
MAX_DIGITS = 15  # ITU-T E.164

NOT_A_PERSON = ("@g.us", "@broadcast", "@newsletter", "@lid", "@call")
PERSON_SUFFIXES = ("@c.us", "@s.whatsapp.net")
_SEPARATORS = str.maketrans("", "", " -.()/\u00a0")


def e164_digits(value: str | None) -> str | None:
    """`value` as E.164 digits without '+', or None when it is not a phone number.

    `…@c.us`, `…@s.whatsapp.net` (device suffix dropped), `whatsapp:+…`, `+62 812-…` and
    bare digits are accepted; `…@lid`, groups and anything with letters are not. A
    leading `00` international prefix is read like '+'. A national number (`0812…`)
    stays as written: without a country it cannot be made E.164.
    """
    if not value or not isinstance(value, str):
        return None
    if MIN_DIGITS <= len(value) <= MAX_DIGITS and value.isascii() and value.isdigit() \
            and not value.startswith("00"):
        return value  # already bare digits (the Cloud API's form): nothing to take off
    text = value.strip()
    if text.startswith("whatsapp:"):
        text = text[len("whatsapp:"):]
    if "@" in text:
        lowered = text.lower()
        if lowered.endswith(NOT_A_PERSON) or not lowered.endswith(PERSON_SUFFIXES):
            return None
        text = text[: text.index("@")].split(":", 1)[0]  # 62812…:12@s.whatsapp.net
    text = text.translate(_SEPARATORS)
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    if not (text.isascii() and text.isdigit()):
        return None
    if not MIN_DIGITS <= len(text) <= MAX_DIGITS:
        return None
    return text


def number_prefix(value: str) -> str | None:
    """The start of a number as a person types it (a contacts search), in the form
    numbers are stored in: the digits `e164_digits` would keep. Separators are ignored,
    a leading '+' or `00` is the international prefix, and a national `0…` stays as
    written (a stored number has its country code, so `0812` finds only numbers
    registered without one). None when it is not the start of a number (letters, no
    digit, longer than a number)."""
    text = value.strip().translate(_SEPARATORS)
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_DIGITS:
        return None
    return text


def is_lid(value: str | None) -> bool:
    """A WhatsApp privacy id (`…@lid`): a person, but no phone number to match."""
    return isinstance(value, str) and value.strip().lower().endswith("@lid")


def is_group(value: str | None) -> bool:
    """A group, broadcast list, status or newsletter chat id (not one person)."""
    if not isinstance(value, str):
        return False
    lowered = value.strip().lower()
    return lowered.endswith(("@g.us", "@broadcast", "@newsletter")) or lowered.startswith(
        "status@")


_NUMBER_PREFIX = hashlib.blake2b(b"n:", digest_size=8)


def number_key(digits: str) -> int:
    """A stable signed 64-bit hash of E.164 digits (never 0), stored with each message
    row so that the rows sent to a number are found by an index, not by a scan.
    blake2b of "n:" + digits, from a copy of the prefix's state (a quarter cheaper: one
    per reply)."""
    state = _NUMBER_PREFIX.copy()
    state.update(digits.encode("ascii"))
    return int.from_bytes(state.digest(), "little", signed=True) or 1


def number_key_of(recipient: str | None) -> int | None:
    """The key of a recipient as registered (any form above), None if not a number."""
    digits = e164_digits(recipient)
    return number_key(digits) if digits else None
