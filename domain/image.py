"""Recovery images: a campaign's ledger and the id index as bytes, and back (issue 20).

After `kill -9` the daemon rebuilds its state from the `messages` rows and the journal;
at a million messages that is a 1M-row read and a per-event replay of whatever the
checkpoints had not yet written, tens of seconds. An image is the same state as a few
flat byte strings loaded with `frombytes` (a memcpy): the ledger's arrays and its small
derived parts (class counts, latency histograms, timeline, kept failures, attempts), and
the index's two hash arrays with their overflow. Derived figures are stored as they are
rather than recounted, so an image gives back exactly the state it was taken from, and
applying further events to it gives exactly what applying them to the original would.

Pure: bytes in, objects out. Where images are kept and when they may be trusted (their
journal seq, the rows written after them) is the store's and the runtime's business. A
layout this code does not know, another byte order or a damaged body raises
`ImageRejected`: the caller then falls back to the rows and the journal, as before.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from domain.failures import Failure
from domain.index import MessageIndex
from domain.ledger import LAZY_SLOTS, NONE, TS_SLOTS, LatencyHistogram, Ledger

# Bump when anything below changes meaning: an image of another layout is ignored.
# Ledger: 1 one blob per ledger (migration 0012); 2 chunks (0013).
# Index: 2 a table of (hash, value) slots; 3 hashes by entry, a table of entry numbers
# and runs (memory11). Layout 2 index images are still read (converted).
LEDGER_LAYOUT = 2
INDEX_LAYOUT = 3
LAYOUT = max(LEDGER_LAYOUT, INDEX_LAYOUT)  # the newest layout of any image
LEDGER_MAGIC = b"CDLG"
INDEX_MAGIC = b"CDIX"
# magic, layout, crc32 of everything after the prefix, length of the JSON head
PREFIX = struct.Struct("<4sHII")


class ImageRejected(ValueError):
    """The bytes are not an image this code can load (layout, byte order, damage)."""


def _pack(magic: bytes, head: dict[str, Any], blobs: list[bytes] | list[memoryview],
          layout: int = LEDGER_LAYOUT) -> bytes:
    """memory9: one copy of the blobs (into the result), the checksum taken part by part;
    blobs may be byte views of live arrays (`_bytes_of`), so the index's 24 MB at a
    million ids is not first copied out of its arrays, then joined, then prefixed (three
    transient copies where the writer needs one)."""
    head["byteorder"] = sys.byteorder
    head["blobs"] = [len(b) for b in blobs]
    encoded = orjson.dumps(head)
    crc = zlib.crc32(encoded)
    for blob in blobs:
        crc = zlib.crc32(blob, crc)
    return b"".join([PREFIX.pack(magic, layout, crc, len(encoded)), encoded, *blobs])


def _bytes_of(column: array[int] | bytearray, lo: int = 0, hi: int | None = None
              ) -> memoryview:
    """Items lo..hi of an array as a byte view (no copy). The caller releases it before
    the array may grow (an exported buffer cannot be resized)."""
    size = column.itemsize if isinstance(column, array) else 1
    hi = len(column) if hi is None else hi
    return memoryview(column).cast("B")[lo * size:hi * size]


def _unpack(magic: bytes, data: bytes) -> tuple[dict[str, Any], list[memoryview]]:
    """(head, blobs) of a ledger's image or chunk."""
    head, blobs, _ = _read(magic, data, (LEDGER_LAYOUT,))
    return head, blobs


def _read(magic: bytes, data: bytes, layouts: tuple[int, ...]
          ) -> tuple[dict[str, Any], list[memoryview], int]:
    """(head, blobs, layout) of an image of one of `layouts`."""
    if len(data) < PREFIX.size:
        raise ImageRejected("too short")
    got, layout, crc, head_len = PREFIX.unpack_from(data)
    if got != magic:
        raise ImageRejected("not an image of this kind")
    if layout not in layouts:
        raise ImageRejected(f"layout {layout}, this code reads {layouts}")
    body = memoryview(data)[PREFIX.size:]
    if zlib.crc32(body) != crc:
        raise ImageRejected("damaged (checksum)")
    try:
        head = orjson.loads(body[:head_len])
    except orjson.JSONDecodeError as exc:
        raise ImageRejected("damaged (head)") from exc
    if head.get("byteorder") != sys.byteorder:
        raise ImageRejected("written on a machine of another byte order")
    blobs: list[memoryview] = []
    at = head_len
    for size in head["blobs"]:
        blobs.append(body[at:at + size])
        at += size
    if at != len(body):
        raise ImageRejected("damaged (length)")
    return head, blobs, layout


