"""Stop / start keywords (SPEC 6.4) decided the same on the ASCII shortcut of
`Keywords.kind_of_text` (bytes, one dict) as by the rule itself: the whole message, case,
spaces and punctuation ignored, NFKC + casefold, a stop winning a word in both lists."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.inbound import REPLY, START, STOP, Keywords


def rule(text: str | None, stop: list[str], start: list[str]) -> int:
    """The rule as SPEC 6.4 words it, written without any shortcut."""
    def key(value: str | None) -> str:
        folded = unicodedata.normalize("NFKC", value or "").casefold()
        return "".join(ch for ch in folded if ch.isalnum()).upper()
    if key(text) and key(text) in {key(word) for word in stop}:
        return STOP
    if key(text) and key(text) in {key(word) for word in start}:
        return START
    return REPLY


WORDS = ["stop", "STOP ALL", "opt-out", "Berhenti", "mulai lagi", "Stöp", "ＳＴＯＰ", "ß",
         "keluar", "x1", "½", "", "!!"]
words = st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=6)), max_size=4)
texts = st.one_of(
    st.none(), st.sampled_from(WORDS), st.text(max_size=12),
    st.text(st.characters(max_codepoint=127), max_size=12),
    st.builds(lambda w, pad: pad + w.upper() + pad, st.sampled_from(WORDS),
              st.sampled_from(["", " ", "! ", ".", "\n"])))


@settings(max_examples=500, deadline=None)
@given(texts, words, words)
def test_a_text_is_a_keyword_exactly_as_the_rule_says(text: str | None, stop: list[str],
                                                      start: list[str]) -> None:
    assert Keywords(stop, start).kind_of_text(text) == rule(text, stop, start)


def test_a_word_in_both_lists_stops_and_ascii_texts_match_only_their_own_keys() -> None:
    both = Keywords(stop=["Berhenti", "ss"], start=["berhenti!", "mulai"])
    assert both.kind_of_text(" BERHENTI. ") == STOP  # in both lists: a stop
    assert both.kind_of_text("Mulai") == START
    assert both.kind_of_text("ß") == STOP  # not ASCII: casefold makes it "ss"
    fullwidth = Keywords(stop=["ＳＴＯＰ"], start=[])  # NFKC: the key is "STOP"
    assert fullwidth.kind_of_text("stop!") == STOP
    assert fullwidth.kind_of_text("") == REPLY and fullwidth.kind_of_text(None) == REPLY
