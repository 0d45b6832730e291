"""The Cloud API parser's quick path for plain delivery statuses (web/sources/cloud.py
`_plain_statuses`) gives exactly what the careful walk gives, and leaves anything else
to it (SPEC 4: batches of statuses are the hot path; SPEC 5: bad input is still named)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from web.sources import BadPayload, ParseContext
from web.sources.cloud import _plain_statuses, walk

NOW = 1_763_600_000.0

ids = st.one_of(st.text(min_size=0, max_size=20), st.just("wamid.HBgLMTY1MDM4Nzk0MzkVAg"),
                st.just(" padded "), st.just("x" * 513), st.just("a\nb"), st.integers(),
                st.none())
names = st.one_of(st.sampled_from(["sent", "delivered", "read", "played", "failed", "SENT",
                                   "deleted", ""]), st.integers(), st.lists(st.integers()))
stamps = st.one_of(st.none(), st.from_regex(r"\A[0-9]{1,12}\Z"), st.just("-1"),
                   st.just(" 1750000000"), st.integers(0, 10**11), st.floats())
statuses = st.fixed_dictionaries(
    {"id": ids, "status": names},
    optional={"timestamp": stamps, "recipient_id": ids, "errors": st.just([]),
              "conversation": st.just({"id": "c"}), "other": st.just(1)})
values = st.fixed_dictionaries({"statuses": st.lists(statuses, max_size=4)},
                               optional={"messaging_product": st.just("whatsapp"),
                                         "contacts": st.just([])})
changes = st.fixed_dictionaries({"value": values},
                                optional={"field": st.sampled_from(
                                    ["messages", "account_update", 7])})
docs = st.fixed_dictionaries({"entry": st.lists(st.fixed_dictionaries(
    {"changes": st.lists(changes, max_size=2)}), max_size=2)})


def careful(doc: Any) -> Any:
    try:
        return walk(doc, ParseContext(NOW))
    except BadPayload as exc:
        return ("refused", str(exc))


@settings(max_examples=400, deadline=None)
@given(docs)
def test_the_quick_path_agrees_with_the_careful_walk(doc: dict[str, Any]) -> None:
    quick = _plain_statuses(doc, NOW)
    if quick is not None:  # it took the body: the walk gives the same events
        assert quick == careful(doc)


def test_a_plain_batch_takes_the_quick_path() -> None:
    doc = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", "statuses": [
            {"id": f"wamid.{i}", "status": "delivered", "timestamp": "1750000000",
             "recipient_id": "16505551234"} for i in range(100)]}}]}]}
    quick = _plain_statuses(doc, NOW)
    assert quick is not None and len(quick) == 100 and quick == careful(doc)


def test_failures_messages_and_bad_fields_take_the_careful_walk() -> None:
    failed = {"entry": [{"changes": [{"value": {"statuses": [
        {"id": "w1", "status": "failed", "errors": [{"code": 131026}]}]}}]}]}
    reply = {"entry": [{"changes": [{"value": {"messages": [
        {"from": "6281", "id": "in1", "type": "text", "text": {"body": "hi"}}]}}]}]}
    bad = {"entry": [{"changes": [{"value": {"statuses": [
        {"id": "w1", "status": "read", "timestamp": "99999999999999"}]}}]}]}
    for doc in (failed, reply, bad):
        assert _plain_statuses(doc, NOW) is None
    assert careful(bad)[0] == "refused" and "timestamp" in careful(bad)[1]
