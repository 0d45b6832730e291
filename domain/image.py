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
from typing import Any

import orjson

from domain.failures import Failure
from domain.index import MessageIndex
from domain.ledger import TS_SLOTS, LatencyHistogram, Ledger

# Bump when anything below changes meaning: an image of another layout is ignored.
LAYOUT = 1
LEDGER_MAGIC = b"CDLG"
INDEX_MAGIC = b"CDIX"
# magic, layout, crc32 of everything after the prefix, length of the JSON head
PREFIX = struct.Struct("<4sHII")


class ImageRejected(ValueError):
    """The bytes are not an image this code can load (layout, byte order, damage)."""


def _pack(magic: bytes, head: dict[str, Any], blobs: list[bytes]) -> bytes:
    head["byteorder"] = sys.byteorder
    head["blobs"] = [len(b) for b in blobs]
    encoded = orjson.dumps(head)
    body = b"".join([encoded, *blobs])
    return PREFIX.pack(magic, LAYOUT, zlib.crc32(body), len(encoded)) + body


def _unpack(magic: bytes, data: bytes) -> tuple[dict[str, Any], list[memoryview]]:
    if len(data) < PREFIX.size:
        raise ImageRejected("too short")
    got, layout, crc, head_len = PREFIX.unpack_from(data)
    if got != magic:
        raise ImageRejected("not an image of this kind")
    if layout != LAYOUT:
        raise ImageRejected(f"layout {layout}, this code reads {LAYOUT}")
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
    return head, blobs


# --- the ledger -----------------------------------------------------------------------


def ledger_to_bytes(ledger: Ledger) -> bytes:
    """The ledger as bytes (what is dirty is not: the image's owner keeps track)."""
    book = ledger.failures
    attempts = ledger.attempts
    latest = dict(attempts.items())
    head = {
        "rows": len(ledger),
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
    blobs = [bytes(ledger.level), bytes(ledger.failed),
             *(column.tobytes() for column in ledger.ts)]
    return _pack(LEDGER_MAGIC, head, blobs)


def ledger_from_bytes(data: bytes) -> Ledger:
    """The ledger `ledger_to_bytes` was given, with nothing marked dirty."""
    head, blobs = _unpack(LEDGER_MAGIC, data)
    rows = head["rows"]
    if len(blobs) != 2 + TS_SLOTS or len(blobs[0]) != rows or len(blobs[1]) != rows:
        raise ImageRejected("damaged (arrays)")
    ledger = Ledger()
    ledger.base = head["base"]
    ledger.updated = head["updated"]
    ledger.level = bytearray(blobs[0])
    ledger.failed = bytearray(blobs[1])
    ledger.dirty = bytearray(rows)
    for slot in range(TS_SLOTS):
        column = array("i")
        column.frombytes(blobs[2 + slot])
        if len(column) != rows:
            raise ImageRejected("damaged (times)")
        ledger.ts[slot] = column
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


def index_to_bytes(index: MessageIndex) -> bytes:
    keys, values, size, overflow = index.arrays()
    return _pack(INDEX_MAGIC, {"size": size, "overflow": overflow},
                 [keys.tobytes(), values.tobytes()])


def index_from_bytes(data: bytes) -> MessageIndex:
    head, blobs = _unpack(INDEX_MAGIC, data)
    if len(blobs) != 2:
        raise ImageRejected("damaged (arrays)")
    keys, values = array("q"), array("Q")
    keys.frombytes(blobs[0])
    values.frombytes(blobs[1])
    try:
        return MessageIndex.from_arrays(keys, values, head["size"], head["overflow"])
    except ValueError as exc:
        raise ImageRejected(str(exc)) from exc
