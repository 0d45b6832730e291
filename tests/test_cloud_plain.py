"""The Cloud API parser's quick path for plain delivery statuses and plain replies
(web/sources/cloud.py `_plain_batch`) gives exactly what the careful walk gives, and
leaves anything else to it (SPEC 4: batches of statuses and of replies are the hot path;
SPEC 5: bad input is still named)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.inbound import Keywords
from tests.examples import examples
from web.sources import BadPayload, ParseContext
from web.sources.cloud import _plain_batch, _plain_statuses, walk

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


def careful(doc: Any, ctx: ParseContext | None = None) -> Any:
    try:
        return walk(doc, ctx or ParseContext(NOW))
    except BadPayload as exc:
        return ("refused", str(exc))


@settings(max_examples=examples(400), deadline=None)
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


# Replies: the fields `_message` reads, plain (texts, keywords, buttons, quotes: the quick
# path takes them) or awkward (a number the careful walk reads differently or refuses,
# another type, a body that is not a string: the quick path must leave them).
bodies = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(
    ["STOP", " stop! ", "Berhenti.", "mulai", "opt-out", "Stöp", "berapa harganya?",
     "\uff33\uff34\uff2f\uff30"]))  # the last: a full-width STOP
plain_fields = {
    "id": st.from_regex(r"\Awamid\.[A-Za-z0-9_=-]{1,10}\Z"),
    "from": st.from_regex(r"\A[1-9][0-9]{6,14}\Z"),
}
plain_optional = {
    "timestamp": st.one_of(st.none(), st.from_regex(r"\A1[0-9]{9}\Z")),
    "context": st.one_of(st.just({}), st.fixed_dictionaries(
        {"id": st.sampled_from(["wamid.C1", "true_62811@c.us_3EB0", ""])},
        optional={"from": st.just("15550783881")})),
}
plain_texts = st.fixed_dictionaries(
    {**plain_fields, "type": st.just("text")},
    optional={**plain_optional, "text": st.fixed_dictionaries({}, optional={"body": bodies})})
plain_buttons = st.fixed_dictionaries(
    {**plain_fields, "type": st.just("button"), "button": st.fixed_dictionaries(
        {}, optional={"payload": bodies, "text": bodies})}, optional=plain_optional)
awkward_messages = st.fixed_dictionaries(
    {"id": ids, "type": st.sampled_from(["text", "button", "interactive", "image", "system",
                                         "reaction", "", 3]),
     "from": st.one_of(st.sampled_from(
         ["0062812345678", "+6281234567890", "62 812 3456 7890", "123", "1" * 16,
          "1234567@lid", "abc", "", " 6281234567890", "6281234567890@c.us"]),
         st.from_regex(r"\A[0-9]{5,17}\Z"), st.integers(), st.none())},
    optional={"timestamp": stamps, "context": st.one_of(st.just([]), st.just({"id": 5}),
                                                        st.fixed_dictionaries({"id": ids})),
              "text": st.one_of(st.just("hi"), st.just({"body": "x" * 65537}),
                                st.just({"body": 1})),
              "button": st.one_of(st.just([]), st.just({"payload": 1}))})
plain_messages = st.one_of(plain_texts, plain_buttons)
plain_contacts = st.lists(st.fixed_dictionaries(
    {}, optional={"wa_id": st.just("16505551234"), "profile": st.just({"name": "A"})}),
    max_size=2)
awkward_contacts = st.one_of(st.just("x"), st.lists(st.one_of(
    st.just("x"), st.fixed_dictionaries({"wa_id": ids})), min_size=1, max_size=2))
plain_statuses = st.just([{"id": "wamid.S", "status": "read", "timestamp": "1750000000"}])


def reply_docs(messages: st.SearchStrategy[Any], awkward: bool = False
               ) -> st.SearchStrategy[Any]:
    """Cloud bodies of replies (with contacts and a status now and then); `awkward`
    adds what the quick path must leave to the careful walk."""
    optional: dict[str, st.SearchStrategy[Any]] = {
        "contacts": plain_contacts, "messaging_product": st.just("whatsapp"),
        "statuses": plain_statuses}
    if awkward:
        optional.update(contacts=st.one_of(plain_contacts, awkward_contacts),
                        statuses=st.one_of(plain_statuses, st.lists(statuses, max_size=2)),
                        user_preferences=st.just([]))
    values = st.fixed_dictionaries({"messages": st.lists(messages, min_size=1, max_size=3)},
                                   optional=optional)
    return st.fixed_dictionaries({"entry": st.lists(st.fixed_dictionaries(
        {"changes": st.lists(st.fixed_dictionaries({"value": values},
                                                   optional={"field": st.just("messages")}),
                             min_size=1, max_size=2)}), min_size=1, max_size=2)})


# A nested reply body costs ~27 ms to draw: 200 examples each (not 400) keep the whole
# suite's margin under its 5 minutes (the two tests took 21-24 s at 400).
contexts_of_parse = st.builds(
    lambda keep, stop: ParseContext(NOW, keep_reply_text=keep,
                                    keywords=Keywords(stop=stop) if stop else Keywords()),
    st.booleans(), st.sampled_from([(), ("STOP", "BERHENTI"), ("harganya",)]))


@settings(max_examples=examples(200), deadline=None)
@given(reply_docs(plain_messages), contexts_of_parse)
def test_the_quick_path_for_plain_replies_agrees_with_the_careful_walk(
        doc: dict[str, Any], ctx: ParseContext) -> None:
    """Texts, keywords, buttons, quotes, with and without the reply text kept: the
    quick path takes every such body, and gives the careful walk's events."""
    quick = _plain_batch(doc, ctx)
    assert quick is not None and quick == careful(doc, ctx)


