"""Plain records passed between the layers: a campaign's identity, a stored message row,
what a checkpoint collected. Frozen data, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.failures import Failure
from domain.image import LedgerImage


@dataclass(slots=True, frozen=True)
class CampaignInfo:
    """What a campaign actor needs to know about its campaign."""

    no: int
    uuid: str
    workspace_id: int
    name: str


@dataclass(slots=True, frozen=True)
class RegisteredMessage:
    """A message row as stored, for the in-memory ledger."""

    row: int
    message_id: str | None
    level: int
    failed: bool
    reason: str | None
    registered_at: float
    failure: Failure | None = None
    # The recipient's number key (domain/phones.number_key) on a fresh row; None when a
    # registration only brings an existing row's gateway id or send outcome.
    number_key: int | None = None
    attempt: int = 1  # SPEC 9: the attempt this id / outcome belongs to


@dataclass(slots=True)
class CheckpointData:
    seq: int
    rows: list[Any] = field(default_factory=list)  # ledger.DirtyRows, one per campaign
    campaigns: list[tuple[int, str]] = field(default_factory=list)  # (no, stats json)
    orphan_ops: list[tuple[str, Any]] = field(default_factory=list)
    orphans_expired: int = 0
    # engagement (SPEC 6): changes to the inbound and suppressions tables, in order
    inbound_ops: list[tuple[str, Any]] = field(default_factory=list)
    suppression_ops: list[tuple[str, Any]] = field(default_factory=list)
    # recovery images (store/image.py): (campaign no, its ledger's changed chunks or None
    # when unchanged since its previous image, its rows), and the id index's (None:
    # unchanged)
    images: list[tuple[int, LedgerImage | None, int]] = field(default_factory=list)
    index_image: bytes | None = None
