"""The `campaignd` command and `python -m daemon`: the CLI, started without `rich`.

structlog imports `rich` whenever it is installed, to pretty-print tracebacks that the
daemon's logs never use (they are JSON, or structlog's plain console lines). Only the
test tools bring it (import-linter, schemathesis: `make run` installs them too), and
importing it was a third of the daemon's import time: 0.2-0.3 s of every start on our
2-core machine, which the recovery bar's "listening" counts (docs/BENCHMARKS.md,
"Wave 17 (lead)"). So the command marks it absent before anything imports structlog.
In-process users of our modules (the tests) keep it.
"""

from __future__ import annotations

import sys


def main() -> int:
    sys.modules.setdefault("rich", None)  # `import rich` now raises ImportError
    from daemon.cli import main as cli_main

    return cli_main()
