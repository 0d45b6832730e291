"""The messages actors exchange, and the one normalized event every webhook becomes.

Everything sent to an actor with `tell` is one of these small frozen objects. Where the
event loop needs an answer it passes a `Reply`: the actor resolves the asyncio future
with `loop.call_soon_threadsafe`, so no handler ever blocks on a Pykka future (SPEC 1.1).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class StatusEvent(NamedTuple):
    """One delivery status of one message, whatever gateway reported it.

    `at` is the event's time in epoch seconds: the provider's ACK time where it gives
    one, otherwise the time campaignd received it (fixed when journaled, so a replay
    reproduces it exactly). A NamedTuple, not a dataclass: every status of every
    webhook becomes one, and a tuple is made (and journaled) at half the cost.
    """

    message_id: str  # bare id (see status.bare_message_id)
    level: int  # status.Level; QUEUED when the event carries no level evidence
    failed: bool
    at: float
    reason: str | None = None
    recipient: str | None = None

    def to_row(self) -> tuple[Any, ...]:
        return tuple(self)

    @classmethod
    def from_row(cls, row: list[Any]) -> StatusEvent:
        return cls(row[0], row[1], bool(row[2]), row[3], row[4], row[5])


@dataclass(slots=True)
class Reply:
    """An asyncio future to resolve from an actor thread, safely."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]

    @classmethod
    def new(cls) -> Reply:
        loop = asyncio.get_running_loop()
        return cls(loop, loop.create_future())

    def set(self, value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future, value, None)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def fail(self, error: BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future, None, error)
        except RuntimeError:
            pass


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


# --- ingest actor inbox ----------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class ApplyEvents:
    """Journaled events, grouped by source, committed up to `seq`: route them."""

    groups: tuple[tuple[str, tuple[StatusEvent, ...]], ...]
    seq: int


@dataclass(slots=True, frozen=True)
class RegisteredMessage:
    """A message row as stored, for the in-memory ledger."""

    row: int
    message_id: str | None
    level: int
    failed: bool
    reason: str | None
    registered_at: float


@dataclass(slots=True, frozen=True)
class RegisterMessages:
    """New rows of a campaign (already committed), plus ids newly attached to rows."""

    campaign_no: int
    messages: tuple[RegisteredMessage, ...]
    reply: Reply | None = None


@dataclass(slots=True, frozen=True)
class CampaignInfo:
    """What a campaign actor needs to know about its campaign."""

    no: int
    uuid: str
    workspace_id: int
    name: str


@dataclass(slots=True, frozen=True)
class CampaignCreated:
    info: CampaignInfo


@dataclass(slots=True, frozen=True)
class GetStatistics:
    campaign_no: int
    reply: Reply


@dataclass(slots=True, frozen=True)
class GetTimeline:
    campaign_no: int
    points: int
    reply: Reply


@dataclass(slots=True, frozen=True)
class Checkpoint:
    """Collect every dirty row and the orphans; answer with a `CheckpointData`."""

    reply: Reply


@dataclass(slots=True)
class CheckpointData:
    seq: int
    rows: list[Any] = field(default_factory=list)  # ledger.DirtyRows, one per campaign
    campaigns: list[tuple[int, str]] = field(default_factory=list)  # (no, stats json)
    orphan_ops: list[tuple[str, Any]] = field(default_factory=list)
    orphans_expired: int = 0


@dataclass(slots=True, frozen=True)
class CheckpointDone:
    """The checkpoint with this seq is on disk: idle campaign actors may passivate."""

    seq: int


# --- campaign actor inbox --------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class CampaignEvents:
    """Events for one campaign, with the row each message id resolved to."""

    source: str
    items: tuple[tuple[int, StatusEvent], ...]


@dataclass(slots=True, frozen=True)
class Loaded:
    """A chunk of a campaign's stored rows, for an actor coming back from passivation:
    columns (rows, levels, faileds, reasons, 7 tick columns) against `base`."""

    info: CampaignInfo
    rows: list[tuple[Any, ...]]
    done: bool = True
    base: int = 0


@dataclass(slots=True, frozen=True)
class CollectDirty:
    seq: int
    sink: Any  # actors.ingest.CheckpointCollector (thread-safe)


# --- published to listeners (broadcaster, sender) --------------------------------------


@dataclass(slots=True, frozen=True)
class CampaignChanged:
    """A campaign's counters moved; `rows` are the changed rows' new states.

    Each row is (row, class, level, failed, reason, ts_pending..ts_failed) so a live
    table can update its ticks without asking for the row again.
    """

    info: CampaignInfo
    statistics: dict[str, Any]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(slots=True, frozen=True)
class CampaignStatusChanged:
    """A campaign's lifecycle status moved (pending, processing, paused, completed, ...)."""

    info: CampaignInfo
    status: str
    previous: str | None
    statistics: dict[str, Any]
