"""Memory of a campaign's engagement in process (SPEC 4: <= 100 bytes per message, the
engagement fields included): `python -m bench.engagement_memory [MESSAGES]`.

Builds one campaign's EngagementBook as its actor does: MESSAGES rows (1,000,000 by
default), a tenth of them replied once with a plain text (as credits arrive: rows in
random order), every twentieth of those by a quick-reply button, and measures with
tracemalloc what the book holds afterwards (allocations still alive: each credit's id
and touch are made inside the measurement, as a message brings them, so what the book
keeps of them counts): bytes per replied row and per message. Not a row of `make bench`
(no daemon): the probe named in docs/BENCHMARKS.md, "Inbound replies (issue 10)".
"""

from __future__ import annotations

import gc
import random
import sys
import time
import tracemalloc

from domain.engagement import EngagementBook, Touch
from domain.inbound import MESSAGE, REPLY
from domain.ledger import Ledger


def measure(messages: int, replied_share: float = 0.1) -> dict[str, float]:
    rng = random.Random(7)
    rows = rng.sample(range(messages), int(messages * replied_share))
    now = time.time()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    book = EngagementBook()
    for n, row in enumerate(rows):  # each credit made here, as a message brings it
        button = ("YES", "Yes, tell me more") if n % 20 == 0 else (None, None)
        book.credit(row, f"cloud:wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABIYFDNB{n:012d}",
                    Touch(now + n % 600, REPLY, MESSAGE, *button, None), now - 60.0)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert book.replied == len(rows)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    ledger = Ledger()
    ledger.reserve(messages, now)  # the per-message arrays, for scale
    ledger_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {"messages": messages, "replied": len(rows), "bytes": held,
            "per_replied_row": held / len(rows), "per_message": held / messages,
            "ledger_per_message": ledger_bytes / messages}


def main(argv: list[str]) -> int:
    messages = int(argv[0]) if argv else 1_000_000
    got = measure(messages)
    print(f"{got['messages']:,} messages, {got['replied']:,} replied: the book holds"
          f" {got['bytes'] / 1e6:.1f} MB = {got['per_replied_row']:.0f} bytes per replied"
          f" row, {got['per_message']:.1f} bytes per message (the ledger's arrays:"
          f" {got['ledger_per_message']:.1f} bytes per message)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
