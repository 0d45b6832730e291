"""The messages actors exchange.

Everything sent to an actor with `tell` is one of these small frozen objects. Where the
event loop needs an answer it passes a `Reply`: the actor resolves the asyncio future
with `loop.call_soon_threadsafe`, so no handler ever blocks on a Pykka future (SPEC 1.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.aio import Reply
from domain.events import StatusEvent
from domain.records import CampaignInfo, RegisteredMessage

# --- ingest actor inbox ----------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class ApplyEvents:
    """Journaled events, grouped by source, committed up to `seq`: route them."""

    groups: tuple[tuple[str, tuple[StatusEvent, ...]], ...]
    seq: int


@dataclass(slots=True, frozen=True)
class RegisterMessages:
    """New rows of a campaign (already committed), plus ids newly attached to rows."""

    campaign_no: int
    messages: tuple[RegisteredMessage, ...]
    reply: Reply | None = None


@dataclass(slots=True, frozen=True)
class SkipRows:
    """Rows the sender skipped (already stored, SPEC 9): (row, domain.skips.Skip)."""

    campaign_no: int
    items: tuple[tuple[int, Any], ...]


@dataclass(slots=True, frozen=True)
class PublishStatistics:
    """Publish the campaign's statistics although no counter moved: the sender's progress
    changed in a way the page shows (it started or stopped waiting for the send window),
    and a page that read the statistics before would otherwise never hear of it."""

    campaign_no: int


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
    # Sparse: position in `items` -> attempt number, for events of an attempt other
    # than the first (SPEC 9); None when every event belongs to attempt 1.
    attempts: dict[int, int] | None = None


@dataclass(slots=True, frozen=True)
class Loaded:
    """A chunk of a campaign's stored rows, for an actor coming back from passivation:
    columns (rows, levels, faileds, reasons, 7 tick columns, then the kept failures'
    source, code, title, details and tick) against `base`. The last chunk (`done`)
    brings the inbound events credited to its rows: (row, id, Touch)."""

    info: CampaignInfo
    rows: list[tuple[Any, ...]]
    done: bool = True
    base: int = 0
    touches: tuple[tuple[int, str, Any], ...] = ()
    # (row, latest attempt, latest accepted attempt above 1 or None, its tick or None)
    # of the rows sent more than once (store/campaigns.py state_columns)
    attempts: list[tuple[int, ...]] | None = None
    # (row, domain.skips.Skip) of the rows the sender skipped (SPEC 9)
    skips: tuple[tuple[int, Any], ...] = ()
    # A recovery image (store/image.py): the ledger as it was (it replaces the actor's;
    # later chunks append the rows registered after it), and its rows the table may not
    # have yet (marked dirty once loaded, so the next checkpoint writes them).
    image: Any = None
    pending: Any = None
    # The rows of the stored image `image` is (its chunks are the stored ones: the next
    # image writes only what changed); None with an image: a fresh ledger whose first
    # image is a full one (a retried load from rows starts again from it).
    image_rows: int | None = None


@dataclass(slots=True, frozen=True)
class CollectDirty:
    seq: int
    sink: Any  # actors.ingest.CheckpointCollector (thread-safe)


# --- published to listeners (broadcaster, sender) --------------------------------------


@dataclass(slots=True, frozen=True)
class CampaignChanged:
    """A campaign's counters moved; `rows` are the changed rows' new states.

    Each row is (row, level, failed, class, reason, ts_pending..ts_failed, failure,
    engagement, skip) so a live table can update its ticks without asking for the row
    again.
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


@dataclass(slots=True, frozen=True)
class CampaignAlert:
    """An alert rule fired or cleared on a campaign (actors/alerts.py); the broadcaster
    pushes it as `campaign.alert`."""

    info: CampaignInfo
    alert: dict[str, Any]


# --- engagement (SPEC 6): replies, button taps, opt-outs -------------------------------


@dataclass(slots=True, frozen=True)
class NumberRows:
    """To the ingest actor, from the loop: the answer to an attribution `Lookup`,
    (number key, campaign_no, row) of every row sent to the numbers asked about."""

    serial: int
    keys: tuple[int, ...]
    rows: tuple[tuple[int, int, int], ...]


@dataclass(slots=True, frozen=True)
class RowFacts:
    """To a campaign actor: tell `reply_to` these rows' send state (an attribution
    `Ask`), as a `RowFactsAnswer`."""

    serial: int
    rows: tuple[int, ...]
    reply_to: Any  # the ingest actor's ActorRef


@dataclass(slots=True, frozen=True)
class RowFactsAnswer:
    """(row, sent tenths or None, level, failed, registered tenths or None, latest
    attempt, the attempt `sent` belongs to) for each row asked about (SPEC 6.2 and 9:
    a retried recipient's send time is its latest accepted attempt's; its failure is its
    latest attempt's)."""

    serial: int
    campaign_no: int
    facts: tuple[tuple[int, int | None, int, bool, int | None, int, int], ...]


@dataclass(slots=True, frozen=True)
class CampaignEngagement:
    """Inbound events credited to (touch) or withdrawn from (None) rows of a campaign."""

    items: tuple[tuple[int, str, Any], ...]  # (row, inbound id, Touch | None)


@dataclass(slots=True, frozen=True)
class GetSuppressions:
    """A page of a workspace's suppression list (through the ingest actor, so it sees
    every change acknowledged before it)."""

    workspace_id: int
    after: str | None
    limit: int
    reply: Reply
