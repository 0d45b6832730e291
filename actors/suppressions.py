"""The suppression list shared between threads (SPEC 6.4).

The ingest actor writes it (stop / start facts from the journal, in journal order);
anyone may ask `is_suppressed(workspace, number)` from any thread in O(1), without
going through an actor: the sender asks `entry` before handing a message to a gateway
(SPEC 9: a listed number is skipped, with the entry's reason). Pages for the API go
through the ingest actor (`GetSuppressions`) so that a read after an acknowledged
change sees it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from domain.phones import e164_digits
from domain.suppression import Entry, SuppressionBook


class SuppressionList:
    def __init__(self, book: SuppressionBook | None = None) -> None:
        self._book = book or SuppressionBook()
        self._lock = threading.Lock()

    def is_suppressed(self, workspace_id: int, number: str) -> bool:
        """Whether a recipient (any spelling: `+62 812…`, `…@c.us`, `whatsapp:+…`) must
        not be messaged in this workspace. Cheap enough to ask for every send."""
        digits = e164_digits(number)
        if digits is None:
            return False
        with self._lock:
            return self._book.is_suppressed(workspace_id, digits)

    def entry(self, workspace_id: int, number: str) -> Entry | None:
        """The listing of a suppressed recipient (its reason, source and time), else None;
        O(1) like `is_suppressed`: the sender asks it before each send (SPEC 9)."""
        digits = e164_digits(number)
        if digits is None:
            return None
        with self._lock:
            return self._book.entry(workspace_id, digits)

    def suppressed_numbers(self, workspace_id: int) -> frozenset[str]:
        """Every suppressed number of a workspace, as E.164 digits (a snapshot a sender
        can filter a whole recipient list with)."""
        return frozenset(self.numbers_in_order(workspace_id))

    def numbers_in_order(self, workspace_id: int) -> tuple[str, ...]:
        """The same, in number order (a snapshot)."""
        with self._lock:
            return self._book.numbers(workspace_id)

    def put(self, fact_id: str, number: str, workspaces: Iterable[int], at: float, kind: int,
            reason: str | None, source: str, durable: bool = False) -> None:
        with self._lock:
            self._book.put(fact_id, number, workspaces, at, kind, reason, source, durable)

    def page(self, workspace_id: int, after: str | None, limit: int) -> list[Entry]:
        with self._lock:
            return self._book.page(workspace_id, after, limit)

    def count(self, workspace_id: int) -> int:
        with self._lock:
            return self._book.count(workspace_id)

    def workspaces_of(self, fact_id: str) -> tuple[int, ...]:
        with self._lock:
            return self._book.workspaces_of(fact_id)

    def take_ops(self) -> list[tuple[str, Any]]:
        with self._lock:
            return self._book.take_ops()
