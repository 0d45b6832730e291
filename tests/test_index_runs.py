"""The id index keeps ~14 bytes per id (memory11, issue 20): the hashes by entry number,
a table of entry numbers and runs of consecutive rows (domain/index.py). Whatever order
ids come in (campaigns interleaved, retries, rows out of order, hash collisions), every
id routes to its own (campaign, row, attempt), through growths and recovery images; an
image of the layout before (a table of hash and value slots) still loads."""

from __future__ import annotations

import sys
from array import array

from hypothesis import given
from hypothesis import strategies as st

from domain.image import INDEX_MAGIC, _pack, index_from_bytes, index_to_bytes
from domain.index import EMPTY, MessageIndex, id_hash, pack

SAME = 0x5EED_C011_1DE5


def array_bytes(index: MessageIndex) -> int:
    """What the index's arrays hold, as the allocator sees them."""
    return sum(sys.getsizeof(v) for v in vars(index).values() if isinstance(v, array))


def test_a_big_campaign_costs_at_most_16_bytes_per_id() -> None:
    index = MessageIndex()
    n = 200_000
    for row in range(n):
        index.add("", 7, row, h=id_hash(f"wamid.B{row}"))
    assert len(index) == n
    assert array_bytes(index) / n <= 16
    assert index.get(f"wamid.B{n - 1}") == (7, n - 1, 1)
    assert index.get("wamid.B12345") == (7, 12345, 1)


entries_strategy = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 60), st.integers(1, 3),
              st.booleans()),  # campaign, row, attempt, with the colliding hash
    max_size=120)


@given(entries_strategy)
def test_every_id_routes_to_its_own_row_in_any_order_and_after_an_image(entries) -> None:
    index = MessageIndex(capacity=4)
    model: dict[str, tuple[int, int, int]] = {}
    for campaign, row, attempt, colliding in entries:
        message_id = f"{'C' if colliding else 'P'}{campaign}.{row}.{attempt}"
        if message_id in model:
            continue  # the store says an id is new only once
        index.add(message_id, campaign, row, h=SAME if colliding else None, attempt=attempt)
        model[message_id] = (campaign, row, attempt)
    again = index_from_bytes(index_to_bytes(index))
    assert len(index) == len(again) == len(model)
    for loaded in (index, again):
        for message_id, want in model.items():
            h = SAME if message_id.startswith("C") else None
            assert loaded.get(message_id, h=h) == want
        assert loaded.get("never registered") is None
    for n in range(200):  # the loaded one keeps growing past its table
        again.add(f"more{n}", 9, n)
    assert all(again.get(f"more{n}") == (9, n, 1) for n in range(200))
    assert all(again.get(m, h=SAME if m.startswith("C") else None) == want
               for m, want in model.items())


def test_consecutive_rows_share_one_run_and_interleaved_ones_do_not_mix() -> None:
    index = MessageIndex()
    for row in range(5000):
        index.add(f"a{row}", 1, row)
    assert index.runs() == 1
    for row in range(100):  # two campaigns' sends interleaved: a run per id
        index.add(f"b{row}", 2, row)
        index.add(f"c{row}", 3, row, attempt=2)
    assert index.get("a4999") == (1, 4999, 1) and index.get("a0") == (1, 0, 1)
    assert all(index.get(f"b{r}") == (2, r, 1) and index.get(f"c{r}") == (3, r, 2)
               for r in range(100))
    # the last row of a campaign number and the next campaign's row 0: two runs, and
    # the highest attempt (the offsets wrap modulo 2^64)
    index.add("top", 4, 0xFFFFFFFF, attempt=255)
    index.add("next", 5, 0, attempt=255)
    index.add("low", 0, 0, attempt=1)
    again = index_from_bytes(index_to_bytes(index))
    for loaded in (index, again):
        assert loaded.get("top") == (4, 0xFFFFFFFF, 255)
        assert loaded.get("next") == (5, 0, 255)
        assert loaded.get("low") == (0, 0, 1)
        assert loaded.get("b50") == (2, 50, 1)


def test_load_at_start_tells_a_taken_hash_apart_from_the_same_entry() -> None:
    index = MessageIndex()
    assert index.load(SAME, 1, 0) is True
    assert index.load(SAME, 1, 0) is True
    assert index.load(SAME, 1, 1) is False
    assert index.load(SAME + 1, 1, 1) is True  # continues the run
    assert index.get("x", h=SAME + 1) == (1, 1, 1) and index.runs() == 1


def old_layout_image(entries: list[tuple[int, int]], slots: int,
                     overflow: dict[str, int]) -> bytes:
    """An id index image as the release before memory11 wrote it (layout 2): its
    (hash, value) slot arrays, placed by its probe, and the entry count."""
    keys, values = array("q", bytes(8 * slots)), array("Q", bytes(8 * slots))
    for h, value in entries:
        i = (h ^ (h >> 29)) % slots
        while keys[i] not in (EMPTY, h):
            i = (i + 1) % slots
        keys[i], values[i] = h, value
    return _pack(INDEX_MAGIC, {"size": len(entries), "overflow": overflow},
                 [keys.tobytes(), values.tobytes()], 2)


def test_an_image_of_the_layout_before_loads_in_runs_and_is_written_anew() -> None:
    ids = {f"wamid.{campaign}.{row}": pack(campaign, row) for campaign in (3, 1, 2)
           for row in range(400)}
    ids.update({f"wamid.retry.{row}": pack(1, row, 2) for row in range(0, 400, 37)})
    overflow = {"B": pack(2, 999)}
    entries = [(id_hash(m), v) for m, v in ids.items()]
    data = old_layout_image(entries, 2048, overflow)
    loaded = index_from_bytes(data)
    assert len(loaded) == len(ids) + 1
    for message_id, value in ids.items():
        assert loaded.get(message_id) == (value >> 32 & 0xFFFFFF, value & 0xFFFFFFFF,
                                          value >> 56)
    assert loaded.get("B") == (2, 999, 1) and loaded.get("wamid.9.9") is None
    assert loaded.runs() == 3 + len(range(0, 400, 37))  # in value order, not slot order
    assert data[4:6] == (2).to_bytes(2, "little")
    assert index_to_bytes(loaded)[4:6] == (3).to_bytes(2, "little")
    assert index_from_bytes(index_to_bytes(loaded)).get("wamid.2.399") == (2, 399, 1)
