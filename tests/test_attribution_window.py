"""The end of a reply's window (domain/attribution.py `expire`): events received more
than `reply_window` ago leave the live set, their credit final (an uncredited one is
dropped from the store); later ones stay open; the scan stops early, in arrival order."""

from __future__ import annotations

from domain.attribution import Attributor, Lookup
from domain.inbound import MESSAGE, REPLY, InboundEvent
from domain.phones import number_key

WINDOW = 100.0


def reply(n: int, at: float, number: str | None = None) -> InboundEvent:
    return InboundEvent(f"r{n}", REPLY, MESSAGE, at, number or f"62811000000{n:02d}")


def answer_lookups(attributor: Attributor) -> None:
    """No rows were sent to any number: every reply is decided unattributed."""
    for effect in attributor.take_effects():
        if isinstance(effect, Lookup):
            attributor.number_rows(effect.serial, effect.keys, [])


def test_events_leave_the_live_set_when_their_window_ends() -> None:
    attributor = Attributor(WINDOW, lambda _id: None, lambda _no: 1)
    for n, received in enumerate((1000.0, 1010.0, 1050.0)):
        attributor.inbound_batch("cloud", [reply(n, received)], received)
    answer_lookups(attributor)
    attributor.take_ops()
    assert len(attributor) == 3
    assert attributor.expire(1105.0) == 1  # r0 (1000 + 100 < 1105): never credited
    assert set(attributor.live) == {"r1", "r2"}
    assert attributor.take_ops() == [("drop", "r0")]
    assert number_key("6281100000000") not in attributor.numbers  # its watch went too
    assert attributor.expire(1105.0) == 0
    assert attributor.expire(1200.0) == 2
    assert len(attributor) == 0 and not attributor.numbers


def test_an_event_behind_a_clock_set_back_a_little_still_ends() -> None:
    attributor = Attributor(WINDOW, lambda _id: None, lambda _no: 1)
    attributor.inbound_batch("cloud", [reply(1, 1000.0)], 1050.0)
    attributor.inbound_batch("cloud", [reply(2, 1000.0)], 1010.0)  # clock set back 40 s
    answer_lookups(attributor)
    assert attributor.expire(1120.0) == 1  # r2 ended, though r1 arrived before it
    assert set(attributor.live) == {"r1"}
