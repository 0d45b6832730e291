"""The status ladder (SPEC 2.1-2.3): the one place that says what an event means.

Every webhook source maps its own vocabulary into `Level` plus a failed mark here, and
every counter in campaignd is derived from the rules below. The rules make a message's
state a pure function of the *set* of events received, so replaying the journal, or
receiving a provider's retry, can never change a result.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Level(IntEnum):
    """How far a message got. Higher implies every lower level."""

    QUEUED = 0
    PENDING = 1
    SENT = 2
    DELIVERED = 3
    READ = 4
    PLAYED = 5


# A message's *class* is what the counters and the status filter see: its level, or
# FAILED when a failure was received and there is no evidence of delivery.
FAILED_CLASS = 6
CLASS_NAMES = ("queued", "pending", "sent", "delivered", "read", "played", "failed")
LEVEL_NAMES = CLASS_NAMES[:6]
# Timestamps are kept for every level from PENDING up (QUEUED's is the registration time).
TIMESTAMP_LEVELS = (Level.PENDING, Level.SENT, Level.DELIVERED, Level.READ, Level.PLAYED)


def message_class(level: int, failed: bool) -> int:
    """Delivery evidence beats a failure (Meta documents both orders)."""
    if failed and level < Level.DELIVERED:
        return FAILED_CLASS
    return level


def class_name(level: int, failed: bool) -> str:
    return CLASS_NAMES[message_class(level, failed)]


def parse_status_name(name: str) -> tuple[int, bool] | None:
    """Our own status names ('delivered', 'failed', ...) as (level, failed)."""
    name = name.strip().lower()
    if name == "failed":
        return Level.QUEUED, True
    if name in LEVEL_NAMES:
        return LEVEL_NAMES.index(name), False
    return None


# --- numbering of the gateways (SPEC 2.3) -------------------------------------------

# whatsapp-web.js / WAHA `ack`: -1 error, 0 pending, 1 server, 2 device, 3 read, 4 played.
WEBJS_ACK: dict[int, tuple[int, bool]] = {
    -1: (Level.QUEUED, True),
    0: (Level.PENDING, False),
    1: (Level.SENT, False),
    2: (Level.DELIVERED, False),
    3: (Level.READ, False),
    4: (Level.PLAYED, False),
}

# Baileys' protobuf WebMessageInfo.Status: 0 error, 1 pending, 2 server, 3 delivery,
# 4 read, 5 played. The seed documents used this numbering by mistake for webjs.
BAILEYS_ACK: dict[int, tuple[int, bool]] = {
    0: (Level.QUEUED, True),
    1: (Level.PENDING, False),
    2: (Level.SENT, False),
    3: (Level.DELIVERED, False),
    4: (Level.READ, False),
    5: (Level.PLAYED, False),
}

ACK_NUMBERINGS = {"webjs": WEBJS_ACK, "baileys": BAILEYS_ACK}

# Evolution API `messages.update` statuses (Baileys names, and its Cloud-API channel's).
EVOLUTION_STATUS: dict[str, tuple[int, bool]] = {
    "ERROR": (Level.QUEUED, True),
    "PENDING": (Level.PENDING, False),
    "SERVER_ACK": (Level.SENT, False),
    "DELIVERY_ACK": (Level.DELIVERED, False),
    "READ": (Level.READ, False),
    "PLAYED": (Level.PLAYED, False),
    "SENT": (Level.SENT, False),
    "DELIVERED": (Level.DELIVERED, False),
    "FAILED": (Level.QUEUED, True),
}

# Meta WhatsApp Cloud API `statuses[].status`.
CLOUD_STATUS: dict[str, tuple[int, bool]] = {
    "sent": (Level.SENT, False),
    "delivered": (Level.DELIVERED, False),
    "read": (Level.READ, False),
    "played": (Level.PLAYED, False),
    "failed": (Level.QUEUED, True),
}

# Twilio `MessageStatus`. `undelivered` reached WhatsApp's servers but not the device.
TWILIO_STATUS: dict[str, tuple[int, bool]] = {
    "accepted": (Level.QUEUED, False),
    "scheduled": (Level.QUEUED, False),
    "queued": (Level.PENDING, False),
    "sending": (Level.PENDING, False),
    "sent": (Level.SENT, False),
    "delivered": (Level.DELIVERED, False),
    "read": (Level.READ, False),
    "undelivered": (Level.SENT, True),
    "failed": (Level.QUEUED, True),
}


# --- message ids ---------------------------------------------------------------------


def bare_message_id(message_id: str) -> str:
    """Reduce a whatsapp-web.js serialized id to the bare id both forms share.

    `true_6281234567890@c.us_3EB0C767D8B4D5E3F0A1` (and its group form with a 4th
    `_participant` part, or `@lid` instead of `@c.us`) becomes `3EB0C767D8B4D5E3F0A1`.
    Ids of other gateways (`wamid.…`, `SM…`, Evolution key ids) come back unchanged.
    """
    if message_id.startswith(("true_", "false_")):
        parts = message_id.split("_")
        if len(parts) >= 3 and "@" in parts[1]:
            return parts[2]
    return message_id


# --- statistics ----------------------------------------------------------------------


@dataclass(slots=True)
class ClassCounts:
    """How many messages are in each class; every statistic derives from these."""

    counts: list[int]

    @classmethod
    def empty(cls) -> ClassCounts:
        return cls([0] * (FAILED_CLASS + 1))

    def move(self, old_class: int | None, new_class: int) -> None:
        if old_class is not None:
            self.counts[old_class] -= 1
        self.counts[new_class] += 1


def percent(part: int, whole: int) -> float:
    return round(part * 100.0 / whole, 1) if whole else 0.0


def statistics_from_counts(counts: list[int]) -> dict[str, int | float]:
    """The seed-compatible statistics (SPEC 2.2), in O(1) from the class counts."""
    queued, pending, sent, delivered, read, played, failed = counts
    total = sum(counts)
    sent_count = pending + sent + delivered + read + played
    delivered_count = delivered + read + played
    read_count = read + played
    return {
        "total_message_count": total,
        "total_queued_count": queued,
        "total_sent_count": sent_count,
        "total_delivered_count": delivered_count,
        "total_read_count": read_count,
        "total_played_count": played,
        "total_failed_count": failed,
        "delivery_rate": percent(delivered_count, sent_count),
        "read_rate": percent(read_count, delivered_count),
        "progress": percent(sent_count + failed, total),
    }


# Status filters of the per-recipient table: inclusive class ranges, matching the cards.
STATUS_FILTERS: dict[str, tuple[int, int]] = {
    "queued": (Level.QUEUED, Level.QUEUED),
    "pending": (Level.PENDING, Level.PENDING),
    "sent": (Level.PENDING, Level.PLAYED),
    "delivered": (Level.DELIVERED, Level.PLAYED),
    "read": (Level.READ, Level.PLAYED),
    "played": (Level.PLAYED, Level.PLAYED),
    "failed": (FAILED_CLASS, FAILED_CLASS),
}
