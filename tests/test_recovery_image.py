"""Recovery images (domain/image.py, issue 20): a ledger or the id index as bytes gives
back exactly the state it was taken from, and one of another layout, byte order or a
damaged one is refused (the caller then rebuilds from rows and journal).

The ledger properties reuse tests/test_ledger_property.py's events: an image taken at
any point of any order of a set of events, with the rest applied afterwards, must give
the state of the whole set (statistics, every row's columns, the chart, attempts).
"""

from __future__ import annotations

import struct
import sys
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.image import (
    LAYOUT,
    ImageRejected,
    index_from_bytes,
    index_to_bytes,
    ledger_from_bytes,
    ledger_to_bytes,
)
from domain.index import MessageIndex
from domain.ledger import Ledger
from domain.status import Level
from tests.test_ledger_property import MESSAGES, build, events_strategy, observable

SAME = 0x5EED_C011_1DE5  # a hash given to two ids: a true collision


def internals(ledger: Ledger) -> tuple[object, ...]:
    """What the observable figures are made from (a round trip must keep it all)."""
    return (ledger.base, ledger.updated, ledger.counts.counts, bytes(ledger.level),
            bytes(ledger.failed), [column.tobytes() for column in ledger.ts],
            ledger.deliver_latency.buckets, ledger.deliver_latency.count,
            ledger.read_latency.buckets, ledger.read_latency.count, ledger.timeline,
            {r: (k.key, k.tick, k.failure, k.reason) for r, k in ledger.failures.kept.items()},
            ledger.failures.breakdown, ledger.attempts.items(), ledger.attempts.sent_items())


@given(events=events_strategy, data=st.data())
def test_an_image_taken_anywhere_then_the_rest_gives_the_whole_sets_state(events, data):
    order = data.draw(st.permutations(events))
    cut = data.draw(st.integers(0, len(order)))
    whole = build(list(events))
    before = build(order[:cut])
    loaded = ledger_from_bytes(ledger_to_bytes(before))
    assert internals(loaded) == internals(before)
    assert observable(loaded) == observable(before)
    assert loaded.dirty_count == 0
    rest = data.draw(st.permutations(order[cut:] + order[:cut // 2]))  # with duplicates
    assert observable(build(rest, loaded)) == observable(whole)


def test_an_empty_ledger_round_trips():
    loaded = ledger_from_bytes(ledger_to_bytes(Ledger()))
    assert len(loaded) == 0 and loaded.base is None
    loaded.add(0, 100.0)
    assert loaded.statistics()["total_message_count"] == 1


def damaged_forms(data: bytes) -> dict[str, bytes]:
    magic, layout, crc, head_len = struct.unpack_from("<4sHII", data)
    head, blobs = data[14:14 + head_len], data[14 + head_len:]
    head = head.replace(sys.byteorder.encode(),
                        b"big" if sys.byteorder == "little" else b"little")
    other_order = struct.pack("<4sHII", magic, layout, zlib.crc32(head + blobs),
                              len(head)) + head + blobs  # intact, but not ours
    return {
        "older layout": struct.pack("<4sHII", magic, layout - 1, crc, head_len) + data[14:],
        "newer layout": struct.pack("<4sHII", magic, LAYOUT + 1, crc, head_len) + data[14:],
        "a flipped byte": data[:-3] + bytes([data[-3] ^ 0x40]) + data[-2:],
        "truncated": data[:-8],
        "empty": b"",
        "another byte order": other_order,
    }


@pytest.mark.parametrize("form", ["older layout", "newer layout", "a flipped byte",
                                  "truncated", "empty", "another byte order"])
def test_an_image_this_code_cannot_trust_is_refused(form):
    ledger = build([(row, Level.READ, False, 1020.0, (None, None), 1)
                    for row in range(MESSAGES)])
    index = MessageIndex()
    index.add("wamid.A", 1, 0)
    for data, load in ((ledger_to_bytes(ledger), ledger_from_bytes),
                       (index_to_bytes(index), index_from_bytes)):
        with pytest.raises(ImageRejected):
            load(damaged_forms(data)[form])
    with pytest.raises(ImageRejected):  # one kind of image is not the other
        ledger_from_bytes(index_to_bytes(index))


def test_the_index_round_trips_with_collisions_and_attempts_and_keeps_growing():
    index = MessageIndex(capacity=4)
    index.add("A", 1, 0, h=SAME)
    index.add("B", 2, 7, h=SAME)  # the overflow
    for n in range(300):
        index.add(f"id{n}", 3, n, attempt=1 + n % 3)
    loaded = index_from_bytes(index_to_bytes(index))
    assert len(loaded) == len(index) == 302
    assert (loaded.get("A", h=SAME), loaded.get("B", h=SAME)) == ((1, 0, 1), (2, 7, 1))
    assert all(loaded.get(f"id{n}") == (3, n, 1 + n % 3) for n in range(300))
    assert loaded.get("never registered") is None
    for n in range(300, 2000):  # grows past the loaded table's size
        loaded.add(f"id{n}", 4, n)
    assert loaded.get("id1999") == (4, 1999, 1) and loaded.get("id7") == (3, 7, 2)
    assert index.get("id1999") is None  # the image is a copy, not a view
