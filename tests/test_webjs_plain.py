"""The webjs parser's quick path for the usual single status (web/sources/webjs.py
`_plain_status`) gives exactly what the careful walk gives, and leaves anything else to
it (SPEC 4: one status per request is the hot path; SPEC 5: bad input is still named)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.examples import examples
from web.sources import BadPayload, ParseContext
from web.sources.webjs import _one, _plain_status, parse

NOW = 1_763_600_000.0

ids = st.one_of(st.text(min_size=0, max_size=12), st.just("true_6281@c.us_3EB0A1"),
                st.just("false_1@c.us_X_Y"), st.just(" padded "), st.just("x" * 513),
                st.just("a\nb"), st.just("a\x00"), st.integers(-9, 9), st.none(), st.just([1]))
names = st.one_of(st.sampled_from(["message_status_updated", "message_delivered",
                                   "message_read", "message_received", "session_ready",
                                   " message_read", ""]),
                  st.integers(-9, 9), st.none(), st.just(["message_read"]), st.just({"a": 1}))
acks = st.one_of(st.none(), st.integers(-3, 6), st.just("2"), st.just(True), st.just(2.0))
data = st.fixed_dictionaries(
    {"message_id": ids},
    optional={"ack_level": acks, "status": st.sampled_from(["delivered", "read", "nope"]),
              "workspace_id": st.one_of(st.none(), st.integers(-9, 2**40), st.just("7"),
                                        st.just(True), st.just(1.5)),
              "recipient": st.one_of(st.none(), ids),
              "error": st.one_of(st.none(), st.just("boom"), st.just({"code": "x"}),
                                 st.just(3)),
              "fromMe": st.one_of(st.booleans(), st.none()),
              "session_id": st.just("s1"), "timestamp": st.just(1763600000)})
docs = st.fixed_dictionaries({"event": names},
                             optional={"data": st.one_of(data, st.none(), st.just([]))})


def careful(doc: Any, numbering: str) -> Any:
    ctx = ParseContext(NOW, numbering)
    try:
        return _one(doc, "", ctx), ctx.ignored
    except BadPayload as exc:
        return ("refused", str(exc))


@settings(max_examples=examples(600), deadline=None)
@given(docs, st.sampled_from(["webjs", "baileys"]))
def test_the_quick_path_agrees_with_the_careful_walk(doc: dict[str, Any],
                                                     numbering: str) -> None:
    ctx = ParseContext(NOW, numbering)
    quick = _plain_status(doc, ctx)
    if quick is not None:  # it took the body: the walk gives the same event, ignores none
        assert (quick, []) == careful(doc, numbering)
    # and through parse() the answer is the walk's either way
    whole = ParseContext(NOW, numbering)
    try:
        got: Any = (parse(orjson.dumps(doc), whole), whole.ignored)
    except BadPayload as exc:
        got = ("refused", str(exc))
    expected = careful(doc, numbering)
    if expected[0] != "refused":
        expected = ([expected[0]] if expected[0] is not None else [], expected[1])
    assert got == expected


def test_the_seed_s_status_takes_the_quick_path() -> None:
    doc = {"event": "message_status_updated", "data": {
        "workspace_id": 1, "session_id": "s1", "message_id": "true_6281@c.us_M5",
        "status": "delivered", "ack_level": 3, "timestamp": 1763600000}}
    event = _plain_status(doc, ParseContext(NOW))
    assert event is not None and event.message_id == "M5" and not event.failed
    assert [event] == parse(orjson.dumps(doc), ParseContext(NOW))
