"""The page's message catalogues agree with each other and with the code that uses them.

Every language has exactly the keys of English with the same {placeholders} (a missing
key would show English, a missing placeholder would drop a number); every key the page
asks for exists; no key is dead weight; keys are looked up by literal name only, so
this scan sees them all.
"""

from __future__ import annotations

import re

from tests.page_catalogue import STATIC, forms, languages, load, placeholders

PLURAL_FORMS = {"zero", "one", "two", "few", "many", "other"}  # Intl.PluralRules categories
# Keys for features whose branches are on their way; their words are settled. Remove a
# key from here once the page uses it (issue 10's replies and issue 13's scheduling both
# use theirs now).
RESERVED: set[str] = set()
CALL = re.compile(r"""\b(tn?)\(\s*(["'`]?)([^"'`),\s]*)""")


def page_sources() -> dict[str, str]:
    """The page's modules that use the catalogue (not i18n.js, which defines t)."""
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(STATIC.glob("*.js"))
            if path.name != "i18n.js"}


def used_keys() -> tuple[set[str], list[str]]:
    """Keys the page asks for, and calls whose key is not a literal (which no scan can see)."""
    keys: set[str] = set()
    dynamic: list[str] = []
    for name, text in page_sources().items():
        for number, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith(("//", "*", "/*")):
                continue
            for fn, quote, key in CALL.findall(line):
                if quote in ('"', "'") and key:
                    keys.add(key)
                else:
                    dynamic.append(f"{name}:{number}: {fn}({quote}{key}")
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    keys |= set(re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', html))
    return keys, dynamic


def test_the_page_has_english_and_bahasa_indonesia() -> None:
    assert languages() == ["en", "id"]
    i18n = (STATIC / "i18n.js").read_text(encoding="utf-8")
    for language in languages():  # each catalogue is imported and offered by the switch
        assert f'from "./i18n/{language}.js"' in i18n
        assert f'["{language}", "{language.upper()}"' in i18n


def test_every_language_has_the_keys_and_placeholders_of_english() -> None:
    english = load("en")
    for language in languages():
        catalogue = load(language)
        assert sorted(set(english) - set(catalogue)) == [], f"{language}.js lacks these keys"
        assert sorted(set(catalogue) - set(english)) == [], f"{language}.js has keys en.js lacks"
        differ = {key: (sorted(placeholders(english[key])), sorted(placeholders(message)))
                  for key, message in catalogue.items()
                  if placeholders(message) != placeholders(english[key])}
        assert differ == {}, f"{language}.js: placeholders differ from en.js (en, {language})"
        for key, message in catalogue.items():
            assert all(isinstance(text, str) and text.strip() for text in forms(message)), key
            if isinstance(message, dict):
                assert "other" in message and set(message) <= PLURAL_FORMS, (language, key)
                assert "count" in placeholders(message), f"{language}.js {key}: plural by count"


def test_english_has_plural_forms_and_indonesian_does_not_need_them() -> None:
    english, indonesian = load("en"), load("id")
    plural = {key for key, message in english.items() if isinstance(message, dict)}
    assert {"form.characters", "form.report.valid", "unknown.text"} <= plural
    for key in plural:
        assert set(english[key]) == {"one", "other"}, key
        assert isinstance(indonesian[key], str), f"id.js {key}: Indonesian has no plural forms"


def test_every_key_the_page_uses_exists_and_every_key_is_used() -> None:
    keys, dynamic = used_keys()
    assert dynamic == [], "t() and tn() take a literal key, so this test can see every key"
    english = set(load("en"))
    assert sorted(keys - english) == [], "used by the page but missing from the catalogues"
    assert sorted(english - keys - RESERVED) == [], "in the catalogues but not used"
    assert len(keys) > 150  # the scan really found the page's calls


def test_the_scan_sees_literal_and_dynamic_calls() -> None:
    """The scanner itself: a literal key is found, anything else is reported."""
    found = [(fn, quote, key) for fn, quote, key in CALL.findall(
        'x(t("a.b"), tn(\'c.d\', {}), t(name), t(`e.${f}`), at("no"), t( "g.h" ))')]
    assert found == [("t", '"', "a.b"), ("tn", "'", "c.d"), ("t", "", "name"),
                     ("t", "`", "e.${f}"), ("t", '"', "g.h")]


def test_failure_categories_say_what_the_failure_table_says() -> None:
    """The page's words for the nine failure categories: English is domain/failures.py's
    (so the page and docs/failures.md agree), every language has all of them, and a
    config key is a {key} placeholder (written as code), never a translated word."""
    from domain.failures import CATEGORIES

    english, indonesian = load("en"), load("id")
    for category in CATEGORIES:
        for part, said in (("label", category.label), ("explanation", category.explanation),
                           ("action", category.action)):
            key = f"failure.{category.name}.{part}"
            assert english[key].replace("{key}", "sender.retry_limited_by_meta") == said, key
            assert indonesian[key] != english[key], key
    assert "{key}" in english["failure.limited_by_meta.action"]


def test_every_failure_code_has_its_label_in_every_language() -> None:
    """A recipient's failure shows its code's own label in the page's language: English is
    the label of domain/failures.py (so page, API, CSV and docs/failures.md agree), every
    code of the table is in every catalogue and in the page's map (web/static/failures.js),
    and Indonesian says it in Indonesian."""
    from domain.failures import CODES

    english, indonesian = load("en"), load("id")
    keys = {f"failure.code.{c.code}" for c in CODES}
    assert keys == {k for k in english if k.startswith("failure.code.")}
    for c in CODES:
        key = f"failure.code.{c.code}"
        assert english[key] == c.label, key
        assert indonesian[key] != english[key], key
    page = (STATIC / "failures.js").read_text(encoding="utf-8")
    mapped = set(re.findall(r'^  "([^"]+)": \(\) => t\("failure\.code\.\1"\),$', page, re.M))
    assert mapped == {c.code for c in CODES}
