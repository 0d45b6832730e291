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
    chunks_of,
    index_from_bytes,
    index_to_bytes,
    ledger_from_bytes,
    ledger_image,
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
            bytes(ledger.failed),
            [ledger.column_values(slot).tobytes() for slot in range(len(ledger.ts))],
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
    loaded = ledger_from_bytes(*ledger_to_bytes(before, chunk_rows=4))
    assert internals(loaded) == internals(before)
    assert observable(loaded) == observable(before)
    assert loaded.dirty_count == 0
    rest = data.draw(st.permutations(order[cut:] + order[:cut // 2]))  # with duplicates
    assert observable(build(rest, loaded)) == observable(whole)


def test_an_empty_ledger_round_trips():
    loaded = ledger_from_bytes(*ledger_to_bytes(Ledger()))
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
    head, chunks = ledger_to_bytes(ledger, chunk_rows=4)
    for data, load in ((head, lambda data: ledger_from_bytes(data, chunks)),
                       (chunks[1], lambda data: ledger_from_bytes(head, [chunks[0], data])),
                       (index_to_bytes(index), index_from_bytes)):
        with pytest.raises(ImageRejected):
            load(damaged_forms(data)[form])
    with pytest.raises(ImageRejected):  # one kind of image is not the other
        ledger_from_bytes(index_to_bytes(index), [])
    with pytest.raises(ImageRejected):  # a chunk missing, or two in the wrong order
        ledger_from_bytes(head, chunks[:1])
    with pytest.raises(ImageRejected):
        ledger_from_bytes(head, chunks[::-1])


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


@given(events=events_strategy, data=st.data())
def test_images_of_only_the_changed_chunks_add_up_to_the_whole_ledger(events, data):
    """What a checkpoint stores (store/image.py): a full image, then at each later one
    only the chunks of the rows changed since (the rows `take_dirty_rows` hands over)
    and those past the previous image's rows. Loading the stored chunks gives the
    ledger as it is, whatever was applied or registered between the images."""
    order = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(order)), max_size=4)))
    ledger = build([])
    ledger.clear_dirty()
    first = ledger_image(ledger, None, chunk_rows=2)
    stored, head, imaged = dict(first.chunks), first.head, len(ledger)
    done = 0
    for step, cut in enumerate([*cuts, len(order)]):
        build(order[done:cut], ledger)
        done = cut
        if data.draw(st.booleans()):  # rows registered between two images
            ledger.add(len(ledger), 600.0 + step, Level.PENDING, False, None,
                       [600.0 + step, 600.0 + step, 0.0, 0.0, 0.0, 0.0, 0.0])
        dirty = ledger.take_dirty_rows(1)
        changed = list(range(imaged // 2, -(-len(ledger) // 2)))
        if dirty is not None:
            changed.extend(chunks_of(dirty.rows, chunk_rows=2))
        image = ledger_image(ledger, changed, chunk_rows=2)
        assert not image.full and set(image.chunks) <= set(changed)
        stored.update(image.chunks)
        head, imaged = image.head, len(ledger)
        loaded = ledger_from_bytes(head, [stored[c] for c in sorted(stored)])
        assert internals(loaded) == internals(ledger)
        assert observable(loaded) == observable(ledger)


def test_the_chunks_of_sorted_rows():
    from array import array

    assert chunks_of(array("I"), 4) == []
    assert chunks_of(array("I", [0, 1, 3, 4, 9, 10, 11, 40]), 4) == [0, 1, 2, 10]