@settings(max_examples=examples(200), deadline=None)
@given(reply_docs(st.one_of(plain_messages, awkward_messages), awkward=True),
       contexts_of_parse)
def test_the_quick_path_leaves_awkward_replies_to_the_careful_walk(
        doc: dict[str, Any], ctx: ParseContext) -> None:
    quick = _plain_batch(doc, ctx)
    if quick is not None:
        assert quick == careful(doc, ctx)


def test_a_plain_batch_of_replies_takes_the_quick_path() -> None:
    """What campaign recipients send: texts (some quoting the campaign message, one a
    stop keyword) and quick-reply buttons, with the contacts Meta adds."""
    items: list[dict[str, Any]] = []
    for i in range(100):
        item: dict[str, Any] = {"from": f"62{i:010d}", "id": f"wamid.IN{i}",
                                "timestamp": "1750000000"}
        if i % 4 == 3:
            item.update(type="button", button={"payload": "YES", "text": "Yes please"},
                        context={"from": "15550783881", "id": f"wamid.C{i}"})
        else:
            item.update(type="text", text={"body": "STOP" if i == 5 else "berapa?"})
            if i % 3 == 0:
                item["context"] = {"from": "15550783881", "id": f"wamid.C{i}"}
        items.append(item)
    doc = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp",
                                        "metadata": {"phone_number_id": "1"},
                                        "contacts": [{"wa_id": "6200", "profile": {}}],
                                        "messages": items}}]}]}
    quick = _plain_batch(doc, ParseContext(NOW))
    assert quick is not None and len(quick) == 100 and quick == careful(doc)
    assert sum(e.kind != 0 for e in quick) == 1  # the STOP
    assert {e.quoted_id for e in quick[:4]} == {"wamid.C0", None, "wamid.C3"}


def test_fields_repeated_in_a_batch_are_checked_for_each_status() -> None:
    """The quick path checks a timestamp or recipient equal to the status before once;
    a different value after it (a number for a string, a padded recipient) is still
    checked, and the batch left to the careful walk."""
    def batch(*tails: dict[str, Any]) -> dict[str, Any]:
        good = [{"id": f"wamid.{i}", "status": "read", "timestamp": "1750000000",
                 "recipient_id": "16505551234"} for i in range(3)]
        return {"entry": [{"changes": [{"value": {"statuses": [*good, *tails]}}]}]}
    same = batch({"id": "wamid.x", "status": "sent", "timestamp": "1750000000",
                  "recipient_id": "16505551234"})
    quick = _plain_statuses(same, NOW)
    assert quick is not None and quick == careful(same)
    assert [e.at for e in quick] == [1_750_000_000.0] * 4
    for tail in ({"id": "w", "status": "sent", "timestamp": 1750000000},
                 {"id": "w", "status": "sent", "timestamp": "1750000000",
                  "recipient_id": " 16505551234"},
                 {"id": "w", "status": "sent", "recipient_id": "1650\n5551234"}):
        assert _plain_statuses(batch(tail), NOW) is None


def test_a_timestamp_repeated_across_replies_is_checked_when_it_changes() -> None:
    """The quick path checks a reply's timestamp equal to the reply before once; each
    reply still gets its own time, and a different value after it (a number for a
    string, a padded one) is checked and the batch left to the careful walk."""
    def batch(*tails: dict[str, Any]) -> dict[str, Any]:
        good = [{"from": f"6281234567{i}", "id": f"wamid.IN{i}", "type": "text",
                 "timestamp": "1750000000" if i < 2 else "1750000009",
                 "text": {"body": "berapa?"}} for i in range(4)]
        return {"entry": [{"changes": [{"value": {"messages": [*good, *tails]}}]}]}
    same = batch()
    quick = _plain_batch(same, ParseContext(NOW))
    assert quick is not None and quick == careful(same)
    assert [e.at for e in quick] == [1_750_000_000.0] * 2 + [1_750_000_009.0] * 2
    for stamp in (1750000009, " 1750000009", "175000000912", "-1"):
        tail = {"from": "628123456789", "id": "wamid.x", "type": "text",
                "timestamp": stamp}
        assert _plain_batch(batch(tail), ParseContext(NOW)) is None