# --- the ledger -----------------------------------------------------------------------
# Layout 2 (wave 6): the ledger's arrays are cut in chunks of CHUNK_ROWS rows, each its
# own blob with its own checksum, beside a small head (the derived parts). A checkpoint
# re-images only the chunks whose rows changed since the previous image (the rows it
# collects say which; statuses arrive roughly in send order, so a few chunks), where
# layout 1 copied and wrote the whole ledger (30 MB at a million messages) every time.

CHUNK_MAGIC = b"CDCK"
CHUNK_ROWS = 32768  # ~1 MB of arrays per chunk (2 bytes + 7 int32 per row)


@dataclass(slots=True)
class LedgerImage:
    """One image of a ledger: its head, and the chunks that changed (all when `full`)."""

    head: bytes
    chunks: dict[int, bytes]
    full: bool
    rows: int


def chunk_count(rows: int, chunk_rows: int = CHUNK_ROWS) -> int:
    return -(-rows // chunk_rows)


def chunks_of(rows: array[int], chunk_rows: int = CHUNK_ROWS) -> list[int]:
    """The chunks these rows (sorted, as `take_dirty_rows` gives them) fall in: one
    bisect per chunk, not a division per row (a checkpoint may carry a million)."""
    out: list[int] = []
    at = 0
    while at < len(rows):
        chunk = rows[at] // chunk_rows
        out.append(chunk)
        at = bisect_left(rows, (chunk + 1) * chunk_rows, at)
    return out


def ledger_head(ledger: Ledger, chunk_rows: int = CHUNK_ROWS) -> bytes:
    """What is not per row: the counts, histograms, timeline, kept failures, attempts."""
    book = ledger.failures
    attempts = ledger.attempts
    latest = dict(attempts.items())
    head = {
        "rows": len(ledger),
        "chunk_rows": chunk_rows,
        "base": ledger.base,
        "updated": ledger.updated,
        "counts": ledger.counts.counts,
        "latency": [[sorted(h.buckets.items()), h.count]
                    for h in (ledger.deliver_latency, ledger.read_latency)],
        "timeline": [[second, *series] for second, series in ledger.timeline.items()],
        "failures": [[row, k.tick, k.failure.source, k.failure.code, k.failure.title,
                      k.failure.details, k.reason] for row, k in book.kept.items()],
        "breakdown": book.breakdown,
        "attempts": [[row, attempt, *(attempts.sent(row) or (None, None))]
                     for row, attempt in attempts.items()],
        "sent": [[row, *sent] for row, sent in attempts.sent_items() if row not in latest],
    }
    return _pack(LEDGER_MAGIC, head, [])


def ledger_chunk(ledger: Ledger, chunk: int, chunk_rows: int = CHUNK_ROWS) -> bytes:
    """Rows chunk*chunk_rows .. (chunk+1)*chunk_rows - 1 of every array."""
    lo = chunk * chunk_rows
    hi = min(len(ledger), lo + chunk_rows)
    unmade = array("i", [NONE]) * (hi - lo)  # a lazy column not made yet: every row NONE
    blobs = [_bytes_of(ledger.level, lo, hi), _bytes_of(ledger.failed, lo, hi),
             *(_bytes_of(column, lo, hi) if column else _bytes_of(unmade)
               for column in ledger.ts)]
    try:
        return _pack(CHUNK_MAGIC, {"chunk": chunk, "rows": hi - lo}, blobs)
    finally:
        for blob in blobs:
            blob.release()


def ledger_image(ledger: Ledger, changed: Iterable[int] | None,
                 chunk_rows: int = CHUNK_ROWS) -> LedgerImage:
    """The head and the `changed` chunks (None: every chunk, a full image)."""
    count = chunk_count(len(ledger), chunk_rows)
    wanted = range(count) if changed is None else sorted(c for c in set(changed) if c < count)
    return LedgerImage(ledger_head(ledger, chunk_rows),
                       {c: ledger_chunk(ledger, c, chunk_rows) for c in wanted},
                       changed is None, len(ledger))


def ledger_to_bytes(ledger: Ledger, chunk_rows: int = CHUNK_ROWS) -> tuple[bytes, list[bytes]]:
    """A full image as (head, chunks in order): what `ledger_from_bytes` loads."""
    image = ledger_image(ledger, None, chunk_rows)
    return image.head, [image.chunks[c] for c in sorted(image.chunks)]


def ledger_from_bytes(head_data: bytes, chunk_data: Sequence[bytes]) -> Ledger:
    """The ledger of an image's head and ALL its chunks in order, nothing marked dirty."""
    head, blobs = _unpack(LEDGER_MAGIC, head_data)
    rows = head["rows"]
    chunk_rows = head.get("chunk_rows")
    if blobs or not isinstance(chunk_rows, int) or chunk_rows <= 0 or \
            len(chunk_data) != chunk_count(rows, chunk_rows):
        raise ImageRejected("damaged (chunks)")
    level, failed = bytearray(), bytearray()
    ts = [array("i") for _ in range(TS_SLOTS)]
    for number, data in enumerate(chunk_data):
        part, arrays = _unpack(CHUNK_MAGIC, data)
        size = min(chunk_rows, rows - number * chunk_rows)
        if part.get("chunk") != number or part.get("rows") != size or \
                len(arrays) != 2 + TS_SLOTS or len(arrays[0]) != size or \
                len(arrays[1]) != size:
            raise ImageRejected("damaged (a chunk)")
        level += arrays[0]
        failed += arrays[1]
        for slot in range(TS_SLOTS):
            if len(arrays[2 + slot]) != 4 * size:
                raise ImageRejected("damaged (times)")
            ts[slot].frombytes(arrays[2 + slot])
    ledger = Ledger()
    ledger.base = head["base"]
    ledger.updated = head["updated"]
    ledger.level = level
    ledger.failed = failed
    ledger.dirty = bytearray(rows)
    for slot in LAZY_SLOTS:  # a column with every row NONE stays unmade (memory9)
        if ts[slot].count(NONE) == rows:
            ts[slot] = array("i")
    ledger.ts = ts
    ledger.counts.counts = list(head["counts"])
    for histogram, (buckets, count) in zip((ledger.deliver_latency, ledger.read_latency),
                                           head["latency"], strict=True):
        _load_histogram(histogram, buckets, count)
    ledger.timeline = {second: series for second, *series in head["timeline"]}
    book = ledger.failures
    for row, tick, source, code, title, details, reason in head["failures"]:
        book.set(row, tick, Failure(source, code, title, details), reason)
    book.breakdown = {category: dict(codes) for category, codes in head["breakdown"].items()}
    ledger.attempts.restore(head["attempts"], head["sent"])
    return ledger


def _load_histogram(histogram: LatencyHistogram, buckets: list[list[int]], count: int) -> None:
    histogram.buckets = {bucket: n for bucket, n in buckets}
    histogram.count = count



# --- the id index ---------------------------------------------------------------------


# Layout 3 (memory11): the entries' hashes, the table of entry numbers and the runs
# (domain/index.py), four blobs; the head has the overflow. Layout 2 (before): the
# table's hash and value arrays and its entry count; loaded by adding its entries
# again in value order (`MessageIndex.from_arrays`), once, at the first start after
# the upgrade (the next checkpoint that sees the index grow writes layout 3).


def index_to_bytes(index: MessageIndex) -> bytes:
    table, hashes, run_at, run_value, overflow = index.arrays()
    blobs = [_bytes_of(column) for column in (table, hashes, run_at, run_value)]
    try:
        return _pack(INDEX_MAGIC, {"overflow": overflow}, blobs, INDEX_LAYOUT)
    finally:
        for blob in blobs:
            blob.release()


def index_from_bytes(data: bytes) -> MessageIndex:
    head, blobs, layout = _read(INDEX_MAGIC, data, (2, INDEX_LAYOUT))
    try:
        if layout == 2:
            if len(blobs) != 2 or "size" not in head:
                raise ImageRejected("damaged (arrays)")
            keys, values = array("q"), array("Q")
            keys.frombytes(blobs[0])
            values.frombytes(blobs[1])
            return MessageIndex.from_arrays(keys, values, head["size"], head["overflow"])
        if len(blobs) != 4:
            raise ImageRejected("damaged (arrays)")
        columns = [array(code) for code in "IqIQ"]
        for column, blob in zip(columns, blobs, strict=True):
            column.frombytes(blob)
        return MessageIndex.from_parts(*columns, head["overflow"])
    except ValueError as exc:
        raise ImageRejected(str(exc)) from exc
