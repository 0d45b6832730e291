"""Reads while other reads are in flight (the analytics bench's 500, docs/BENCHMARKS.md).

The API reads through one shared aiosqlite connection. A statement's `execute` and its
`fetchall` used to be two operations in that connection's queue, so another task's
statement could run between them, inside the first one's read transaction: it saw the
database as of the first one's start. At start-up 200 campaigns load at once, some
statement was always in flight, and `POST /api/campaigns` did not find the row it had
just committed (AssertionError: HTTP 500).

The test keeps a statement in flight on the reader itself (stepped, not finished), which
is what the chain of loading campaigns amounted to, so the old snapshot is certain.
"""

from __future__ import annotations

from typing import Any


async def test_create_campaign_answers_201_while_another_read_is_in_flight(
        daemon: Any) -> None:
    """A statement kept open on the reader (as the 200 loading campaigns did, one after
    another) must not turn a campaign's creation into a 500: the new campaign is read
    back in the transaction that wrote it, and is found afterwards."""
    reader = daemon.runtime.store.reader
    status, body = await daemon.post_json("/api/campaigns", {"workspace_id": 1, "name": "a"})
    assert status == 201, body
    cursor = await reader.execute("SELECT uuid FROM campaigns")  # stepped, not finished
    try:
        status, body = await daemon.post_json(
            "/api/campaigns", {"workspace_id": 1, "name": "b", "uuid": "b"})
        assert status == 201, body
        assert body["campaign"]["uuid"] == "b" and body["campaign"]["name"] == "b"
        assert body["campaign"]["id"] == 2
    finally:
        await cursor.close()
    status, body = await daemon.request("GET", "/api/campaigns/b")
    assert status == 200, body
    assert body["campaign"]["name"] == "b"
