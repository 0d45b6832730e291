"""The id index's hash-collision path (docs/architecture.md "Memory per message").

The ingest actor routes a message id by a 64-bit hash of it. A true collision is far too
rare to meet by chance (~n / 2^64), so these tests make one: the hash is given to
`MessageIndex` directly, and replaced by a colliding one for a whole daemon.
"""

from __future__ import annotations

from typing import Any

import pytest

import domain.index
import store.campaigns
from domain.index import MessageIndex, id_hash
from tests.conftest import webjs_ack

SAME = 0x5EED_C011_1DE5  # one hash for every id below that starts with "COLL"


def test_two_registered_ids_with_one_hash_are_both_routed() -> None:
    index = MessageIndex(capacity=4)
    index.add("A", 1, 0, h=SAME)
    index.add("B", 2, 7, h=SAME)  # the store said B is new: a true collision
    assert index.get("A", h=SAME) == (1, 0, 1)  # (campaign, row, attempt)
    assert index.get("B", h=SAME) == (2, 7, 1)
    assert len(index) == 2
    index.add("A", 1, 0, h=SAME)  # registering again changes nothing
    assert len(index) == 2
    for n in range(100):  # the table grows (rehashing) with the collision in it
        index.add(f"other{n}", 3, n)
    assert (index.get("A", h=SAME), index.get("B", h=SAME)) == ((1, 0, 1), (2, 7, 1))
    assert index.get("other99") == (3, 99, 1)


def test_an_unregistered_id_that_collides_is_misrouted_until_it_is_registered() -> None:
    """The documented limit: the index keeps no full ids for hashes it has seen once,
    so an unregistered id with a registered one's hash is taken for it (an ACK would be
    applied to that row). Once registered, it routes to its own row."""
    index = MessageIndex()
    index.add("A", 1, 0, h=SAME)
    assert index.get("C", h=SAME) == (1, 0, 1)  # misrouted, as docs/architecture.md says
    assert index.get("D") is None  # no collision: unknown, kept as an orphan
    index.add("C", 4, 2, h=SAME)
    assert (index.get("A", h=SAME), index.get("C", h=SAME)) == ((1, 0, 1), (4, 2, 1))


def test_stored_collisions_are_found_again_at_start() -> None:
    """At start the index is loaded from stored hashes; the second id of a hash is
    reported (False) and then added with its full id, as actors/runtime.py does."""
    index = MessageIndex()
    assert index.load(SAME, 1, 0) is True
    assert index.load(SAME, 1, 0) is True  # the same entry twice is no collision
    assert index.load(SAME, 2, 7) is False
    index.add("B", 2, 7, h=SAME)
    assert (index.get("A", h=SAME), index.get("B", h=SAME)) == ((1, 0, 1), (2, 7, 1))


def test_each_attempt_of_a_row_has_its_own_id_and_a_collision_keeps_them_apart() -> None:
    """SPEC 9: a retried recipient's ids all lead to its row, each with its attempt."""
    index = MessageIndex()
    index.add("FIRST", 5, 3)
    index.add("SECOND", 5, 3, attempt=2)
    index.add("THIRD", 5, 3, h=SAME, attempt=3)
    index.add("OTHER", 5, 3, h=SAME, attempt=255)  # the same hash: a true collision
    assert [index.get(i, h=SAME if i in ("THIRD", "OTHER") else None)
            for i in ("FIRST", "SECOND", "THIRD", "OTHER")] == [
        (5, 3, 1), (5, 3, 2), (5, 3, 3), (5, 3, 255)]
    assert index.load(SAME, 5, 3, attempt=3) is True
    assert index.load(SAME, 5, 3, attempt=4) is False  # another attempt under that hash


@pytest.fixture
def colliding_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every id starting with COLL gets the same hash, in the index and in the store
    (which saves the hash with each row for the next start)."""
    def fake(message_id: str) -> int:
        return SAME if message_id.startswith("COLL") else id_hash(message_id)
    monkeypatch.setattr(domain.index, "id_hash", fake)
    monkeypatch.setattr(store.campaigns, "id_hash", fake)


async def test_a_daemon_routes_colliding_ids_to_their_own_campaigns(
        daemon_factory: Any, colliding_hash: None) -> None:
    daemon = await daemon_factory()
    first = await daemon.create_campaign(name="First")
    second = await daemon.create_campaign(name="Second")
    await daemon.register(first["uuid"], [{"recipient": "1", "message_id": "COLL-A"},
                                          {"recipient": "2", "message_id": "PLAIN-1"}])
    await daemon.register(second["uuid"], [{"recipient": "3", "message_id": "COLL-B"}])
    for mid, ack in (("COLL-A", 2), ("COLL-B", 3), ("PLAIN-1", 3)):
        assert (await daemon.post_json("/webhooks/webjs", webjs_ack(mid, ack)))[0] == 200

    async def counts(d: Any, uuid: str) -> tuple[int, int]:
        stats = await d.stats(uuid)
        return stats["total_delivered_count"], stats["total_read_count"]

    assert await counts(daemon, first["uuid"]) == (2, 1)  # COLL-A delivered, PLAIN-1 read
    assert await counts(daemon, second["uuid"]) == (1, 1)  # COLL-B read

    # After a restart the index comes from the stored hashes: the collision is found
    # again and both ids still reach their own rows.
    await daemon.session.close()
    await daemon.server.close()
    again = await daemon_factory()
    assert (await again.post_json("/webhooks/webjs", webjs_ack("COLL-A", 3)))[0] == 200
    assert (await again.post_json("/webhooks/webjs", webjs_ack("COLL-B", 4)))[0] == 200
    assert await counts(again, first["uuid"]) == (2, 2)
    assert await counts(again, second["uuid"]) == (1, 1)
    assert (await again.stats(second["uuid"]))["total_played_count"] == 1
    status, body = await again.request("GET", f"/api/campaigns/{first['uuid']}/messages")
    assert {r["message_id"]: r["status"] for r in body["messages"]} == {
        "COLL-A": "read", "PLAIN-1": "read"}
