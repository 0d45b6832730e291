"""How Python's sqlite3 binds a None: one dictionary lookup instead of a failed search.

sqlite3 binds int, float and str directly. Any other value, None included, first goes
through its adapter protocol: the registry (empty for None), then `__adapt__` and
`__conform__` looked up and not found, and only then is it bound as it is. That search
costs ~4,400 instructions a None (callgrind; 0.7 µs on this machine), and the daemon's
rows bind many: 4-6 per status row a checkpoint writes, 5 per plain reply. An adapter
registered for None's type is found at once and hands back None, which binds as NULL,
exactly as before: 200,000 rows of five Nones, 7.0 -> 3.6 µs a row (`python -m
bench.none_binding`; docs/BENCHMARKS.md, "Wave 15 (lead)"). bytes are left alone: `bytes`
as their adapter costs more than the search it saves.

The registry is the process's: importing this module (store/db.py does) sets it for
every connection, the writer's, the reader's and the lookups'.
"""

from __future__ import annotations

import sqlite3

NONE_ADAPTER = {}.get  # called with the None, returns None: a C call, no Python frame


def bind_none_directly() -> None:
    sqlite3.register_adapter(type(None), NONE_ADAPTER)


bind_none_directly()
