"""The suppression list of each workspace (SPEC 6.4): numbers not to message.

A number's state in a workspace is decided by the latest of its stop / start facts
(a STOP reply or button, Cloud `user_preferences` stop / resume, a failure 131050, a
START reply, an operator's POST / DELETE or CSV import): by time, a stop winning a tie,
then by fact id. So it is a function of the SET of facts: order and duplicates do not
matter and the journal replays safely. A fact whose workspace changes (its reply was
credited to another workspace's message) simply moves.

Pure and single-threaded: actors/suppressions.py shares it between threads.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any, NamedTuple

from domain.inbound import STOP


class Fact(NamedTuple):
    at: float
    kind: int  # inbound.STOP or inbound.START
    reason: str | None
    source: str
    fact_id: str

    def rank(self) -> tuple[float, bool, str]:
        return (self.at, self.kind == STOP, self.fact_id)


class Entry(NamedTuple):
    """A suppressed number, as listed and exported."""

    number: str
    at: float
    reason: str | None
    source: str


class SuppressionBook:
    def __init__(self) -> None:
        self._where: dict[str, tuple[str, tuple[int, ...]]] = {}  # fact -> number, workspaces
        self._facts: dict[tuple[int, str], dict[str, Fact]] = {}  # (ws, number) -> facts
        self._winner: dict[tuple[int, str], Fact] = {}
        self._sorted: dict[int, list[str]] = {}  # suppressed numbers per workspace, sorted
        self._ops: list[tuple[str, Any]] = []

    def __len__(self) -> int:
        return sum(len(v) for v in self._sorted.values())

    def take_ops(self) -> list[tuple[str, Any]]:
        """Changes for the suppressions table: ("put", row) / ("drop", (fact, workspace))."""
        ops, self._ops = self._ops, []
        return ops

    def put(self, fact_id: str, number: str, workspaces: Iterable[int], at: float, kind: int,
            reason: str | None, source: str, durable: bool = False) -> None:
        """Record a fact for these workspaces (replacing where it applied before);
        `durable` when it is loaded from the table."""
        workspaces = tuple(sorted(set(workspaces)))
        fact = Fact(at, kind, reason, source, fact_id)
        old_number, old_workspaces = self._where.get(fact_id, (number, ()))
        for workspace in old_workspaces:
            if workspace not in workspaces or old_number != number:
                self._remove(fact_id, workspace, old_number, durable)
        for workspace in workspaces:
            facts = self._facts.setdefault((workspace, number), {})
            if facts.get(fact_id) == fact:
                continue
            facts[fact_id] = fact
            self._settle(workspace, number)
            if not durable:
                self._ops.append(("put", (fact_id, workspace, number, at, kind, reason, source)))
        if workspaces:
            self._where[fact_id] = (number, workspaces)
        else:
            self._where.pop(fact_id, None)

    def _remove(self, fact_id: str, workspace: int, number: str, durable: bool) -> None:
        facts = self._facts.get((workspace, number))
        if facts and facts.pop(fact_id, None) is not None:
            if not facts:
                del self._facts[(workspace, number)]
            self._settle(workspace, number)
            if not durable:
                self._ops.append(("drop", (fact_id, workspace)))

    def _settle(self, workspace: int, number: str) -> None:
        key = (workspace, number)
        facts = self._facts.get(key)
        was = key in self._winner and self._winner[key].kind == STOP
        if facts:
            self._winner[key] = max(facts.values(), key=Fact.rank)
        else:
            self._winner.pop(key, None)
        now = key in self._winner and self._winner[key].kind == STOP
        if now == was:
            return
        numbers = self._sorted.setdefault(workspace, [])
        i = bisect.bisect_left(numbers, number)
        if now:
            numbers.insert(i, number)
        elif i < len(numbers) and numbers[i] == number:
            del numbers[i]

    # --- questions ----------------------------------------------------------------------

    def numbers(self, workspace: int) -> tuple[str, ...]:
        """The workspace's suppressed numbers in number order (kept so: no Entry is made,
        the contacts' tier counts ask for all of them on every first page)."""
        return tuple(self._sorted.get(workspace, ()))

    def is_suppressed(self, workspace: int, number: str) -> bool:
        winner = self._winner.get((workspace, number))
        return winner is not None and winner.kind == STOP

    def entry(self, workspace: int, number: str) -> Entry | None:
        winner = self._winner.get((workspace, number))
        if winner is None or winner.kind != STOP:
            return None
        return Entry(number, winner.at, winner.reason, winner.source)

    def count(self, workspace: int) -> int:
        return len(self._sorted.get(workspace, ()))

    def page(self, workspace: int, after: str | None, limit: int) -> list[Entry]:
        """Suppressed numbers in number order, after the cursor."""
        numbers = self._sorted.get(workspace, [])
        start = bisect.bisect_right(numbers, after) if after else 0
        out = []
        for number in numbers[start:start + limit]:
            entry = self.entry(workspace, number)
            if entry is not None:
                out.append(entry)
        return out

    def workspaces_of(self, fact_id: str) -> tuple[int, ...]:
        """Where a fact applies now (empty if nowhere)."""
        return self._where.get(fact_id, ("", ()))[1]

    def state(self) -> dict[tuple[int, str], Fact]:
        """Every (workspace, number)'s deciding fact (for tests and rebuilds)."""
        return dict(self._winner)
