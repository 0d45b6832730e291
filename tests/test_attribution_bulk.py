"""An answer's first credits are decided in one pass (domain/attribution.py
`_credit_ones`, packed by `FrozenReplies.freeze_credit`): the same credits, counts,
store records and packed replies as when each number is reconsidered one by one by the
general rules (`_reconsider`, `_rest`, `freeze`), whatever the rows' facts are (not
sent, failed, outside the window, another workspace, a floor, a later attempt)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.attribution import Ask, Attributor, Credit, Lookup, expand_ops
from domain.attribution_columns import RECORD
from domain.inbound import MESSAGE, REPLY, InboundEvent
from domain.phones import number_key
from tests.examples import examples

NOW = 1_700_000_000.0
CAMPAIGN = 4
WINDOW = 72 * 3600.0

facts = st.fixed_dictionaries({
    # seconds before the reply it was sent (None: not sent; negative: after the reply)
    "sent": st.one_of(st.none(), st.sampled_from([-30, 5, 60, 3600, WINDOW + 60])),
    "level": st.integers(0, 4),
    "failed": st.booleans(),
    "floor": st.sampled_from([None, 0, 200_000]),  # seconds before the reply
    "attempt": st.sampled_from([1, 1, 2]),
    "workspace": st.sampled_from([None, None, 1, 2]),  # the reply's (the campaign's is 1)
    "button": st.booleans(),
    "digits": st.sampled_from(["62812", "062812", "62812" + "9" * 14]),
})


def reply(n: int, f: dict[str, Any]) -> InboundEvent:
    payload = ("yes", "Yes") if f["button"] else (None, None)
    return InboundEvent(f"cloud:wamid.R{n}", REPLY, MESSAGE, NOW, f"{f['digits']}{n:05d}",
                        f["workspace"], None, *payload)


def answer(row: int, ask_serial: int, f: dict[str, Any]) -> tuple[Any, ...]:
    at = int(NOW * 10)
    sent = None if f["sent"] is None else at - int(f["sent"] * 10)
    floor = None if f["floor"] is None else at - f["floor"] * 10
    return (row, sent, f["level"], f["failed"], floor, f["attempt"], f["attempt"])


def decide(cases: list[dict[str, Any]], one_by_one: bool) -> dict[str, Any]:
    """Replies from new numbers, each sent one row of CAMPAIGN; the batch's lookup and
    the campaign's answer as the ingest actor brings them; what came of it."""
    attributor = Attributor(WINDOW, lambda _id: None, lambda no: 1 if no == CAMPAIGN else None)
    if one_by_one:  # every number left to `_reconsider`
        attributor._credit_ones = lambda _no, ones: [key for key, *_ in ones]  # type: ignore[method-assign]
    events = [reply(n, f) for n, f in enumerate(cases)]
    attributor.inbound_batch("cloud", events, NOW + 1)
    (lookup,) = attributor.take_effects()
    assert isinstance(lookup, Lookup)
    row_of = {number_key(e.number): n for n, e in enumerate(events)}  # type: ignore[arg-type]
    attributor.number_rows(lookup.serial, lookup.keys,
                           [(key, CAMPAIGN, row_of[key]) for key in lookup.keys])
    (ask,) = attributor.take_effects()
    assert isinstance(ask, Ask)
    attributor.row_facts(ask.serial, CAMPAIGN,
                         [answer(row, ask.serial, cases[row]) for row in ask.rows])
    credits = sorted((e.inbound_id, e.campaign_no, e.row, e.touch)
                     for e in attributor.take_effects() if isinstance(e, Credit))
    ops = sorted(expand_ops(attributor.take_ops()), key=repr)
    frozen = attributor.frozen
    packed = {}
    for inbound_id, held in attributor.live.items():
        if held.__class__ is int:
            packed[inbound_id] = (
                bytes(frozen.records[held * RECORD.size:(held + 1) * RECORD.size]),
                frozen.extras.get(held))
    return {"credits": credits, "outcomes": attributor.take_outcomes(), "ops": ops,
            "packed": packed, "live": sorted(attributor.live)}


@settings(max_examples=examples(200), deadline=None)
@given(cases=st.lists(facts, min_size=1, max_size=8))
def test_an_answers_credits_in_one_pass_equal_one_by_one(cases: list[dict[str, Any]]) -> None:
    bulk = decide(cases, one_by_one=False)
    assert bulk == decide(cases, one_by_one=True)


def test_a_plain_answer_is_credited_and_packed_in_one_pass() -> None:
    """The common case itself: every reply credited to its number's row and packed."""
    case = {"sent": 60, "level": 3, "failed": False, "floor": 0, "attempt": 1,
            "workspace": None, "button": False, "digits": "62812"}
    result = decide([case, case, case], one_by_one=False)
    assert [c[:3] for c in result["credits"]] == [
        (f"cloud:wamid.R{n}", CAMPAIGN, n) for n in range(3)]
    assert result["outcomes"] == {("cloud", "credited"): 3}
    assert len(result["packed"]) == 3
