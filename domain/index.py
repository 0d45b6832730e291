"""Message id -> (campaign, row): the routing table of the ingest actor.

Several ids may lead to one row: each attempt of a recipient (SPEC 9) has its own
gateway id, and an ACK for an earlier attempt's id is still evidence for that row.

A dict of a million id strings costs ~140 bytes per message before any state is kept,
so ids are reduced to a stable 64-bit hash (stored with each message row, so a restart
loads integers, not strings) in an open-addressing table of two flat arrays. Two
registered ids with the same hash are detected at registration, when the store tells us
the id is new; the later one lives in a small overflow dict keyed by the full id.
"""

from __future__ import annotations

import hashlib
from array import array
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


def pack(campaign_no: int, row: int, attempt: int = 1) -> int:
    if campaign_no >= CAMPAIGN_LIMIT:
        raise ValueError(f"campaign number {campaign_no} is beyond the id index's limit")
    return (attempt << 56) | (campaign_no << 32) | row


def unpack(value: int) -> tuple[int, int, int]:
    """(campaign number, row, attempt)."""
    return (value >> 32) & 0xFFFFFF, value & 0xFFFFFFFF, value >> 56


# memory100 (issue 20): the table grows by half when more than 80 % full (it doubled at
# 70 %: at a million ids 2^21 slots of 16 bytes, 33.5 bytes per id; now 20-30). Its size
# need not be a power of two, so a slot is the hash modulo the size: for the powers of
# two that older images hold that is the same slot as the mask gave (Python's `%` of a
# negative int by 2^k equals `& (2^k - 1)`), so their tables load unchanged.
LOAD_TENTHS = 8
GROWTH = 1.5


class MessageIndex:
    """Open addressing with linear probing; grows by half at 80 % load."""

    def __init__(self, capacity: int = 1024) -> None:
        size = 1
        while size < capacity:
            size <<= 1
        self._keys = array("q", bytes(8 * size))
        self._values = array("Q", bytes(8 * size))
        self._slots = size
        self._size = 0
        self.overflow: dict[str, int] = {}

    def __len__(self) -> int:
        return self._size + len(self.overflow)

    def _slot(self, h: int) -> int:
        keys = self._keys
        slots = self._slots
        i = (h ^ (h >> 29)) % slots
        while True:
            k = keys[i]
            if k in (EMPTY, h):
                return i
            i = (i + 1) % slots

    def get(self, message_id: str, h: int | None = None) -> tuple[int, int, int] | None:
        """(campaign number, row, attempt) of a registered id, else None.

        The hot path of routing (every status of every webhook): id_hash, _slot and
        unpack written out inline, each a function call less."""
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
        keys = self._keys
        slots = self._slots
        i = (h ^ (h >> 29)) % slots
        while True:
            k = keys[i]
            if k == h:
                value = self._values[i]
                return (value >> 32) & 0xFFFFFF, value & 0xFFFFFFFF, value >> 56
            if k == EMPTY:
                return None
            i = (i + 1) % slots

    def add(self, message_id: str, campaign_no: int, row: int, h: int | None = None,
            attempt: int = 1) -> None:
        """Add an id the store has just confirmed to be new."""
        if h is None:
            h = id_hash(message_id)
        value = pack(campaign_no, row, attempt)
        i = self._slot(h)
        if self._keys[i] == h:
            if self._values[i] != value:
                self.overflow[message_id] = value  # a true hash collision
            return
        self._keys[i] = h
        self._values[i] = value
        self._size += 1
        if self._size * 10 > len(self._keys) * LOAD_TENTHS:
            self._grow()

    def load(self, h: int, campaign_no: int, row: int, attempt: int = 1) -> bool:
        """Add a stored entry at start-up; False when its hash is taken (needs the id)."""
        value = pack(campaign_no, row, attempt)
        i = self._slot(h)
        if self._keys[i] == h:
            return self._values[i] == value
        self._keys[i] = h
        self._values[i] = value
        self._size += 1
        if self._size * 10 > len(self._keys) * LOAD_TENTHS:
            self._grow()
        return True

    def _grow(self) -> None:
        old_keys, old_values = self._keys, self._values
        size = int(len(old_keys) * GROWTH) + 1
        self._keys = array("q", bytes(8 * size))
        self._values = array("Q", bytes(8 * size))
        self._slots = size
        for k, v in zip(old_keys, old_values, strict=True):
            if k != EMPTY:
                i = self._slot(k)
                self._keys[i] = k
                self._values[i] = v

    def memory_bytes(self) -> int:
        return self._keys.itemsize * len(self._keys) * 2

    # --- recovery images (domain/image.py) ------------------------------------------

    def arrays(self) -> tuple[array[int], array[int], int, dict[str, int]]:
        """(keys, values, entries in the arrays, overflow): the whole table."""
        return self._keys, self._values, self._size, dict(self.overflow)

    @classmethod
    def from_arrays(cls, keys: array[int], values: array[int], size: int,
                    overflow: dict[str, int]) -> MessageIndex:
        """The table `arrays` gave, as it was (same slots: no rehashing)."""
        slots = len(keys)
        if slots == 0 or len(values) != slots or size >= slots:
            raise ValueError("not an index table")
        index = cls(capacity=1)
        index._keys, index._values, index._slots = keys, values, slots
        index._size = size
        index.overflow = dict(overflow)
        return index
