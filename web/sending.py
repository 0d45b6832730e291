"""Routes for sending (SPEC 3.4, 9): create with recipients, lifecycle actions, progress.

`create_sending_campaign` is called by web/api.py's create handler when the body has
`recipients` or `message`; the lifecycle routes are
POST /api/campaigns/{uuid}/{start|schedule|pause|resume|cancel|retry-failed|retry-unknown}
(`schedule` takes `{"send_at": ISO 8601 with offset}`).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from actors.messages import RegisterMessages
from actors.sender_service import TRANSITIONS, SendingService, TransitionError
from domain.records import CampaignInfo
from domain.sendwindow import WindowError, parse_window
from domain.status import Level
from domain.timefmt import iso_time
from gateways.recipients import parse_recipients
from store.campaigns import CampaignExists, NewMessage
from web.common import check_node, present_campaign, read_json_object, visible_campaign
from web.errors import ApiError, json_response
from web.insights import audience_of, parse_audience
from web.keys import RUNTIME

MAX_MESSAGE_CHARS = 4096
SEND_AT_PAST = 60.0  # seconds: a send_at this close to now starts at once
SEND_AT_FUTURE = 366 * 86400.0
CREATED_STATISTICS_WAIT = 30.0  # seconds the 201 of a new campaign waits for its figures


def _service(request: web.Request) -> SendingService:
    service = getattr(request.app[RUNTIME], "sending", None)
    if service is None:
        raise ApiError(503, "sending_unavailable", "the sender is not running",
                       headers={"Retry-After": "1"})
    return service


def _options(doc: dict[str, Any], gateway: str) -> dict[str, Any]:
    template = doc.get("template")
    if template is None:
        return {}
    if gateway != "cloud":
        raise ApiError(422, "invalid_field", "template is only for the cloud gateway",
                       "template")
    if not isinstance(template, dict) or not isinstance(template.get("name"), str):
        raise ApiError(422, "invalid_field", "template must be an object with a string 'name'"
                       " (and 'language': {'code': ...}, optional 'components')", "template")
    template = dict(template)
    template.setdefault("language", {"code": "en_US"})
    return {"template": template}


def _refused(message: str, field: str, recipients: dict[str, Any]) -> web.Response:
    """The usual error shape, plus the per-index report the form shows."""
    return json_response({"error": {"code": "invalid_recipients", "message": message,
                                    "field": field, "recipients": recipients}}, status=422)


def parse_send_at(value: Any, field: str = "send_at") -> float:
    """ISO 8601 with an offset ("2026-12-01T08:00:00+07:00" or "...Z") -> epoch seconds."""
    if not isinstance(value, str) or len(value) > 64:
        raise ApiError(422, "invalid_field", f"{field} must be an ISO 8601 date and time with "
                       "an offset, e.g. 2026-12-01T08:00:00+07:00", field)
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ApiError(422, "invalid_field", f"{field} is not an ISO 8601 date and time "
                       "(e.g. 2026-12-01T08:00:00+07:00)", field) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ApiError(422, "invalid_field", f"{field} needs an offset (+07:00 or Z): a time "
                       "without one could mean any time zone", field)
    at = when.timestamp()
    now = time.time()
    if at < now - SEND_AT_PAST:
        raise ApiError(422, "invalid_field", f"{field} is in the past ({iso_time(at)})", field)
    if at > now + SEND_AT_FUTURE:
        raise ApiError(422, "invalid_field", f"{field} is more than a year ahead", field)
    return at


def parse_campaign_window(service: SendingService, doc: dict[str, Any]) -> str | None:
    """The `window` of a create request as stored JSON (None: the [sender] defaults)."""
    if doc.get("window") is None:
        return None
    try:
        window = parse_window(doc["window"], service.window_defaults)
    except WindowError as exc:
        raise ApiError(422, "invalid_field", str(exc), exc.field) from None
    return orjson.dumps(window.as_doc()).decode()


async def create_sending_campaign(request: web.Request, doc: dict[str, Any], workspace_id: int,
                                  name: str, uuid: str | None) -> web.Response:

    rt = request.app[RUNTIME]
    service = _service(request)
    c = rt.config
    gateway = doc.get("gateway", c["sender.default_gateway"])
    if not isinstance(gateway, str) or service.check_gateway(gateway):
        problem = service.check_gateway(gateway) if isinstance(gateway, str) else None
        raise ApiError(422, "invalid_field", problem or "gateway must be a string", "gateway")
    options = _options(doc, gateway)
    message = doc.get("message")
    if message is None and not options:
        raise ApiError(422, "invalid_field", "message is required (the text to send)",
                       "message")
    if message is not None and (not isinstance(message, str) or not message.strip()):
        raise ApiError(422, "invalid_field", "message must be a non-empty string", "message")
    if message is not None and len(message) > MAX_MESSAGE_CHARS:
        raise ApiError(422, "invalid_field",
                       f"message must be at most {MAX_MESSAGE_CHARS} characters", "message")
    rate = doc.get("rate", c["sender.default_rate"])
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (
            0 < rate <= c["sender.max_rate"]):
        raise ApiError(422, "invalid_field", f"rate must be a number of messages per second "
                       f"above 0 and at most {c['sender.max_rate']:g}", "rate")
    start = doc.get("start", False)
    skip_invalid = doc.get("skip_invalid", False)
    # SPEC 9: skip recipients in the unreachable tier at send time (suppressed ones are
    # always skipped); the choice is kept with the campaign, the default from config.
    skip_unreachable = doc.get("skip_unreachable", c["sender.skip_unreachable"])
    for field, value in (("start", start), ("skip_invalid", skip_invalid),
                         ("skip_unreachable", skip_unreachable)):
        if not isinstance(value, bool):
            raise ApiError(422, "invalid_field", f"{field} must be true or false", field)
    send_at = None
    if doc.get("send_at") is not None:
        if start:
            raise ApiError(422, "invalid_field", "send_at schedules the start: leave out "
                           "start (or send start without send_at)", "send_at")
        send_at = parse_send_at(doc["send_at"])
    window = parse_campaign_window(service, doc)
    items = doc.get("recipients")
    if not isinstance(items, list) or not items:
        raise ApiError(422, "invalid_field", "recipients must be a non-empty array of phone "
                       "numbers (or {recipient, contact_id?, variables?} objects)", "recipients")
    if len(items) > c["sender.max_recipients"]:
        raise ApiError(413, "too_many_recipients",
                       f"at most {c['sender.max_recipients']} recipients per campaign",
                       "recipients")
    # 100,000 numbers take ~0.2 s of Python: in a thread, the loop keeps serving
    # webhooks meanwhile (the GIL is handed over every few ms).
    report = await asyncio.get_running_loop().run_in_executor(None, parse_recipients, items)
    if report.invalid and not skip_invalid:
        first = report.invalid[0]
        return _refused(f"{len(report.invalid)} recipient(s) are not valid phone numbers; the "
                        f"first is recipients[{first['index']}] ({first['value']!r}): "
                        f"{first['reason']}. Fix them or send skip_invalid: true",
                        f"recipients[{first['index']}]", report.as_dict())
    if not report.valid:
        return _refused("no valid recipient", "recipients", report.as_dict())
    check_node(request)  # /n/{node}/api/campaigns: only on that node (docs/cluster.md)
    audience = None  # analytics (SPEC 8): filter by engagement tier, before anything is stored
    if doc.get("audience") is not None:
        report.valid, audience = await audience_of(rt, workspace_id, parse_audience(
            doc["audience"]), report.valid)
        if not report.valid:
            return json_response({"error": {
                "code": "empty_audience", "field": "audience", "message":
                "the audience rules removed every recipient", "audience": audience}}, status=422)
    if skip_unreachable:
        options["skip_unreachable"] = True
    new = [NewMessage(r.number, None, None, r.contact_id, Level.QUEUED, False, None)
           for r in report.valid]
    variables = [orjson.dumps(r.variables).decode() if r.variables else None
                 for r in report.valid]
    try:
        campaign, registered = await rt.campaigns.create_sending(
            workspace_id, name, uuid, message or "", gateway, float(rate), window, new,
            variables, orjson.dumps(options).decode() if options else None)
    except CampaignExists:
        raise ApiError(409, "campaign_exists", f"a campaign with uuid {uuid!r} exists",
                       "uuid") from None
    no = campaign["no"]
    rt.campaign_created(CampaignInfo(no, campaign["uuid"], workspace_id, campaign["name"]))
    rt.register(RegisterMessages(no, tuple(registered)))
    if start:
        campaign, _ = await service.transition(campaign["uuid"], "start")
    elif send_at is not None:
        campaign, _ = await service.transition(campaign["uuid"], "schedule", send_at=send_at)
    # The new campaign's actor applies its registrations first (100,000 recipients take
    # seconds on a loaded machine): the 201 waits for its exact figures, not 5 s only.
    stats = await service.statistics(no, timeout=CREATED_STATISTICS_WAIT)
    body = {"campaign": present_campaign(campaign, stats), "recipients": report.as_dict()}
    if audience is not None:
        body["audience"] = audience
    return json_response(body, status=201)


async def _campaign(request: web.Request) -> dict[str, Any]:

    return await visible_campaign(request)


async def lifecycle(request: web.Request) -> web.Response:
    action = request.match_info["action"]
    if action not in TRANSITIONS or action == "schedule":
        raise ApiError(404, "not_found", f"unknown action {action!r}; one of "
                       + ", ".join(TRANSITIONS))
    return await _act(request, action, None)


async def schedule(request: web.Request) -> web.Response:
    """POST /api/campaigns/{uuid}/schedule {"send_at": ISO 8601 with offset}."""
    campaign = await _campaign(request)
    send_at = parse_send_at((await read_json_object(request)).get("send_at"))
    return await _act(request, "schedule", send_at, campaign)


async def _act(request: web.Request, action: str, send_at: float | None,
               campaign: dict[str, Any] | None = None) -> web.Response:
    campaign = campaign or await _campaign(request)
    service = _service(request)
    try:
        campaign, affected = await service.transition(campaign["uuid"], action, send_at)
    except TransitionError as exc:
        raise ApiError(409, exc.code, str(exc), "status") from None
    stats = await service.statistics(campaign["no"])
    body: dict[str, Any] = {"campaign": present_campaign(
        campaign, stats, request.app[RUNTIME].alerts.alerts_of(campaign["no"]))}
    if action.startswith("retry-"):
        body["requeued"] = affected
    return json_response(body)


async def sending(request: web.Request) -> web.Response:
    """Send progress and the recipients whose outcome is unknown (after a crash)."""
    rt = request.app[RUNTIME]
    campaign = await _campaign(request)
    service = _service(request)
    no = campaign["no"]
    counts = await rt.campaigns.send_state_counts(no)
    raw_options, reason = await rt.campaigns.send_options(no)
    unknown = await rt.campaigns.rows_in_state(no, "unknown", 1000)
    progress = service.progress_of(no)
    if no not in service.runs:  # not sending now (pending, paused after a restart, ...)
        progress["total_remaining_count"] = counts.get("queued", 0)
    window = service.window_of(campaign)
    now = time.time()
    is_open, changes = window.state(now)
    account = service.accounts.get(campaign["gateway"] or "")
    return json_response({"sending": {
        "status": campaign["status"], "status_reason": reason,
        "gateway": campaign["gateway"], "rate": campaign["rate"],
        "send_at": iso_time(campaign["send_at"]), "start_note": campaign["start_note"],
        "window": {**window.as_doc(), "always_open": window.always_open, "open": is_open,
                   "changes_at": iso_time(changes) if changes else None,
                   "opens": None if is_open or not changes else window.label(changes, now)},
        "account": account.snapshot() if account is not None else None,
        "send_states": {k: v for k, v in counts.items() if k != "none"},
        # SPEC 9: unreachable recipients are skipped too (suppressed ones always are)
        "skip_unreachable": bool(orjson.loads(raw_options).get("skip_unreachable"))
        if raw_options else False,
        "progress": progress,
        "unknown": unknown,
    }})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/campaigns/{uuid}/sending", sending)
    app.router.add_post("/api/campaigns/{uuid}/schedule", schedule)  # before {action}
    app.router.add_post(r"/api/campaigns/{uuid}/{action:[a-z-]+}", lifecycle)
