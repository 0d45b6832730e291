"""Where recovery images are kept, and which of them a start may trust (issue 20).

A checkpoint writes, in ONE transaction before it writes any `messages` row: the
inbound, orphan and suppression changes it collected, each active campaign's ledger
image and the id index's image (domain/image.py), all at the checkpoint's journal seq
I, and `meta.image_seq = I`. The journal is still compacted only once the rows are
written (`meta.checkpoint_seq = R`, R <= I), so the rows + journal path of before stays
complete; a start that can trust the images replays only the journal after I instead
of after R, and loads a campaign with `frombytes` instead of reading its million rows.

An image of campaign c may be trusted when:
- its seq is I: c had an actor at that checkpoint, so every event up to I is in it (a
  campaign without one had no event after R, and its rows are complete);
- its `row_writes` equals the campaign's now: the sender writes rows directly (attempt,
  outcome, gateway id) and then tells the actor, under the state gate that checkpoints
  hold exclusively, and each such write adds one to `campaigns.row_writes` in its own
  transaction. A write after the image makes it stale: c is then loaded from its rows,
  and the start replays from R (the slow path of before, exact);
- its layout is this code's (domain/image.py refuses others: rows again).
Rows registered after the image (registration does not take the gate) are read from the
table and appended (`rows` says how many the image has). `pending` lists the rows whose
state the table may not have yet (the checkpoint that took the image had not written
them): the campaign actor marks them dirty, so the next checkpoint writes them.
"""

from __future__ import annotations

import sqlite3
from array import array
from dataclasses import dataclass, field

import structlog

from domain.image import ImageRejected, index_from_bytes, ledger_from_bytes
from domain.index import MessageIndex
from domain.ledger import DirtyRows, Ledger
from domain.records import CheckpointData
from store.db import Statement, Store
from store.engagement import suppression_statements

log = structlog.get_logger(__name__)

INDEX = "index"


def campaign_image(no: int) -> str:
    return f"campaign:{no}"


def image_campaign(name: str) -> int:
    """The campaign of an image's name (`campaign_image`'s inverse)."""
    return int(name.split(":", 1)[1])


def pending_rows(blocks: list[DirtyRows]) -> bytes:
    """The rows of these blocks (one campaign's, from the carried checkpoints), as they
    come: a row may be listed twice (marking it dirty twice is harmless), and a set of a
    million carried rows built on the loop for each image cost more than the image."""
    return b"".join(block.rows.tobytes() for block in blocks)


