"""Who hears about campaign changes: listener actors, told and never asked.

Like Mopidy's listener events: a campaign actor publishes `CampaignChanged` and goes on;
the broadcaster (and, for its own campaigns, the sender) receive it in their inboxes.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: tuple[pykka.ActorRef[Any], ...] = ()

    def subscribe(self, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            self._listeners = (*self._listeners, ref)

    def unsubscribe(self, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            self._listeners = tuple(r for r in self._listeners if r is not ref)

    def publish(self, message: Any) -> None:
        for ref in self._listeners:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                self.unsubscribe(ref)


class StatsBoard:
    """The latest statistics of every campaign that changed, readable from any thread.

    Campaign actors replace an entry with a new dict (an atomic assignment); readers
    such as the campaign list never block on an actor.
    """

    def __init__(self) -> None:
        self._stats: dict[int, dict[str, Any]] = {}

    def publish(self, campaign_no: int, statistics: dict[str, Any]) -> None:
        self._stats[campaign_no] = statistics

    def get(self, campaign_no: int) -> dict[str, Any] | None:
        return self._stats.get(campaign_no)
