"""`python -m bench.none_binding`: what store/binding.py saves, side by side in one process.

Binds rows through `executemany` into an in-memory table, first as sqlite3 does by itself,
then with the adapter store/binding.py registers for None. Best of five runs each; the
adapter is registered halfway, so both halves run on the same machine state."""

from __future__ import annotations

import sqlite3
import time

ROWS = 200_000


def per_row(rows: list[tuple[object, ...]]) -> float:
    """Best of five: µs a row for `executemany` of `rows`."""
    best = float("inf")
    for _ in range(5):
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT, c TEXT, d TEXT, e TEXT, f TEXT)")
        started = time.perf_counter()
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", rows)
        best = min(best, time.perf_counter() - started)
        conn.close()
    return best / len(rows) * 1e6


def main() -> None:
    nones = [(i, None, None, None, None, None) for i in range(ROWS)]
    texts = [(i, "x", "y", "z", "w", "v") for i in range(ROWS)]
    before = per_row(nones), per_row(texts)
    from store.binding import bind_none_directly

    bind_none_directly()
    after = per_row(nones), per_row(texts)
    print(f"an int and five Nones: {before[0]:.2f} -> {after[0]:.2f} µs a row "
          f"(x{before[0] / after[0]:.2f})")
    print(f"an int and five strs:  {before[1]:.2f} -> {after[1]:.2f} µs a row (unchanged "
          "in principle: strs never searched)")


if __name__ == "__main__":
    main()