def image_statements(carry: list[CheckpointData]) -> list[Statement]:
    """The checkpoint's first transaction (see the module's docstring): what the
    collected data holds besides rows, and the images of the newest collection, at its
    seq. An actor sends an image only when its state changed since its previous one; a
    campaign that sent none keeps the newest image the carried data holds, else its
    stored one (nothing changed since that was written) with the new seq."""
    newest = carry[-1]
    seq = newest.seq
    out: list[Statement] = []
    for data in carry:  # oldest first
        for op, arg in data.orphan_ops:
            if op == "add":
                out.append(("INSERT INTO orphans (message_id, source, event, received_at)"
                            " VALUES (?,?,?,?)", arg, False))
            else:
                out.append(("DELETE FROM orphans WHERE message_id = ?", (arg,), False))
        out.extend(suppression_statements(data.suppression_ops))
    blocks: dict[int, list[DirtyRows]] = {}
    for data in carry:
        for block in data.rows:
            blocks.setdefault(block.campaign_no, []).append(block)
    for no, _, _ in newest.images:
        name = campaign_image(no)
        pending = pending_rows(blocks[no]) if no in blocks else b""
        # Every carried image of it, oldest first: each holds the chunks changed since the
        # one before (written or carried), so together they bring the stored chunks to
        # the newest state; a full one (an actor's first) replaces them all.
        images = [image for data in carry for n, image, _ in data.images
                  if n == no and image is not None]
        if not images:
            out.append(("UPDATE recovery_images SET seq = ?, pending = ? WHERE name = ?",
                        (seq, pending, name), False))
            continue
        for image in images:
            if image.full:
                out.append(("DELETE FROM recovery_image_chunks WHERE name = ?", (name,),
                            False))
            out.extend(("INSERT OR REPLACE INTO recovery_image_chunks (name, chunk, body)"
                        " VALUES (?, ?, ?)", (name, chunk, body), False)
                       for chunk, body in image.chunks.items())
        out.append(("INSERT OR REPLACE INTO recovery_images"
                    " (name, seq, row_writes, rows, body, pending) VALUES"
                    " (?, ?, (SELECT row_writes FROM campaigns WHERE no = ?), ?, ?, ?)",
                    (name, seq, no, images[-1].rows, images[-1].head, pending), False))
    index = next((d.index_image for d in reversed(carry) if d.index_image is not None), None)
    # recovery10: an index that did not grow keeps its row as it is. Setting its seq
    # rewrote the whole row (SQLite writes a row's record anew, blob and all): 24 MB at a
    # million ids, 0.3-0.8 s of the writer per image while journal commits waited. The
    # index row is current at `image_seq` whatever its own seq (`trusted_images`).
    if index is not None:
        out.append(index_image_step(seq, index))
    # Images of campaigns without an actor now can never be used again (their rows are
    # complete): only their row counts are kept (`imaged_rows`).
    out.append(("DELETE FROM recovery_image_chunks WHERE name IN (SELECT name FROM"
                " recovery_images WHERE seq < ? AND name != ?)", (seq, INDEX), False))
    out.append(("UPDATE recovery_images SET body = x'', pending = NULL WHERE seq < ?"
                " AND name != ?", (seq, INDEX), False))
    out.append(("INSERT INTO meta (key, value) VALUES ('image_seq', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(seq),), False))
    return out


# --- memory9 (issue 20): the id index's image written into its row in pieces. Bound as a
# parameter, SQLite copies the blob (Python's sqlite3 binds SQLITE_TRANSIENT) and builds
# the whole record from it: two more copies of 24 MB at a million ids in SQLite's memory
# for the transaction (its counter read 52 MB at the memory row's "registered" reading),
# every checkpoint while registrations grow the index. A zeroblob of the size (SQLite
# makes no record of the zeros) written through the incremental blob API holds one page
# at a time.
BLOB_PIECE = 1 << 20


def index_image_step(seq: int, body: bytes) -> Statement:
    """The statement (a step on the writer thread, store/db.py) that stores the id
    index's image `body` at `seq`."""
    def step(conn: sqlite3.Connection) -> None:
        cursor = conn.execute("INSERT OR REPLACE INTO recovery_images (name, seq, body)"
                              " VALUES (?, ?, zeroblob(?))", (INDEX, seq, len(body)))
        if not body:
            return
        view = memoryview(body)
        with conn.blobopen("recovery_images", "body", cursor.lastrowid) as blob:
            for at in range(0, len(body), BLOB_PIECE):
                blob.write(view[at:at + BLOB_PIECE])
    return (step, (), False)


@dataclass(slots=True)
class CampaignImage:
    ledger: Ledger
    rows: int  # rows the image has; later ones are read from the table
    pending: array[int]  # rows the table may not have yet (to be written again)
    head: bytes  # the image itself: a load that is retried starts from a fresh copy
    chunks: list[bytes]

    def fresh(self) -> Ledger:
        return ledger_from_bytes(self.head, self.chunks)


@dataclass(slots=True)
class Trusted:
    """What a start may use: replay the journal after `seq`; the id index (None: load it
    from the rows); the campaigns' images (each taken by its actor once loaded).

    `stale`: campaigns imaged at `image_seq` whose image a sender write made stale.
    They load from their rows, so the journal is replayed from `checkpoint_seq` (`seq`),
    but up to `image_seq` only their events are (the other campaigns' images, the
    orphans and the inbound events already hold those)."""

    seq: int
    index: MessageIndex | None = None
    campaigns: dict[int, CampaignImage] = field(default_factory=dict)
    stale: set[int] = field(default_factory=set)
    image_seq: int = 0


async def trusted_images(store: Store, checkpoint_seq: int) -> Trusted:
    """The images a start may use (module docstring). A campaign whose image is stale
    loads alone from its rows (`Trusted.stale`); an image of another layout or damaged
    sends the whole start the rows + journal way, as before images."""
    image_seq = int(await store.get_meta("image_seq") or 0)
    if not image_seq or image_seq < checkpoint_seq:
        return Trusted(checkpoint_seq)  # no images yet
    # The index's row at any seq: it is written in the same transaction as every
    # `image_seq` whenever the index grew, so it is the index as of `image_seq`.
    rows = await store.fetchall(
        "SELECT i.name, i.rows, i.body, i.pending, i.row_writes IS c.row_writes"
        " FROM recovery_images i LEFT JOIN campaigns c ON i.name = 'campaign:' || c.no"
        " WHERE i.seq = ? OR i.name = ?", (image_seq, INDEX))
    trusted = Trusted(image_seq, image_seq=image_seq)
    try:
        for name, count, body, pending, current in rows:
            if name == INDEX:
                trusted.index = index_from_bytes(body)
                continue
            if not current:
                log.info("image.stale", image=name)  # a sender write after it
                trusted.stale.add(image_campaign(name))
                continue
            pending_rows = array("I")
            pending_rows.frombytes(pending or b"")
            chunks = [chunk for (chunk,) in await store.fetchall(
                "SELECT body FROM recovery_image_chunks WHERE name = ? ORDER BY chunk",
                (name,))]
            trusted.campaigns[image_campaign(name)] = CampaignImage(
                ledger_from_bytes(body, chunks), count, pending_rows, body, chunks)
    except ImageRejected as exc:
        log.warning("image.refused", error=str(exc))
        return Trusted(checkpoint_seq)
    if trusted.index is None:
        return Trusted(checkpoint_seq)
    if trusted.stale:
        trusted.seq = checkpoint_seq
    return trusted


async def imaged_rows(store: Store) -> dict[int, int]:
    """Campaign -> the rows its latest image has (any seq): the id index's image knows
    their ids; later rows' ids are read from the table."""
    rows = await store.fetchall(
        "SELECT name, rows FROM recovery_images WHERE name LIKE 'campaign:%'")
    return {image_campaign(name): count for name, count in rows}


def written_statements(seq: int) -> list[Statement]:
    """In the checkpoint's last transaction: every row the images at `seq` listed as
    pending is written now (a start loading them would write them once more)."""
    return [("UPDATE recovery_images SET pending = NULL WHERE seq = ?", (seq,), False)]
