"""Message id -> (campaign, row): the routing table of the ingest actor.

Several ids may lead to one row: each attempt of a recipient (SPEC 9) has its own
gateway id, and an ACK for an earlier attempt's id is still evidence for that row.

A dict of a million id strings costs ~140 bytes per message before any state is kept,
so ids are reduced to a stable 64-bit hash (stored with each message row, so a restart
loads integers, not strings). Two registered ids with the same hash are detected at
registration, when the store tells us the id is new; the later one lives in a small
overflow dict keyed by the full id.

memory11 (issue 20): ~14 bytes per id at a million, where a table of (hash, value)
slots took 24 (16 bytes a slot, a third of them empty). Each id gets an entry number
in the order it was added; the hashes are kept densely by entry number (8 bytes, no
empty slots), the open-addressing table holds only entry numbers (4 bytes a slot), and
an entry's (campaign, row, attempt) is derived from runs: ids are added a campaign's
rows in order (a registration request, the sender's pass, a start's load), so entry
g of a run starting at entry s with value v has value v + (g - s). A run costs 12 bytes
and breaks only where the next id is not the next row of the same campaign and attempt.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_right
from collections.abc import Iterable
from hashlib import blake2b

EMPTY = 0


def id_hash(message_id: str) -> int:
    """Stable signed 64-bit hash of a bare message id (never 0, which marks empty)."""
    digest = hashlib.blake2b(message_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    value = int.from_bytes(digest, "little", signed=True)
    return value or 1


_ID_HASH = id_hash

# A value packs the attempt (8 bits, SPEC 9: each attempt of a row has its own gateway
# id), the campaign number (24 bits) and the row (32 bits) into one unsigned 64-bit int.
CAMPAIGN_LIMIT = 1 << 24
ROW_MASK = 0xFFFFFFFF
MASK64 = (1 << 64) - 1
ENTRY_LIMIT = (1 << 32) - 1  # the table holds entry numbers in 32 bits


def pack(campaign_no: int, row: int, attempt: int = 1) -> int:
    if campaign_no >= CAMPAIGN_LIMIT:
        raise ValueError(f"campaign number {campaign_no} is beyond the id index's limit")
    return (attempt << 56) | (campaign_no << 32) | row


def unpack(value: int) -> tuple[int, int, int]:
    """(campaign number, row, attempt)."""
    return (value >> 32) & 0xFFFFFF, value & ROW_MASK, value >> 56


# memory100: the table grows by half when more than 80 % full. Its size need not be a
# power of two, so a slot is the hash modulo the size.
LOAD_TENTHS = 8
GROWTH = 1.5


def _table(slots: int) -> array[int]:
    return array("I", bytes(4 * slots))


class MessageIndex:
    """Open addressing with linear probing over entry numbers; grows by half at 80 %."""

    def __init__(self, capacity: int = 1024) -> None:
        size = 1
        while size < capacity:
            size <<= 1
        self._table = _table(size)  # slot -> entry number (EMPTY: free)
        self._slots = size
        # entry number -> hash; entries are numbered from 1: entry 0 (hash 0, never an
        # id's) is what an empty slot points at, so a probe needs no test for it first
        self._hashes = array("q", [EMPTY])
        self._run_at = array("I")  # first entry number of each run, ascending
        # each run's packed value less its first entry's number, modulo 2^64: entry g's
        # value is its run's offset + g (modulo 2^64)
        self._run_offset = array("Q")
        self._last_at = self._last_offset = 0  # the last run's, for the common case
        self.overflow: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._hashes) - 1 + len(self.overflow)

    def _value(self, entry: int) -> int:
        return (self._run_offset[bisect_right(self._run_at, entry) - 1] + entry) & MASK64

    def _find(self, h: int) -> int:
        """The slot holding hash h, else the free slot where it would go."""
        table, hashes, slots = self._table, self._hashes, self._slots
        i = (h ^ (h >> 29)) % slots
        while True:
            g = table[i]
            if g == EMPTY or hashes[g] == h:
                return i
            i = (i + 1) % slots

    def get(self, message_id: str, h: int | None = None) -> tuple[int, int, int] | None:
        """(campaign number, row, attempt) of a registered id, else None.

        The hot path of routing (every status of every webhook): id_hash, _find and
        _value written out inline, each a function call less."""
        if self.overflow:
            hit = self.overflow.get(message_id)
            if hit is not None:
                return unpack(hit)
        if h is None:
            if id_hash is not _ID_HASH:  # replaced (tests force collisions so)
                h = id_hash(message_id)
            else:
                h = int.from_bytes(blake2b(message_id.encode("utf-8", "surrogatepass"),
                                           digest_size=8).digest(), "little", signed=True) or 1
        table, hashes, slots = self._table, self._hashes, self._slots
        i = (h ^ (h >> 29)) % slots
        while True:
            g = table[i]
            if hashes[g] == h:  # (an empty slot's entry 0 has hash 0: never h)
                if g >= self._last_at:  # most routing is to the newest ids
                    value = self._last_offset + g
                else:
                    value = (self._run_offset[bisect_right(self._run_at, g) - 1] + g) & MASK64
                return (value >> 32) & 0xFFFFFF, value & ROW_MASK, value >> 56
            if g == EMPTY:
                return None
            i = (i + 1) % slots

    def add(self, message_id: str, campaign_no: int, row: int, h: int | None = None,
            attempt: int = 1) -> None:
        """Add an id the store has just confirmed to be new."""
        if h is None:
            h = id_hash(message_id)
        value = pack(campaign_no, row, attempt)
        i = self._find(h)
        g = self._table[i]
        if g != EMPTY:
            if self._value(g) != value:
                self.overflow[message_id] = value  # a true hash collision
            return
        self._put(i, h, value)

    def load(self, h: int, campaign_no: int, row: int, attempt: int = 1) -> bool:
        """Add a stored entry at start-up; False when its hash is taken (needs the id)."""
        value = pack(campaign_no, row, attempt)
        i = self._find(h)
        g = self._table[i]
        if g != EMPTY:
            return self._value(g) == value
        self._put(i, h, value)
        return True

    def _put(self, i: int, h: int, value: int) -> None:
        """A new entry for hash h in free slot i; it continues the last run when it is
        that run's next row."""
        hashes = self._hashes
        g = len(hashes)
        if g > ENTRY_LIMIT:
            raise ValueError("the id index is full")
        if not self._run_at or value != self._last_offset + g or \
                value & ROW_MASK == 0:  # (a row 0 never continues a run: no carry)
            self._run_at.append(g)
            self._run_offset.append((value - g) & MASK64)
            self._last_at, self._last_offset = g, value - g
        hashes.append(h)
        self._table[i] = g
        if g * 10 > self._slots * LOAD_TENTHS:
            self._grow(int(self._slots * GROWTH) + 1)

    def _grow(self, slots: int) -> None:
        table = _table(slots)
        for g, h in enumerate(self._hashes):
            if not g:
                continue
            i = (h ^ (h >> 29)) % slots
            while table[i]:
                i = (i + 1) % slots
            table[i] = g
        self._table, self._slots = table, slots

    def memory_bytes(self) -> int:
        return (4 * self._slots + 8 * len(self._hashes)
                + 12 * len(self._run_at))

    def runs(self) -> int:
        """How many runs the entries fall in (12 bytes each)."""
        return len(self._run_at)

    # --- recovery images (domain/image.py) ------------------------------------------

    def arrays(self) -> tuple[array[int], array[int], array[int], array[int], dict[str, int]]:
        """(table, hashes, runs' first entries, runs' values, overflow): the whole index."""
        return self._table, self._hashes, self._run_at, self._run_offset, dict(self.overflow)

    @classmethod
    def from_parts(cls, table: array[int], hashes: array[int], run_at: array[int],
                   run_offset: array[int], overflow: dict[str, int]) -> MessageIndex:
        """The index `arrays` gave, as it was (same slots: no rehashing)."""
        slots, entries = len(table), len(hashes) - 1
        if slots == 0 or not 0 <= entries < slots or hashes[0] != EMPTY or \
                len(run_at) != len(run_offset) or (entries > 0) != (len(run_at) > 0) or \
                (run_at and (run_at[0] != 1 or run_at[-1] > entries)):
            raise ValueError("not an index")
        index = cls(capacity=1)
        index._table, index._slots, index._hashes = table, slots, hashes
        index._run_at, index._run_offset = run_at, run_offset
        if run_at:
            index._last_at = run_at[-1]
            index._last_offset = index._value(run_at[-1]) - run_at[-1]
        index.overflow = dict(overflow)
        return index

    @classmethod
    def from_arrays(cls, keys: array[int], values: array[int], size: int,
                    overflow: dict[str, int]) -> MessageIndex:
        """An index of the table of (hash, value) slots that images before memory11
        hold (layout 2): its entries are added again in value order (campaign, row), so
        they fall in runs whatever order the table has them in."""
        slots = len(keys)
        if slots == 0 or len(values) != slots or size >= slots:
            raise ValueError("not an index table")
        index = cls.of_entries(_in_value_order(keys, values), capacity=int(size / 0.7) + 1)
        if len(index) != size:
            raise ValueError("not an index table (entries)")
        index.overflow = dict(overflow)
        return index

    @classmethod
    def of_entries(cls, entries: Iterable[tuple[int, int]], capacity: int = 1024
                   ) -> MessageIndex:
        """An index of (hash, packed value) pairs, each hash once."""
        index = cls(capacity=capacity)
        for h, value in entries:
            i = index._find(h)
            if index._table[i] != EMPTY:
                raise ValueError("a hash twice")
            index._put(i, h, value)
        return index


