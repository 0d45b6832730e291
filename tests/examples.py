"""How many examples a property test of 100 examples or more draws: half its number in
`make test` (the suite must stay under 5 minutes on 2 cores, and these tests were about
250 s of its ~500 s of CPU), all of it with TEST_EXAMPLES=full, as `make soak` runs
them. Each run draws new examples, so the runs of `make test` keep covering new ground."""

from __future__ import annotations

import os

FULL = os.environ.get("TEST_EXAMPLES") == "full"


def examples(n: int) -> int:
    """`n` examples under `make soak`, half of them (at least 25) otherwise."""
    return n if FULL else max(25, n // 2)
