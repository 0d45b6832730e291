"""The open replies at rest (domain/attribution_columns.py): a decided plain reply is
kept as one packed record, not as lists, and gives back exactly what it was; whatever
reaches it later (a status, a registration, another reply from its number, the end of
its window) is decided as if it had never been packed."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.attribution import Ask, Attributor, Credit, Lookup, expand_ops
from domain.attribution_columns import FrozenReplies
from domain.inbound import MESSAGE, REPLY, STOP, InboundEvent
from domain.phones import number_key
from domain.status import Level
from tests.examples import examples
from tests.test_engagement_property import (
    plain_reply,
    play,
    rebuild,
    shuffled_with_schedule,
    single_registration,
    single_status,
    unique_ids,
)

WINDOW = 72 * 3600.0
SENT = 17_000_000_000  # tenths


def reply(n: int, at: float, number: str = "6281100000001", **fields: Any) -> InboundEvent:
    return InboundEvent(f"cloud:wamid.R{n}", REPLY, MESSAGE, at, number, **fields)


class Wired:
    """One campaign (1) of rows sent to numbers, its actor's answers given at once."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[int, int]] = {}  # number key -> (campaign, row)
        self.facts: dict[int, tuple[Any, ...]] = {}  # row -> its answer
        self.credits: dict[str, tuple[int, int] | None] = {}
        self.attributor = Attributor(WINDOW, lambda _id: None, lambda _no: 7)

    def send(self, row: int, number: str, sent: int | None = SENT, failed: bool = False
             ) -> None:
        self.rows[number_key(number)] = (1, row)
        self.facts[row] = (row, sent, int(Level.DELIVERED) if sent else 0, failed, sent,
                           1, 1)

    @classmethod
    def with_packed_reply(cls) -> tuple[Wired, float]:
        """Row 5 sent to one number, whose plain reply (R1) is credited and packed; the
        reply's time."""
        wired = cls()
        wired.send(5, "6281100000001")
        at = SENT / 10 + 60
        wired.attributor.inbound_batch("cloud", [reply(1, at)], at)
        wired.run()
        return wired, at

    def run(self) -> None:
        effects = self.attributor.take_effects()
        while effects:
            for effect in effects:
                if isinstance(effect, Lookup):
                    self.attributor.number_rows(
                        effect.serial, effect.keys,
                        [(k, *self.rows[k]) for k in effect.keys if k in self.rows])
                elif isinstance(effect, Ask):
                    self.attributor.row_facts(effect.serial, effect.campaign_no,
                                              [self.facts[r] for r in effect.rows])
                elif isinstance(effect, Credit):
                    self.credits[effect.inbound_id] = \
                        (effect.campaign_no, effect.row) if effect.touch else None
            effects = self.attributor.take_effects()


def test_a_credited_plain_reply_rests_packed_and_a_status_that_changes_nothing_keeps_it():
    wired = Wired()
    wired.send(5, "6281100000001")
    wired.attributor.inbound_batch("cloud", [reply(1, SENT / 10 + 60)], SENT / 10 + 61)
    wired.run()
    assert wired.credits == {"cloud:wamid.R1": (1, 5)}
    attributor = wired.attributor
    assert len(attributor.frozen) == 1 and attributor.live["cloud:wamid.R1"].__class__ is int
    ops = list(expand_ops(attributor.take_ops()))  # its record: logged when packed
    assert [(op, rec[0], rec[12], rec[13], rec[14]) for op, rec in ops] == \
        [("put", "cloud:wamid.R1", 1, 5, "window")]
    attributor.status(1, 5, int(Level.READ), False, SENT / 10 + 90)  # still a candidate
    wired.run()
    assert len(attributor.frozen) == 1 and attributor.take_ops() == []


def test_a_packed_reply_moves_when_its_row_fails_and_when_a_later_message_registers():
    wired, at = Wired.with_packed_reply()
    attributor = wired.attributor
    key = number_key("6281100000001")
    # a later message to the same number, registered after the reply: the credit moves
    attributor.registered(1, 6, "M6", key, int(Level.PENDING), False, at - 5)
    wired.run()
    assert wired.credits == {"cloud:wamid.R1": (1, 6)}
    assert len(attributor.frozen) == 0  # thawed to be decided again
    assert list(expand_ops(attributor.take_ops()))[-1][1][12:14] == (1, 6)
    assert len(attributor.frozen) == 0  # two rows now: the lists' form
    attributor.status(1, 6, int(Level.PENDING), True, at - 4)  # that one failed
    wired.run()
    assert wired.credits == {"cloud:wamid.R1": (1, 5)}


def test_a_second_reply_from_a_packed_number_thaws_it_and_both_are_credited():
    wired, at = Wired.with_packed_reply()
    wired.attributor.inbound_batch("cloud", [reply(2, at + 1), reply(1, at)], at + 1)
    wired.run()
    assert wired.credits == {"cloud:wamid.R1": (1, 5), "cloud:wamid.R2": (1, 5)}
    assert wired.attributor.take_outcomes() == {("cloud", "credited"): 2,
                                                ("cloud", "duplicate"): 1}
    assert len(wired.attributor.frozen) == 0  # two live events from one number
    wired.attributor.take_ops()
    assert len(wired.attributor.frozen) == 0


