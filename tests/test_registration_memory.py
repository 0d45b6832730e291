"""What registering a full request of messages costs in small objects (issue 20).

Each 10,000-message request's transient objects need pymalloc arenas, and the few
objects made among them that stay (counters, statistics) pin those arenas for good:
registering a million messages left ~13 MiB of arenas holding ~1.5 MB of objects
(docs/BENCHMARKS.md "Wave 13: regmem13"). So the peak of objects alive at once while
one request is parsed and stored is what decides how many arenas stay behind."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import orjson

from store.campaigns import CampaignStore
from store.db import Store
from web.api import MAX_MESSAGES_PER_REQUEST, parse_registrations

N = MAX_MESSAGES_PER_REQUEST


def _body(first: int) -> bytes:
    return orjson.dumps({"messages": [
        {"recipient": f"62{i:010d}", "message_id": f"wamid.R{i}"}
        for i in range(first, first + N)]})


async def test_a_full_request_is_parsed_without_a_second_copy(tmp_path: Path) -> None:
    """Parsing turns each item into its message as it goes: the request's dicts are
    let go of one by one, so the parse never holds both the dicts and the messages."""
    body = _body(0)
    tracemalloc.start()  # before the parse: freeing the dicts then counts
    try:
        doc = orjson.loads(body)
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        items = parse_registrations(doc)
        peak = tracemalloc.get_traced_memory()[1] - before
        del doc
    finally:
        tracemalloc.stop()
    assert len(items) == N and items[-1].message_id == f"wamid.R{N - 1}"
    assert peak < 40 * N, f"{peak / N:.0f} bytes a message"  # was ~105


async def test_storing_a_full_request_makes_no_row_tuples_at_once(tmp_path: Path) -> None:
    """The INSERT's 26-field rows are made one at a time as SQLite takes them: storing
    holds the registered messages it returns and the duplicate check's set (~250
    bytes a message), not a list of row tuples beside them too (~545 in all)."""
    store = Store(tmp_path / "campaignd.sqlite3")
    await store.open()
    try:
        campaigns = CampaignStore(store)
        no = (await campaigns.create(1, "Memory", "camp-mem"))["no"]
        await campaigns.register(no, parse_registrations(orjson.loads(_body(0))))  # warm
        items = parse_registrations(orjson.loads(_body(N)))
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            registered, duplicates = await campaigns.register(no, items)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert (len(registered), duplicates) == (N, 0)
        assert registered[0].row == N and registered[-1].message_id == f"wamid.R{2 * N - 1}"
        rows = await store.fetchall("SELECT count(*), max(row) FROM messages WHERE"
                                    " campaign_no = ?", (no,))
        assert tuple(rows[0]) == (2 * N, 2 * N - 1)
        assert peak < 350 * N, f"{peak / N:.0f} bytes a message"  # was ~545
    finally:
        await store.close()
