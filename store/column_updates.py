"""UPDATEs of only the columns of a row that changed (store/aggregates.py: the message
rows' figures and the contacts): a write of a wide row costs by the columns it sets, and
a reply changes few of them. One statement per set of changed columns, made once."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import compress
from operator import itemgetter, ne
from typing import Any

Getter = Callable[[Sequence[Any]], tuple[Any, ...]]
# (the changed columns' indexes, the row as it is now, the key's values)
Change = tuple[tuple[int, ...], Sequence[Any], tuple[Any, ...]]


def _getter(indexes: Sequence[int]) -> Getter:
    """These items of a sequence, always as a tuple (itemgetter's speed)."""
    if not indexes:
        return lambda _: ()
    if len(indexes) == 1:
        index = indexes[0]
        return lambda seq: (seq[index],)
    return itemgetter(*indexes)


class ColumnUpdates:
    """`table`'s rows by `key_where`, set column by column. `fixed`: further indexes
    (past `columns`) that set a literal assignment instead of a bound value."""

    def __init__(self, table: str, columns: Sequence[str], key_where: str,
                 fixed: Mapping[int, str] | None = None) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.key_where = key_where
        self.fixed = dict(fixed or {})
        self._indexes = tuple(range(len(self.columns)))
        self._statements: dict[tuple[int, ...], tuple[str, Getter]] = {}

    def changed(self, before: Sequence[Any], now: Sequence[Any]) -> tuple[int, ...]:
        """The indexes of the columns whose values differ."""
        return tuple(compress(self._indexes, map(ne, before, now)))

    def statement(self, indexes: tuple[int, ...]) -> tuple[str, Getter]:
        """The UPDATE of these columns, and what it binds of a row."""
        found = self._statements.get(indexes)
        if found is None:
            sets = [self.fixed[i] if i in self.fixed else f"{self.columns[i]} = ?"
                    for i in indexes]
            found = self._statements[indexes] = (
                f"UPDATE {self.table} SET {', '.join(sets)} WHERE {self.key_where}",
                _getter([i for i in indexes if i not in self.fixed]))
        return found

    def write(self, conn: sqlite3.Connection, changes: Iterable[Change]) -> None:
        """Each change's columns, grouped by which columns: one executemany a group."""
        groups: dict[tuple[int, ...], list[tuple[Sequence[Any], tuple[Any, ...]]]] = \
            defaultdict(list)
        for indexes, now, key in changes:
            groups[indexes].append((now, key))
        for indexes, items in groups.items():
            sql, values = self.statement(indexes)
            conn.executemany(sql, [(*values(now), *key) for now, key in items])