def test_packed_replies_end_with_their_window_and_leave_nothing_behind():
    wired = Wired()
    wired.send(5, "6281100000001")
    at = SENT / 10 + 60
    wired.attributor.inbound_batch("cloud", [reply(1, at), reply(2, at, "6281100000002")],
                                   at)
    wired.run()
    attributor = wired.attributor
    attributor.take_ops()
    assert len(attributor.frozen) == 2  # one credited, one to no message (no row)
    assert attributor.expire(at + WINDOW + 1) == 1
    assert attributor.take_ops() == [("drop", "cloud:wamid.R2")]
    assert not attributor.live and not attributor.numbers and not attributor.watched
    assert len(attributor.frozen) == 0
    # the slots are used again
    wired.attributor.inbound_batch("cloud", [reply(3, at + 10)], at + 10)
    wired.run()
    assert len(attributor.frozen) == 1 and len(attributor.frozen.ids) == 2


# E.164 digits, and what the int would not give back: a leading zero, fullwidth digits
# (str.isdigit accepts them), more digits than the record's int holds for sure
numbers = st.one_of(st.from_regex(r"[1-9][0-9]{6,14}", fullmatch=True),
                    st.sampled_from(["0812", "\uff16\uff12\uff18\uff11", "1" * 19]))
maybe_int = st.one_of(st.none(), st.integers(-(1 << 63) + 1, (1 << 63) - 1))
text = st.one_of(st.none(), st.text(max_size=5))


@settings(max_examples=examples(200), deadline=None)
@given(number=numbers, workspace=maybe_int, extras=st.tuples(text, text, text, text),
       kind=st.sampled_from([REPLY, REPLY, STOP]), quoted=st.sampled_from([None, "M1"]),
       target=st.one_of(st.none(), st.tuples(st.integers(1, 1 << 24),
                                             st.integers(0, (1 << 32) - 1))),
       how=st.sampled_from([None, "window", "explicit"]),
       row=st.one_of(st.none(), st.integers(0, (1 << 56) - 1)),
       state=st.tuples(maybe_int, st.integers(0, 6), st.booleans(), st.integers(0, 1 << 40),
                       st.just(True), st.one_of(maybe_int, st.just(1.5)),
                       st.integers(1, 9), st.integers(1, 9)),
       at=st.one_of(st.floats(allow_nan=False), st.integers(0, 10)))
def test_a_packed_reply_gives_back_exactly_what_it_held(number, workspace, extras, kind,
                                                        quoted, target, how, row, state,
                                                        at):
    event = InboundEvent("cloud:wamid.X", kind, MESSAGE, at, number, workspace, quoted,
                         *extras)
    pending = ["cloud", event, number_key(number) if number.isascii() else 1, 1000.5, target,
               how, (), True]
    watch = [0, row, event.inbound_id, 0, state if row is not None else None]
    frozen = FrozenReplies()
    slot = frozen.freeze(pending, watch)
    plain = (kind == REPLY and quoted is None and number.isascii() and number.isdigit()
             and number[0] != "0" and len(number) <= 18 and at.__class__ is float
             and (row is None or state[5].__class__ is not float))
    assert (slot is not None) == plain
    if slot is None:
        assert len(frozen) == 0 and not frozen.records
        return
    thawed_pending, thawed_watch = frozen.thaw(slot)
    assert thawed_pending == pending and thawed_watch == watch
    assert [type(v) for v in thawed_pending[1]] == [type(v) for v in event]
    assert len(frozen) == 0


single_operations = st.lists(st.one_of(single_registration, single_registration,
                                       single_status, plain_reply(), plain_reply()),
                             max_size=20)
packed: list[int] = [0]


@settings(max_examples=examples(300), deadline=None)
@given(ops=single_operations, data=st.data())
def test_packing_after_every_step_changes_nothing(ops, data):
    """SPEC 6.2's property with a checkpoint after every step (every decided plain reply
    packed as soon as it can be, and thawed by whatever comes next): shuffled and
    duplicated replies, registrations and statuses equal the rebuild from the rules, and
    what the checkpoints stored equals the credits."""
    ops = unique_ids(ops)
    shuffled, schedule = shuffled_with_schedule(ops, data, duplicates=6)
    freeze = FrozenReplies.freeze

    def counted(self: FrozenReplies, *args: Any, **kwargs: Any) -> int | None:
        slot = freeze(self, *args, **kwargs)
        packed[0] += slot is not None
        return slot

    FrozenReplies.freeze = counted  # type: ignore[method-assign]
    try:
        world = play(shuffled, [s - s % 3 for s in schedule])  # a checkpoint every step
    finally:
        FrozenReplies.freeze = freeze  # type: ignore[method-assign]
    assert world.observable() == rebuild(ops)
    assert world.stored_credits() == world.credits()


def test_the_packed_path_was_taken():
    """The property above packed replies (run after it: same module)."""
    if not packed[0]:
        test_packing_after_every_step_changes_nothing()
    assert packed[0] > 0
