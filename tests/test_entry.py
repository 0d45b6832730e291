"""The `campaignd` command starts without `rich` (daemon/entry.py): structlog would
import it, at 0.2-0.3 s of every start, when the test tools have installed it."""

from __future__ import annotations

import subprocess
import sys

from tests.proc import REPO

PROBE = """
import sys
from daemon import entry
sys.argv = ["campaignd", "--help"]
try:
    entry.main()
except SystemExit:
    pass
import structlog.dev
print("rich" if structlog.dev.rich is not None else "no rich")
"""


def test_the_command_starts_without_rich() -> None:
    import rich  # noqa: F401  # installed here (by the test tools), so the test means something

    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.strip().splitlines()[-1] == "no rich", done.stdout + done.stderr
