"""Reading the page's message catalogues (web/static/i18n/*.js) from Python.

A catalogue is `export default` followed by one JSON object, with whole-line `//`
comments allowed (for translators' context). Reading it here rather than in node keeps
the check fast and makes the format itself a rule: a file that is not in it fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "web" / "static"
CATALOGUES = STATIC / "i18n"
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# A word of the page: letters (any script), inner apostrophes or hyphens allowed.
WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")

Message = str | dict[str, str]


def load(language: str) -> dict[str, Message]:
    """The catalogue of `language` (en, id, …) as a dict, in file order."""
    text = (CATALOGUES / f"{language}.js").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    head, sep, rest = body.partition("export default")
    if not sep or head.strip():
        raise ValueError(f"{language}.js must start with `export default {{` (after comments)")
    rest = rest.strip()
    if not rest.endswith(";"):
        raise ValueError(f"{language}.js must end with `}};`")
    doc = json.loads(rest[:-1])
    if not isinstance(doc, dict):
        raise ValueError(f"{language}.js: not an object")
    return doc


def languages() -> list[str]:
    return sorted(path.stem for path in CATALOGUES.glob("*.js"))


def forms(message: Message) -> list[str]:
    """Every text of a message: the string, or each plural form."""
    return list(message.values()) if isinstance(message, dict) else [message]


def placeholders(message: Message) -> set[str]:
    return {name for text in forms(message) for name in PLACEHOLDER.findall(text)}


def fragments(message: Message) -> list[str]:
    """The literal text of a message: its forms with the placeholders cut out."""
    return [part for text in forms(message) for part in PLACEHOLDER.split(text)[::2]]


def words(catalogue: dict[str, Message]) -> set[str]:
    """Every word the catalogue can put on the page (lower case, placeholders excluded)."""
    return {word.lower() for message in catalogue.values()
            for part in fragments(message) for word in WORD.findall(part)}