def _in_value_order(keys: array[int], values: array[int]) -> Iterable[tuple[int, int]]:
    """The (hash, value) pairs of an old table in value order (attempt, campaign, row),
    without an object per entry where a group of rows is dense: each (attempt, campaign)
    group's hashes placed by row in an array (a million pairs sorted as tuples held
    ~150 MB for the conversion); a sparse group (a few retried rows) is sorted."""
    groups: dict[int, list[int]] = {}  # value >> 32 -> [entries, highest row]
    for k, v in zip(keys, values, strict=True):
        if k != EMPTY:
            group = groups.get(v >> 32)
            if group is None:
                groups[v >> 32] = [1, v & ROW_MASK]
            else:
                group[0] += 1
                if v & ROW_MASK > group[1]:
                    group[1] = v & ROW_MASK
    dense: dict[int, array[int]] = {}
    sparse: dict[int, list[tuple[int, int]]] = {}
    for high, (count, top) in groups.items():
        if count * 4 >= top + 1:
            dense[high] = array("q", bytes(8 * (top + 1)))
        else:
            sparse[high] = []
    for k, v in zip(keys, values, strict=True):
        if k != EMPTY:
            by_row = dense.get(v >> 32)
            if by_row is not None:
                by_row[v & ROW_MASK] = k
            else:
                sparse[v >> 32].append((v, k))
    for high in sorted(groups):
        by_row = dense.pop(high, None)
        if by_row is not None:
            base = high << 32
            for row, k in enumerate(by_row):
                if k != EMPTY:
                    yield k, base | row
        else:
            for v, k in sorted(sparse.pop(high)):
                yield k, v
