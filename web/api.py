"""The JSON API of SPEC 3.2: campaigns, message registration, rows, timeline.

Handlers validate everything before anything is stored (4xx naming the field), then
talk to the store on the loop and to actors only with `tell` or a `Reply` future.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from actors.messages import GetTimeline, RegisterMessages
from actors.runtime import Runtime
from domain.engagement import ENGAGEMENT_FILTERS, RowEngagement, row_fields
from domain.failures import CATEGORY_NAMES, Failure, clean_code, from_text, lookup, short
from domain.records import CampaignInfo
from domain.skips import SKIPPED, Skip, row_status
from domain.status import LEVEL_NAMES, STATUS_FILTERS, Level, class_name, parse_status_name
from domain.timefmt import iso_time
from store import attempts as attempt_store
from store.campaigns import CampaignExists, MessageConflict, NewMessage
from web import sending
from web.common import (
    UUID_RE,
    check_node,
    cluster_uuid,
    int_field,
    live_statistics,
    present_campaign,
    principal_of,
    query_cursor,
    query_int,
    read_json_object,
    str_field,
    visible_campaign,
)
from web.errors import ApiError, json_response
from web.keys import RUNTIME
from web.sources import digits

MAX_MESSAGES_PER_REQUEST = 10_000
# The rows API's `status` filter: the cards' classes, and who replied / opted out.
ROW_FILTERS = (*STATUS_FILTERS, *ENGAGEMENT_FILTERS, SKIPPED)
CAMPAIGN_STATUSES = ("tracking", "pending", "scheduled", "processing", "paused", "completed",
                     "cancelled", "failed")


# --- helpers ---------------------------------------------------------------------------


def present_attempt(attempt: dict[str, Any]) -> dict[str, Any]:
    """An earlier attempt (SPEC 9), as the rows API and the page show it."""
    return {**attempt, "started_at": iso_time(attempt["started_at"]),
            "ended_at": iso_time(attempt["ended_at"])}


def present_row(row: dict[str, Any], engagement: RowEngagement | None = None,
                earlier: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
    return {
        "row": row["row"],
        "message_id": row["message_id"],  # bare: the form ACKs are matched by
        "raw_message_id": row["raw_id"] or row["message_id"],  # as registered
        "recipient": row["recipient"],
        "contact_id": row["contact_id"],
        # `skipped` when the sender skipped it and nothing was sent or failed (SPEC 9)
        "status": row_status(class_name(row["level"], bool(row["failed"])),
                             row.get("skip_reason")),
        "level": LEVEL_NAMES[row["level"]],
        "failed": bool(row["failed"]),
        "failure_reason": row["reason"],
        "failure": present_failure(row),
        "send_state": row.get("send_state"),
        # SPEC 9: the latest attempt's number (null: never sent by campaignd), when it
        # started, a transient error it met, and every earlier attempt, oldest first.
        "attempt": row.get("attempts") or None,
        "attempt_started_at": iso_time(row.get("attempt_at")),
        "attempt_note": row.get("note"),
        "previous_attempts": [present_attempt(a) for a in earlier or ()],
        # why the sender did not send it: {reason, detail, source, at} (SPEC 9)
        "skip": present_skip(row),
        "timestamps": {
            "queued": iso_time(row["ts_queued"]),
            "pending": iso_time(row["ts_pending"]),
            "sent": iso_time(row["ts_sent"]),
            "delivered": iso_time(row["ts_delivered"]),
            "read": iso_time(row["ts_read"]),
            "played": iso_time(row["ts_played"]),
            "failed": iso_time(row["ts_failed"]),
        },
        # replied_at, reply_count, button, opted_out_at, reply_text (SPEC 6.3)
        **row_fields(engagement),
    }


def present_skip(row: dict[str, Any]) -> dict[str, Any] | None:
    if not row.get("skip_reason"):
        return None
    return Skip(row.get("skipped_at") or 0.0, row["skip_reason"], row.get("skip_detail"),
                row.get("skip_source")).as_dict()


def present_failure(row: dict[str, Any]) -> dict[str, Any] | None:
    """The kept failure as fields, with its category from domain/failures.py (read from
    the code now, so a row stored under an older table shows today's category)."""
    code, title = row.get("failure_code"), row.get("failure_title")
    if not (code or title or row.get("failure_details")):
        if not row["reason"]:
            return None
        derived = from_text(row["reason"], "")
        code, title = derived.code, derived.title
    entry = lookup(code)
    return {"source": row.get("failure_source"), "code": code, "title": title,
            "details": row.get("failure_details"), "category": entry.category,
            "label": entry.label, "at": iso_time(row.get("failure_at") or row["ts_failed"])}


# --- routes ----------------------------------------------------------------------------


SENDING_FIELDS = ("recipients", "message", "gateway", "rate", "start", "skip_invalid",
                  "template", "send_at", "window", "audience", "skip_unreachable")


async def create_campaign(request: web.Request) -> web.Response:
    rt: Runtime = request.app[RUNTIME]
    doc = await read_json_object(request)
    workspace_id = int_field(doc.get("workspace_id"), "workspace_id", minimum=1)
    name = str_field(doc.get("name"), "name")
    uuid = doc.get("uuid")
    if uuid is not None and (not isinstance(uuid, str) or not UUID_RE.match(uuid)):
        raise ApiError(422, "invalid_field",
                       "uuid must be 1-64 characters of letters, digits, '-' or '_'", "uuid")
    if not principal_of(request).sees(workspace_id):
        raise ApiError(403, "forbidden", "this token may not create campaigns in workspace "
                       f"{workspace_id}", "workspace_id")
    uuid = cluster_uuid(rt, uuid)  # on a cluster node: starts with the node's name
    # campaignd sends it (web/sending.py). Any sending option counts: a `gateway` or a
    # `rate` without recipients is a mistake to report, not something to drop silently.
    if any(field in doc for field in SENDING_FIELDS):

        return await sending.create_sending_campaign(request, doc, workspace_id, name, uuid)
    check_node(request)  # /n/{node}/api/campaigns: only on that node, once it is valid
    try:
        campaign = await rt.campaigns.create(workspace_id, name, uuid)
    except CampaignExists:
        raise ApiError(409, "campaign_exists", f"a campaign with uuid {uuid!r} exists",
                       "uuid") from None
    rt.campaign_created(
        CampaignInfo(campaign["no"], campaign["uuid"], workspace_id, campaign["name"]))
    return json_response({"campaign": present_campaign(campaign, None)}, status=201)


def list_query(request: web.Request) -> tuple[int | None, str | None, int, bool]:
    """The list's filters: (workspace_id, status, limit, nothing_visible)."""
    principal = principal_of(request)
    workspace_id = None
    if "workspace_id" in request.query:
        raw = request.query["workspace_id"]
        if not digits(raw):
            raise ApiError(400, "invalid_query", "workspace_id must be an integer",
                           "workspace_id")
        workspace_id = int(raw)
    nothing = False
    if principal.workspace is not None:
        nothing = workspace_id is not None and workspace_id != principal.workspace
        workspace_id = principal.workspace
    status = request.query.get("status")
    if status is not None and status not in CAMPAIGN_STATUSES:
        raise ApiError(400, "invalid_query",
                       f"status must be one of {', '.join(CAMPAIGN_STATUSES)}", "status")
    limit = query_int(request, "limit", 50, 1, 500)
    return workspace_id, status, limit, nothing


async def campaign_page(rt: Runtime, workspace_id: int | None, status: str | None,
                        limit: int, after: int | None
                        ) -> tuple[list[dict[str, Any]], str | None]:
    """One page of this node's campaigns, newest first, and the cursor of the next."""
    # One row more than asked says whether a next page exists: the last page never
    # hands out a cursor that leads to an empty page.
    rows = await rt.campaigns.list(workspace_id, status, after, limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    items = [present_campaign(r, rt.board.get(r["no"]), rt.alerts.alerts_of(r["no"]))
             for r in rows]
    return items, (str(rows[-1]["no"]) if more else None)


async def list_campaigns(request: web.Request) -> web.Response:
    rt: Runtime = request.app[RUNTIME]
    workspace_id, status, limit, nothing = list_query(request)
    after = query_cursor(request)
    check_node(request)
    if nothing:
        return json_response({"campaigns": [], "next_cursor": None})
    items, next_cursor = await campaign_page(rt, workspace_id, status, limit, after)
    return json_response({"campaigns": items, "next_cursor": next_cursor})


async def get_campaign(request: web.Request) -> web.Response:
    rt: Runtime = request.app[RUNTIME]
    campaign = await visible_campaign(request)
    stats = await live_statistics(rt, campaign["no"])
    return json_response({"campaign": present_campaign(campaign, stats,
                                                       rt.alerts.alerts_of(campaign["no"]))})


def parse_registrations(doc: dict[str, Any]) -> list[NewMessage]:
    """The validated messages of a registration body; `doc["messages"]` is emptied
    (None for each item) as they are made."""
    from domain.status import bare_message_id

    messages = doc.get("messages")
    if not isinstance(messages, list):
        raise ApiError(422, "invalid_field", "messages must be an array", "messages")
    if not messages:
        raise ApiError(422, "invalid_field", "messages is empty", "messages")
    if len(messages) > MAX_MESSAGES_PER_REQUEST:
        raise ApiError(413, "too_many_messages",
                       f"at most {MAX_MESSAGES_PER_REQUEST} messages per request", "messages")
    out = []
    for i, item in enumerate(messages):
        # The item's dict is let go of as its message is made (regmem13, issue 20): the
        # request's objects then need fewer of pymalloc's arenas, which the few objects
        # made among them and kept pin for good (docs/BENCHMARKS.md "Wave 13: regmem13")
        messages[i] = None
        at = f"messages[{i}]"
        if not isinstance(item, dict):
            raise ApiError(422, "invalid_field", f"{at} must be an object", at)
        recipient = str_field(item.get("recipient"), f"{at}.recipient", 64)
        raw_id = str_field(item.get("message_id"), f"{at}.message_id", 256)
        contact = item.get("contact_id")
        if contact is not None:
            if isinstance(contact, bool) or not isinstance(contact, (str, int)):
                raise ApiError(422, "invalid_field", f"{at}.contact_id must be a string or an"
                               " integer", f"{at}.contact_id")
            contact = str(contact)[:64]
        level, failed = Level.PENDING, False  # registered with a gateway id
        if item.get("status") is not None:
            status = item["status"]
            parsed = parse_status_name(status) if isinstance(status, str) else None
            if parsed is None:
                raise ApiError(422, "invalid_field", f"{at}.status must be one of "
                               + ", ".join(STATUS_FILTERS), f"{at}.status")
            # It has a gateway id, so the gateway accepted it: at least pending.
            level, failed = max(parsed[0], Level.PENDING), parsed[1]
        error = item.get("error")
        if error is not None and not isinstance(error, (str, dict)):
            raise ApiError(422, "invalid_field", f"{at}.error must be a string or an object",
                           f"{at}.error")
        reason = failure = None
        if error:
            failed = True
            reason = error if isinstance(error, str) else str(
                error.get("message") or error.get("title") or error)
            reason = reason[:500]
            failure = registered_failure(error)
        elif failed:
            failure = Failure("api", None, None, None)
        assert raw_id is not None and recipient is not None
        out.append(NewMessage(recipient, bare_message_id(raw_id), raw_id, contact, level,
                              failed, reason, failure))
    return out


def registered_failure(error: str | dict[str, Any]) -> Failure:
    """A registration's `error`: a text ("131049: ...") or {code, title|message, details}."""
    if isinstance(error, str):
        parsed = from_text(error, "api")
        return parsed
    data = error.get("error_data")
    details = error.get("details") or (data.get("details") if isinstance(data, dict) else None)
    return Failure("api", clean_code(error.get("code")),
                   short(error.get("title") or error.get("message")), short(details))


async def register_messages(request: web.Request) -> web.Response:
    rt: Runtime = request.app[RUNTIME]
    campaign = await visible_campaign(request)
    items = parse_registrations(await read_json_object(request))
    try:
        registered, duplicates = await rt.campaigns.register(campaign["no"], items)
    except MessageConflict as exc:
        raise ApiError(409, "message_conflict", str(exc), f"messages[{exc.index}].message_id"
                       ) from None
    if registered:
        rt.register(RegisterMessages(campaign["no"], tuple(registered)))
    return json_response({"registered": len(registered), "duplicates": duplicates},
                         status=201 if registered else 200)


async def list_messages(request: web.Request) -> web.Response:
    rt: Runtime = request.app[RUNTIME]
    campaign = await visible_campaign(request)
    status = request.query.get("status")
    if status is not None and status not in ROW_FILTERS:
        raise ApiError(400, "invalid_query",
                       f"status must be one of {', '.join(ROW_FILTERS)}", "status")
    category = request.query.get("category")
    if category is not None:
        if category not in CATEGORY_NAMES:
            raise ApiError(400, "invalid_query",
                           f"category must be one of {', '.join(CATEGORY_NAMES)}", "category")
        if status not in (None, "failed"):
            raise ApiError(400, "invalid_query", "category filters failed messages: use it "
                           "with status=failed or alone", "category")
    search = request.query.get("search") or None
    if search is not None and len(search) > 100:
        raise ApiError(400, "invalid_query", "search is longer than 100 characters", "search")
    limit = query_int(request, "limit", 50, 1, 1000)
    after = query_cursor(request)
    await rt.flush_rows()
    rows = await rt.campaigns.rows(campaign["no"], status, search, after, limit + 1, category)
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = str(rows[-1]["row"]) if more else None
    numbers = [r["row"] for r in rows]
    engagement = await rt.engagement.row_engagement(campaign["no"], numbers)
    earlier = await attempt_store.history(rt.store, campaign["no"], numbers)
    return json_response({"messages": [present_row(r, engagement.get(r["row"]),
                                                   earlier.get(r["row"])) for r in rows],
                          "next_cursor": next_cursor})


async def timeline(request: web.Request) -> web.Response:
    rt: Runtime = request.app[RUNTIME]
    campaign = await visible_campaign(request)
    points = query_int(request, "points", 120, 2, 1000)
    try:
        data = await rt.ask(lambda reply: GetTimeline(campaign["no"], points, reply))
    except TimeoutError:
        raise ApiError(503, "busy", "the campaign did not answer in time",
                       headers={"Retry-After": "1"}) from None
    data["points"] = [{**p, "t": iso_time(p["t"])} for p in data["points"]]
    return json_response({"timeline": data})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/campaigns", create_campaign)
    r.add_get("/api/campaigns", list_campaigns)
    r.add_get("/api/campaigns/{uuid}", get_campaign)
    r.add_post("/api/campaigns/{uuid}/messages", register_messages)
    r.add_get("/api/campaigns/{uuid}/messages", list_messages)
    r.add_get("/api/campaigns/{uuid}/timeline", timeline)
