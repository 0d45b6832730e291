"""The analytics routes of a running daemon (SPEC 8): contacts with a tier of each kind,
search, paging and CSV; tiers moving as 90 days pass; an audience built from tiers
removes exactly the numbers the preview counted; the workspace scoping of tokens; and
the aggregates unchanged by duplicates, replays and a restart.

Live traffic goes through the real routes (registration, ACK webhooks, a reply, the
suppression API); the aggregates are read after a checkpoint, as they are kept."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest

from tests.conftest import Daemon, close_server, eventually, webjs_ack
from web import insights

DAY = 86400.0
ENG, REP, UNE, UNR, HALF, OPT, NEW, OLD = (f"62811000000{i:02d}" for i in range(1, 9))
BAD = {"code": "131026", "title": "Message undeliverable"}  # Not on WhatsApp / bad number


@pytest.fixture(autouse=True)
def _real_clock() -> Any:
    yield
    insights.clock = time.time


def reply(number: str, mid: str) -> dict[str, Any]:
    """A reply from the number that quotes nothing (credited to its latest message)."""
    return {"event": "message_received", "data": {"workspace_id": 1, "message": {
        "id": f"false_{number}@c.us_{mid}", "from": f"{number}@c.us", "body": "berapa?",
        "timestamp": int(time.time()) + 1, "from_me": False, "chat_type": "private",
        "type": "chat"}}}


async def setup_tiers(d: Daemon) -> None:
    """Two campaigns of workspace 1 whose numbers end in each tier:
    ENG read, REP replied, UNE 5 delivered, UNR failed twice as a bad number, HALF failed
    as one then delivered, OPT suppressed, NEW one delivered, OLD 5 delivered, one read."""
    await d.create_campaign(1, "First", "first")
    await d.create_campaign(1, "Second", "second")

    def msg(number: str, mid: str, status: str = "delivered", **extra: Any) -> dict[str, Any]:
        return {"recipient": number, "message_id": mid, "status": status, **extra}

    await d.register("first", [
        msg(ENG, "F-ENG", "read"), msg(REP, "F-REP"),
        *(msg(UNE, f"F-UNE{i}") for i in range(3)),
        msg(UNR, "F-UNR", "failed", error=BAD), msg(HALF, "F-HALF", "failed", error=BAD),
        msg(OPT, "F-OPT"), msg(NEW, "F-NEW"),
        msg(OLD, "F-OLD0", "read"), *(msg(OLD, f"F-OLD{i}") for i in (1, 2))])
    await d.register("second", [
        *(msg(UNE, f"S-UNE{i}") for i in range(2)), msg(UNR, "S-UNR", "failed", error=BAD),
        msg(HALF, "S-HALF"), *(msg(OLD, f"S-OLD{i}") for i in range(2))])
    status, _ = await d.post_json("/webhooks/webjs", reply(REP, "3EB0REPLY1"))
    assert status == 200
    status, _ = await d.post_json("/api/workspaces/1/suppressions", {"number": OPT})
    assert status == 201

    async def replied() -> bool:
        return (await d.stats("first"))["total_replied_count"] == 1

    await eventually(replied)
    await counted(d)


async def counted(d: Daemon) -> None:
    """A checkpoint now, and its rows recounted (the daemon does both on its own a moment
    later: store.checkpoint_interval, then the Recounter)."""
    await d.runtime.checkpoint()
    await d.runtime.recounter.settle()


async def contacts(d: Daemon, query: str = "", ws: int = 1, **kw: Any) -> dict[str, Any]:
    status, body = await d.request("GET", f"/api/workspaces/{ws}/contacts{query}", **kw)
    assert status == 200, body
    return body


EXPECTED = {  # number: (tier, received, delivered, read, replied, failed)
    ENG: ("engaged", 1, 1, 1, 0, 0), REP: ("engaged", 1, 1, 0, 1, 0),
    UNE: ("unengaged", 5, 5, 0, 0, 0), UNR: ("unreachable", 2, 0, 0, 0, 2),
    HALF: ("new", 2, 1, 0, 0, 1), OPT: ("opted_out", 1, 1, 0, 0, 0),
    NEW: ("new", 1, 1, 0, 0, 0), OLD: ("engaged", 5, 5, 1, 0, 0),
}


def shown(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["tier"], row["received"], row["delivered"], row["read"], row["replied"],
            row["failed"])


async def test_contacts_a_tier_of_each_kind_with_search_paging_and_csv(
        daemon_factory: Any) -> None:
    d = await daemon_factory()
    await setup_tiers(d)
    body = await contacts(d)
    assert [r["number"] for r in body["contacts"]] == sorted(EXPECTED)
    assert {r["number"]: shown(r) for r in body["contacts"]} == EXPECTED
    assert body["tiers"] == {"opted_out": 1, "unreachable": 1, "engaged": 3, "unengaged": 1,
                             "new": 2}
    by_number = {r["number"]: r for r in body["contacts"]}
    assert by_number[ENG]["last_read_at"] is not None and by_number[ENG][
        "last_replied_at"] is None
    assert by_number[REP]["last_replied_at"] is not None
    # Each tier's filter (SQL) lists exactly the contacts whose tier (Python) is that one.
    for tier in ("opted_out", "unreachable", "engaged", "unengaged", "new"):
        listed = await contacts(d, f"?tier={tier}")
        assert sorted(r["number"] for r in listed["contacts"]) == sorted(
            n for n, e in EXPECTED.items() if e[0] == tier), tier
        assert all(r["tier"] == tier for r in listed["contacts"])
    # Search by digits, as a person types them.
    found = await contacts(d, "?search=%2B62%20811-0000-0004")
    assert [r["number"] for r in found["contacts"]] == [UNR]
    assert found["tiers"]["unreachable"] == 1 and sum(found["tiers"].values()) == 1
    # Paging: three pages of 3, 3 and 2 contacts, in number order.
    seen: list[str] = []
    cursor = ""
    while True:
        page = await contacts(d, f"?limit=3{'&cursor=' + cursor if cursor else ''}")
        seen += [r["number"] for r in page["contacts"]]
        assert ("tiers" in page) == (not cursor)
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(EXPECTED)
    # The CSV has the same rows; a tier's CSV only that tier.
    status, text = await d.request("GET", "/api/workspaces/1/contacts.csv")
    assert status == 200
    lines = list(csv.DictReader(io.StringIO(text)))
    assert {r["number"]: (r["tier"], *(int(r[c]) for c in ("received", "delivered", "read",
                                                            "replied", "failed")))
            for r in lines} == EXPECTED
    status, text = await d.request("GET", "/api/workspaces/1/contacts.csv?tier=new")
    assert sorted(r["number"] for r in csv.DictReader(io.StringIO(text))) == [HALF, NEW]
    # The counts follow a change (they are kept between changes): NEW reads, HALF stops.
    status, _ = await d.post_json("/webhooks/webjs", webjs_ack("F-NEW", 3))
    assert status == 200
    await counted(d)
    assert (await contacts(d))["tiers"] == {"opted_out": 1, "unreachable": 1, "engaged": 4,
                                            "unengaged": 1, "new": 1}
    status, _ = await d.post_json("/api/workspaces/1/suppressions", {"number": HALF})
    assert status == 201

    async def listed() -> bool:  # the list changes when the ingest actor applies the stop
        return (await contacts(d))["tiers"] == {"opted_out": 2, "unreachable": 1,
                                                "engaged": 4, "unengaged": 1, "new": 0}

    await eventually(listed)
    # Bad queries are 400 naming the parameter.
    for query, field in (("?tier=loyal", "tier"), ("?search=abc", "search"),
                         ("?cursor=x1", "cursor"), ("?limit=0", "limit")):
        status, err = await d.request("GET", f"/api/workspaces/1/contacts{query}")
        assert status == 400 and err["error"]["field"] == field, query


async def test_search_finds_the_numbers_that_start_with_what_was_typed(
        daemon_factory: Any, monkeypatch: Any) -> None:
    """A search is the start of the number as stored (E.164 digits): with or without
    '+', spaces and dashes, 00 for '+'. Digits inside or at the end of a number do not
    match, and a national 0… finds only a number registered that way. The first page's
    tier counts are those of the matches, or null when too many match to count them one
    by one and not every contact (here: more than 3)."""
    from store import insights as store_insights

    d = await daemon_factory()
    await setup_tiers(d)
    every = await contacts(d)

    async def numbers(query: str) -> list[str]:
        return [r["number"] for r in (await contacts(d, f"?search={query}"))["contacts"]]

    assert await numbers("62811") == sorted(EXPECTED)
    assert await numbers("%2B62%20811-0000-0004") == [UNR]
    assert await numbers("0062%20811%200000%200004") == [UNR]
    assert await numbers("6281100000004") == [UNR]
    for inside in ("811", "0004", "1100000000", "4", "62811000000041"):
        found = await contacts(d, f"?search={inside}")
        assert found["contacts"] == [] and sum(found["tiers"].values()) == 0, inside
    assert await numbers("0811") == []  # no number was registered without its country
    monkeypatch.setattr(store_insights, "SEARCH_COUNT_LIMIT", 3)
    # 8 match, every contact of the workspace: the counters answer.
    assert (await contacts(d, "?search=62"))["tiers"] == every["tiers"]
    # A number registered as written, without its country code (tracking only).
    local = "081100000009"
    await d.register("second", [{"recipient": local, "message_id": "S-LOCAL",
                                 "status": "delivered"}])
    await counted(d)
    assert await numbers("0811") == [local]
    assert await numbers("%2B62811") == sorted(EXPECTED)
    # 8 of 9 match: more than 3, not all: not counted; 1 matches: counted.
    assert (await contacts(d, "?search=62"))["tiers"] is None
    assert (await contacts(d, "?search=6281100000004"))["tiers"] == {
        "opted_out": 0, "unreachable": 1, "engaged": 0, "unengaged": 0, "new": 0}
    # Paging and the CSV keep to the matches.
    page = await contacts(d, "?search=62811&limit=5")
    rest = await contacts(d, f"?search=62811&limit=5&cursor={page['next_cursor']}")
    assert [r["number"] for r in page["contacts"] + rest["contacts"]] == sorted(EXPECTED)
    assert rest["next_cursor"] is None and "tiers" not in rest
    status, text = await d.request("GET", "/api/workspaces/1/contacts.csv?search=0811")
    assert status == 200
    assert [r["number"] for r in csv.DictReader(io.StringIO(text))] == [local]
    for bad in ("62a", "%2B", "-", "1234567890123456", "%2B%2B62"):
        status, err = await d.request("GET", f"/api/workspaces/1/contacts?search={bad}")
        assert status == 400 and err["error"]["field"] == "search", bad


async def test_ninety_days_later_the_engaged_are_no_longer(daemon_factory: Any) -> None:
    d = await daemon_factory()
    await setup_tiers(d)
    later = time.time() + 91 * DAY
    insights.clock = lambda: later
    body = await contacts(d)
    tiers = {r["number"]: r["tier"] for r in body["contacts"]}
    # A read or a reply 91 days ago: with 5 delivered unengaged, with fewer too little data.
    assert (tiers[ENG], tiers[REP], tiers[OLD]) == ("new", "new", "unengaged")
    assert body["tiers"] == {"opted_out": 1, "unreachable": 1, "engaged": 0, "unengaged": 2,
                             "new": 4}
    listed = await contacts(d, "?tier=unengaged")
    assert sorted(r["number"] for r in listed["contacts"]) == sorted([UNE, OLD])


async def test_an_audience_from_tiers_removes_what_its_preview_counted(
        daemon_factory: Any) -> None:
    d = await daemon_factory()
    await setup_tiers(d)
    unknown = "6281100000099"
    recipients = [*sorted(EXPECTED), unknown]
    audience = {"exclude_tiers": ["opted_out", "unreachable"]}
    status, preview = await d.post_json("/api/workspaces/1/audience/preview",
                                        {"recipients": recipients, "audience": audience})
    assert status == 200, preview
    report = preview["audience"]
    assert (report["recipients"], report["kept"], report["removed_count"]) == (9, 7, 2)
    assert report["removed"] == [
        {"rule": "exclude_tiers", "tier": "opted_out", "count": 1},
        {"rule": "exclude_tiers", "tier": "unreachable", "count": 1}]
    assert report["tiers"] == {"opted_out": 1, "unreachable": 1, "engaged": 3,
                               "unengaged": 1, "new": 3}  # the unknown number is new
    status, created = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Again", "uuid": "again", "message": "Halo",
        "gateway": "simulator", "recipients": recipients, "audience": audience})
    assert status == 201, created
    assert created["audience"] == report
    status, rows = await d.request("GET", "/api/campaigns/again/messages?limit=100")
    assert sorted(r["recipient"] for r in rows["messages"]) == sorted(
        n for n in recipients if n not in (OPT, UNR))
    # Only the engaged: every other tier is removed by the include rule.
    status, only = await d.post_json("/api/workspaces/1/audience/preview", {
        "recipients": recipients, "audience": {"include_tiers": ["engaged"]}})
    assert only["audience"]["kept"] == 3
    assert {r["tier"]: r["count"] for r in only["audience"]["removed"]
            if r["rule"] == "include_tiers"} == {"opted_out": 1, "unreachable": 1,
                                                 "unengaged": 1, "new": 3}
    # A bad audience is refused naming the field, and nothing is created.
    status, err = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Bad", "uuid": "bad", "message": "Halo",
        "recipients": recipients, "audience": {"include_tiers": ["loyal"]}})
    assert status == 422 and err["error"]["field"] == "audience.include_tiers[0]"
    status, _ = await d.request("GET", "/api/campaigns/bad")
    assert status == 404
    # An audience that removes everyone: refused with its counts.
    status, err = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "None", "uuid": "none", "message": "Halo",
        "recipients": [OPT], "audience": {"exclude_tiers": ["opted_out"]}})
    assert status == 422 and err["error"]["code"] == "empty_audience"
    assert err["error"]["audience"]["removed_count"] == 1


async def test_a_workspace_token_sees_only_its_workspace(daemon_factory: Any) -> None:
    d = await daemon_factory(**{"api.tokens": [
        {"token": "all-workspaces-token-0001", "workspace": "*"},
        {"token": "workspace-2-token-000001", "workspace": 2}]})
    admin = {"Authorization": "Bearer all-workspaces-token-0001"}
    ws2 = {"Authorization": "Bearer workspace-2-token-000001"}
    d.session.headers.update(admin)
    await setup_tiers(d)
    d.session.headers.pop("Authorization")
    for path in ("contacts", "contacts.csv", "insights/trends", "insights/best-time",
                 "insights/compare?campaigns=first,second"):
        status, body = await d.request("GET", f"/api/workspaces/1/{path}", headers=ws2)
        assert status == 404, (path, body)
        status, body = await d.request("GET", f"/api/workspaces/1/{path}")
        assert status == 401, path
    status, body = await d.request("POST", "/api/workspaces/1/audience/preview", headers=ws2,
                                   json={"recipients": [ENG]})
    assert status == 404
    assert (await contacts(d, ws=2, headers=ws2))["contacts"] == []
    assert len((await contacts(d, headers=admin))["contacts"]) == len(EXPECTED)
    # Another workspace's campaign cannot be compared from this one.
    status, body = await d.request(
        "GET", "/api/workspaces/2/insights/compare?campaigns=first,second", headers=ws2)
    assert status == 404 and body["error"]["field"] == "campaigns"


async def aggregates(d: Daemon) -> dict[str, Any]:
    status, trends = await d.request("GET", "/api/workspaces/1/insights/trends")
    assert status == 200
    status, best = await d.request("GET", "/api/workspaces/1/insights/best-time")
    assert status == 200
    status, compared = await d.request("GET",
                                       "/api/workspaces/1/insights/compare?campaigns=first,"
                                       "second")
    assert status == 200
    return {"totals": trends["totals"], "cells": best["cells"],
            "reads": best["read_times"], "curves": [c["curve"] for c in compared["campaigns"]],
            "contacts": (await contacts(d))["contacts"]}


async def test_duplicates_replays_and_a_restart_count_nothing_twice(
        daemon_factory: Any, tmp_path: Any, monkeypatch: Any) -> None:
    from store import aggregates as kept

    # Tiny batches: recounts written every 3 rows (a number's rows split between them),
    # as big checkpoints are.
    monkeypatch.setattr(kept, "FLUSH", 3)
    settings = {"store.path": str(tmp_path / "again.sqlite3")}
    d = await daemon_factory(**settings)
    await setup_tiers(d)
    for mid, ack in (("F-UNE0", 3), ("F-NEW", 3)):  # two more reads
        status, _ = await d.post_json("/webhooks/webjs", webjs_ack(mid, ack))
        assert status == 200
    await counted(d)
    before = await aggregates(d)
    week = before["totals"]["7"]["current"]
    # every message of setup_tiers: 18 handed over, 3 of them failed, 15 delivered, 4 read
    assert (week["sent"], week["failed"], week["delivered"], week["read"],
            week["replied"]) == (15, 3, 15, 4, 1)
    assert sum(c["sent"] for c in before["cells"]) == 18
    assert sum(c["reads"] for c in before["reads"]) == 4
    # The same ACKs and the same reply again, as a provider retries: nothing moves.
    for mid, ack in (("F-UNE0", 3), ("F-NEW", 3), ("F-ENG", 3), ("S-UNE0", 2)):
        status, _ = await d.post_json("/webhooks/webjs", webjs_ack(mid, ack))
        assert status == 200
    status, _ = await d.post_json("/webhooks/webjs", reply(REP, "3EB0REPLY1"))
    assert status == 200
    await counted(d)
    assert await aggregates(d) == before
    # A restart loads the rows and replays nothing new: still the same.
    await close_server(d.server)
    again = await daemon_factory(**settings)
    await counted(again)
    assert await aggregates(again) == before
