"""Analytics across a workspace's campaigns (SPEC 8, docs/insights.md): the routes.

  GET  /api/workspaces/{id}/insights/trends?days=        rates per campaign, 7/30/90 totals
  GET  /api/workspaces/{id}/insights/compare?campaigns=  2 to 5 campaigns side by side
  GET  /api/workspaces/{id}/insights/best-time           the heatmaps and the advice
  GET  /api/workspaces/{id}/contacts?tier=&search=&cursor=   and /contacts.csv
  POST /api/workspaces/{id}/audience/preview             what an audience would remove

Token rules of the API: a token of one workspace sees only that workspace (others are
404, like a campaign it may not see). Every figure comes from the aggregates kept at
checkpoints (store/aggregates.py): as of the last checkpoint, a couple of seconds old.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from actors.runtime import Runtime
from core.config import Config
from domain.besttime import BestTimePolicy, best_time, fold_weeks, offset_spans, zone
from domain.contacts import Contact
from domain.insights import DELAY_EDGES, SLOT_SECONDS, slot_of
from domain.phones import number_prefix
from domain.tiers import TIERS, Audience, AudienceError, TierPolicy, tier_of, tiers_of
from domain.timefmt import iso_time
from domain.trends import PERIODS, campaign_counts, curves, figures, period
from gateways.recipients import Recipient, parse_recipients
from store.db import StoreUnavailable
from store.insights import InsightStore, facts_of
from web.common import query_int, read_json_object
from web.csvstream import stream_csv
from web.errors import ApiError, json_response
from web.keys import RUNTIME
from web.suppressions import workspace_of

DAY = 86400.0
MAX_COMPARE = 5
MAX_TREND_CAMPAIGNS = 500
CSV_PAGE = 5000
CSV_COLUMNS = ("number", "tier", "received", "delivered", "read", "replied", "failed",
               "last_read_at", "last_replied_at")
# What "now" is for the analytics: the tests move it to see 90 days pass.
clock: Callable[[], float] = time.time


def tier_policy(config: Config) -> TierPolicy:
    return TierPolicy(config["analytics.engaged_days"],
                      config["analytics.unengaged_min_delivered"])


def best_time_policy(config: Config) -> BestTimePolicy:
    return BestTimePolicy(config["analytics.prior_strength"],
                          config["analytics.min_cell_messages"],
                          config["analytics.advice_min_messages"])


def slots_end(now: float) -> float:
    """The end of the slot `now` is in: periods end there, so they include this minute."""
    return (slot_of(now) + 1) * SLOT_SECONDS


async def counting(rt: Runtime) -> bool:
    """Rows wait to be counted (just written, or stored before the aggregates existed, an
    upgrade): the figures leave them out until they are. A route asks this BEFORE it reads
    the aggregates: a recount that commits in between then only makes the answer newer,
    whereas asked after, "not counting" could stand beside figures read before it."""
    try:
        return await rt.recounter.counting()
    except StoreUnavailable:
        return True


def _store(request: web.Request) -> tuple[Runtime, InsightStore]:
    rt: Runtime = request.app[RUNTIME]
    return rt, InsightStore(rt.store)


# --- trends and comparison ----------------------------------------------------------------


def _statistics(rt: Runtime, campaign: dict[str, Any]) -> dict[str, Any]:
    """The live statistics of an active campaign, else as last checkpointed."""
    return rt.board.get(campaign["no"]) or campaign["statistics"]


def _campaign_figures(rt: Runtime, campaign: dict[str, Any]) -> dict[str, Any]:
    return {"uuid": campaign["uuid"], "name": campaign["name"], "status": campaign["status"],
            "created_at": iso_time(campaign["created_at"]),
            **figures(campaign_counts(_statistics(rt, campaign)))}


async def trends(request: web.Request) -> web.Response:
    rt, store = _store(request)
    workspace = workspace_of(request)
    days = query_int(request, "days", 90, 1, 3650)
    waiting = await counting(rt)  # asked BEFORE reading: see counting()
    now = clock()
    campaigns = await store.campaigns(workspace, now - days * DAY, MAX_TREND_CAMPAIGNS)
    end = slots_end(now)
    totals = {}
    for length in PERIODS:
        span = length * DAY
        current = await store.slot_totals(workspace, end - span, end)
        previous = await store.slot_totals(workspace, end - 2 * span, end - span)
        totals[str(length)] = period(current, previous)
    return json_response({"workspace_id": workspace, "days": days, "now": iso_time(now),
                          "counting": waiting,
                          "campaigns": [_campaign_figures(rt, c) for c in campaigns],
                          "totals": totals})


async def compare(request: web.Request) -> web.Response:
    rt, store = _store(request)
    workspace = workspace_of(request)
    raw = request.query.get("campaigns", "")
    uuids = list(dict.fromkeys(u.strip() for u in raw.split(",") if u.strip()))
    if not 2 <= len(uuids) <= MAX_COMPARE or any(len(u) > 64 for u in uuids):
        raise ApiError(400, "invalid_query", "campaigns must be 2 to 5 campaign uuids, "
                       "separated by commas", "campaigns")
    found = await store.campaigns_by_uuid(workspace, uuids)
    missing = [u for u in uuids if u not in found]
    if missing:
        raise ApiError(404, "campaign_not_found",
                       f"no campaign {missing[0]!r} in workspace {workspace}", "campaigns")
    out = []
    for uuid in uuids:
        campaign = found[uuid]
        out.append({**_campaign_figures(rt, campaign),
                    "curve": curves(await store.delays(campaign["no"]))})
    return json_response({"workspace_id": workspace, "delays": list(DELAY_EDGES),
                          "campaigns": out})


# --- best time to send ---------------------------------------------------------------------


async def best_time_route(request: web.Request) -> web.Response:
    rt, store = _store(request)
    workspace = workspace_of(request)
    config = rt.config
    days = query_int(request, "days", config["analytics.best_time_days"], 1, 3650)
    name = request.query.get("timezone") or config["analytics.timezone"]
    tz = zone(name) if len(name) <= 64 else None
    if tz is None:
        raise ApiError(400, "invalid_query", "timezone must be an IANA time zone name like "
                       "Asia/Jakarta", "timezone")
    waiting = await counting(rt)
    end = slots_end(clock())
    first, last = int((end - days * DAY) // SLOT_SECONDS), int(end // SLOT_SECONDS)
    cells = fold_weeks(await store.week_sums(workspace, offset_spans(tz, first, last)))
    policy = best_time_policy(config)
    return json_response({"workspace_id": workspace, "timezone": name, "days": days,
                          "counting": waiting,
                          "min_cell_messages": policy.min_cell_messages,
                          "prior_strength": policy.prior_strength,
                          **best_time(cells, policy)})


# --- contacts ---------------------------------------------------------------------------------


def present_contact(contact: Contact, tier: str) -> dict[str, Any]:
    return {"number": contact.number, "tier": tier, "received": contact.received,
            "delivered": contact.delivered, "read": contact.read,
            "replied": contact.replied, "failed": contact.failed,
            "last_read_at": iso_time(contact.last_read_at),
            "last_replied_at": iso_time(contact.last_replied_at)}


def _contact_query(request: web.Request) -> tuple[str | None, str | None]:
    tier = request.query.get("tier")  # absent: every tier; "" is not a tier
    if tier is not None and tier not in TIERS:
        raise ApiError(400, "invalid_query", f"tier must be one of {', '.join(TIERS)}", "tier")
    search = request.query.get("search") or None
    if search is not None:
        if len(search) > 32:
            raise ApiError(400, "invalid_query", "search is longer than 32 characters",
                           "search")
        search = number_prefix(search)
        if not search:
            raise ApiError(400, "invalid_query", "search must be the start of a number: "
                           "digits, with a leading + or 00 and spaces or dashes if you like",
                           "search")
    return tier, search


async def _page(rt: Runtime, store: InsightStore, workspace: int, tier: str | None,
                search: str | None, after: str | None, limit: int, now: float
                ) -> tuple[list[dict[str, Any]], bool, list[str]]:
    policy = tier_policy(rt.config)
    suppressed = list(rt.suppressions.numbers_in_order(workspace))
    rows = await store.contacts(workspace, tier=tier, search=search, after=after,
                                limit=limit + 1, now=now, policy=policy,
                                suppressed=suppressed)
    listed = set(suppressed)
    page = [present_contact(c, tier_of(facts_of(c, c.number in listed), now, policy))
            for c in rows[:limit]]
    return page, len(rows) > limit, suppressed


async def contacts(request: web.Request) -> web.Response:
    rt, store = _store(request)
    workspace = workspace_of(request)
    tier, search = _contact_query(request)
    limit = query_int(request, "limit", 50, 1, 1000)
    after = request.query.get("cursor") or None
    if after is not None and not (after.isascii() and after.isdigit() and len(after) <= 15):
        raise ApiError(400, "invalid_query", "cursor is not valid", "cursor")
    waiting = await counting(rt)
    now = clock()
    page, more, suppressed = await _page(rt, store, workspace, tier, search, after, limit, now)
    body: dict[str, Any] = {"workspace_id": workspace, "tier": tier, "search": search,
                            "counting": waiting, "contacts": page,
                            "next_cursor": page[-1]["number"] if more else None}
    if after is None:  # the first page says how many there are in each tier
        body["tiers"] = await tier_counts(rt, store, workspace, now, suppressed, search)
    return json_response(body)


async def tier_counts(rt: Runtime, store: InsightStore, workspace: int, now: float,
                      suppressed: list[str], search: str | None) -> dict[str, int] | None:
    return await store.tier_counts(workspace, now, tier_policy(rt.config), suppressed,
                                   search)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


async def contacts_csv(request: web.Request) -> web.StreamResponse:
    rt, store = _store(request)
    workspace = workspace_of(request)
    tier, search = _contact_query(request)
    now = clock()

    async def pages() -> AsyncIterator[list[list[str]]]:
        after = None
        while True:
            page, more, _ = await _page(rt, store, workspace, tier, search, after, CSV_PAGE,
                                        now)
            # numbers and tier names: nothing a spreadsheet would run
            yield [[_cell(contact[c]) for c in CSV_COLUMNS] for contact in page]
            if not more:
                return
            after = page[-1]["number"]

    name = f'contacts-{workspace}{"-" + tier if tier else ""}.csv'
    return await stream_csv(request, name, CSV_COLUMNS, pages())


# --- audiences ------------------------------------------------------------------------------


def parse_audience(doc: Any) -> Audience:
    try:
        return Audience.parse(doc)
    except AudienceError as exc:
        raise ApiError(422, "invalid_field", str(exc), exc.field) from None


async def audience_of(rt: Runtime, workspace: int, audience: Audience,
                      recipients: list[Recipient]) -> tuple[list[Recipient], dict[str, Any]]:
    """The recipients the audience keeps, and what it removed by rule and tier (for the
    create answer and the preview). Tiers are judged now, from the contacts as of the
    last checkpoint and the suppression list as it is."""
    store = InsightStore(rt.store)
    suppressed = rt.suppressions.suppressed_numbers(workspace)
    facts = await store.facts(workspace, [r.number for r in recipients], suppressed)
    tiers = tiers_of(facts, clock(), tier_policy(rt.config))
    kept = [r for r, t in zip(recipients, tiers, strict=True) if audience.keeps(t)]
    return kept, audience.report(tiers)


async def preview(request: web.Request) -> web.Response:
    rt: Runtime = request.app[RUNTIME]
    workspace = workspace_of(request)
    doc = await read_json_object(request)
    items = doc.get("recipients")
    if not isinstance(items, list) or not items:
        raise ApiError(422, "invalid_field", "recipients must be a non-empty array of phone "
                       "numbers (or {recipient, ...} objects)", "recipients")
    if len(items) > rt.config["sender.max_recipients"]:
        raise ApiError(413, "too_many_recipients", f"at most "
                       f"{rt.config['sender.max_recipients']} recipients", "recipients")
    audience = parse_audience(doc.get("audience", {}))
    report = parse_recipients(items)
    _, outcome = await audience_of(rt, workspace, audience, report.valid)
    return json_response({"workspace_id": workspace, "audience": outcome,
                          "recipients": report.as_dict()})


def add_routes(app: web.Application) -> None:
    r = app.router
    base = "/api/workspaces/{workspace_id}"
    r.add_get(f"{base}/insights/trends", trends)
    r.add_get(f"{base}/insights/compare", compare)
    r.add_get(f"{base}/insights/best-time", best_time_route)
    r.add_get(f"{base}/contacts", contacts)
    r.add_get(f"{base}/contacts.csv", contacts_csv)
    r.add_post(f"{base}/audience/preview", preview)
