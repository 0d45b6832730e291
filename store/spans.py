"""Statement sizes from a short ladder, so SQLite's statement caches stay small.

Python's sqlite3 keeps up to 128 prepared statements per connection, keyed by their SQL
text. A statement written for n rows (`VALUES (?,…),(?,…)` or `IN (?,…)`) is a new text
for every n, and its compiled program grows with n: ~330 KB for the checkpoint's
500-row UPDATE, ~100 KB for a 500-id IN list. Chunks cut as `[i:i + 500]` leave a
remainder of any size at the end of every block, so each checkpoint prepared and
cached a statement of a new size: the daemon's SQLite memory grew from 1 MB to 15-19 MB
over the memory row's 300,000 messages (issue 20, docs/BENCHMARKS.md "Wave 7").
Cutting the remainder into powers of two leaves at most ~10 sizes per statement, which
together cost about twice the largest.
"""

from __future__ import annotations

from collections.abc import Iterator


def spans(total: int, most: int) -> Iterator[tuple[int, int]]:
    """[lo, hi) spans covering range(total) in order: `most` at a time, then the rest in
    descending powers of two (each span's size is `most` or a power of two)."""
    lo = 0
    while total - lo >= most:
        yield lo, lo + most
        lo += most
    size = 1 << max(0, (most - 1).bit_length())
    while lo < total:
        while size > total - lo:
            size >>= 1
        yield lo, lo + size
        lo += size
