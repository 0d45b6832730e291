"""The suppression list API (SPEC 6.4): `GET|POST|DELETE /api/workspaces/{id}/suppressions`.

Numbers that must not be messaged in a workspace, each with its reason, source and
time: stops arrive from recipients (keywords, buttons, Cloud `user_preferences`, failure
131050) and operators add or remove numbers here, as JSON or as a CSV file. A change is
an event like any other: it is journaled before the 2xx (so it survives kill -9) and
applied by the ingest actor, and the list is the latest fact per number
(domain/suppression.py). Reads go through the ingest actor, so they see every change
acknowledged before them. Token rules as the rest of the API: a token for one workspace
sees and changes only that workspace's list.
"""

from __future__ import annotations

import csv
import io
import time
import uuid as uuidlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from actors.messages import GetSuppressions
from actors.runtime import Runtime
from domain.inbound import MANUAL, START, STOP, InboundEvent
from domain.phones import e164_digits
from domain.suppression import Entry
from domain.timefmt import iso_time
from web.common import principal_of, query_int, read_json_object
from web.csvstream import stream_csv
from web.errors import ApiError, json_response
from web.keys import RUNTIME
from web.sources import digits

MAX_NUMBERS = 100_000  # per request (a CSV import of a whole list)
PAGE = 5000
CSV_HEADER = ("number", "reason", "source", "suppressed_at")


def workspace_of(request: web.Request) -> int:
    raw = request.match_info["workspace_id"]
    if not digits(raw):
        raise ApiError(404, "workspace_not_found", f"no workspace {raw!r}")
    workspace = int(raw)
    if not principal_of(request).sees(workspace):
        raise ApiError(404, "workspace_not_found", f"no workspace {raw!r}")
    return workspace


def present(entry: Entry) -> dict[str, Any]:
    return {"number": entry.number, "reason": entry.reason, "source": entry.source,
            "suppressed_at": iso_time(entry.at)}


async def _page(rt: Runtime, workspace: int, after: str | None, limit: int
                ) -> tuple[int, list[Entry]]:
    try:
        return await rt.ask(lambda reply: GetSuppressions(workspace, after, limit, reply))
    except TimeoutError:
        raise ApiError(503, "busy", "the suppression list did not answer in time; retry",
                       headers={"Retry-After": "1"}) from None


async def list_suppressions(request: web.Request) -> web.StreamResponse:
    rt: Runtime = request.app[RUNTIME]
    workspace = workspace_of(request)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ApiError(400, "invalid_query", "format must be json or csv", "format")
    limit = query_int(request, "limit", 100, 1, PAGE)
    after = request.query.get("cursor") or None
    if after is not None and not digits(after):
        raise ApiError(400, "invalid_query", "cursor is not valid", "cursor")
    if fmt == "csv":
        return await _export(request, rt, workspace)
    total, entries = await _page(rt, workspace, after, limit)
    next_cursor = entries[-1].number if len(entries) == limit else None
    return json_response({"workspace_id": workspace, "total": total,
                          "suppressions": [present(e) for e in entries],
                          "next_cursor": next_cursor})


async def _export(request: web.Request, rt: Runtime, workspace: int) -> web.StreamResponse:
    async def pages() -> AsyncIterator[list[tuple[str, ...]]]:
        after = None
        while True:
            _, entries = await _page(rt, workspace, after, PAGE)
            yield [(e.number, _cell(e.reason), e.source, iso_time(e.at)) for e in entries]
            if len(entries) < PAGE:
                return
            after = entries[-1].number

    return await stream_csv(request, f"suppressions-{workspace}.csv", CSV_HEADER, pages())


def _cell(value: str | None) -> str:
    """Never a formula in a spreadsheet (CSV injection)."""
    if not value:
        return ""
    return "'" + value if value[0] in "=+-@\t\r" else value


def _number(value: Any, field: str) -> str:
    number = e164_digits(value) if isinstance(value, str) else None
    if number is None:
        raise ApiError(422, "invalid_field", f"{field} must be a phone number (E.164, e.g. "
                       "+6281234567890)", field)
    return number


def _reason(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise ApiError(422, "invalid_field", f"{field} must be text of at most 200 characters",
                       field)
    return value.strip() or None


async def _items(request: web.Request) -> tuple[list[tuple[str, str | None]], str]:
    """(number, reason) pairs from a JSON body or a CSV file, and the source name."""
    if request.content_type in ("text/csv", "application/csv"):
        return _csv_items(await request.read()), "import"
    doc = await read_json_object(request)
    default = _reason(doc.get("reason"), "reason")
    items: list[tuple[str, str | None]] = []
    if "numbers" in doc:
        numbers = doc["numbers"]
        if not isinstance(numbers, list) or not numbers:
            raise ApiError(422, "invalid_field", "numbers must be a non-empty array", "numbers")
        items = [(_number(n, f"numbers[{i}]"), default) for i, n in enumerate(numbers)]
    elif "number" in doc:
        items = [(_number(doc["number"], "number"), default)]
    else:
        raise ApiError(422, "invalid_field", "give number, numbers or a CSV file", "numbers")
    if len(items) > MAX_NUMBERS:
        raise ApiError(413, "too_many_numbers", f"at most {MAX_NUMBERS} numbers per request",
                       "numbers")
    return items, "api"


def _csv_items(body: bytes) -> list[tuple[str, str | None]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_csv", "the CSV file is not UTF-8") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ApiError(400, "invalid_csv", f"the CSV file is not readable ({exc})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if rows and e164_digits(rows[0][0]) is None and rows[0][0].strip().lower() in (
            "number", "phone", "recipient", "nomor", "msisdn", "wa_id"):
        header = [c.strip().lower() for c in rows[0]]
        rows = rows[1:]
        reason_at = header.index("reason") if "reason" in header else None
    else:
        reason_at = 1
    if not rows:
        raise ApiError(422, "invalid_csv", "the CSV file has no numbers")
    if len(rows) > MAX_NUMBERS:
        raise ApiError(413, "too_many_numbers", f"at most {MAX_NUMBERS} numbers per request")
    items = []
    for line, row in enumerate(rows, 1):
        number = _number(row[0].strip(), f"line {line}")
        reason = row[reason_at] if reason_at is not None and len(row) > reason_at else None
        items.append((number, _reason(reason, f"line {line}.reason")))
    return items


async def add_suppressions(request: web.Request) -> web.Response:
    rt: Runtime = request.app[RUNTIME]
    workspace = workspace_of(request)
    items, source = await _items(request)
    now = time.time()
    batch = uuidlib.uuid4().hex[:12]
    events = [InboundEvent(f"{source}:{batch}:{i}", STOP, MANUAL, now, number, workspace,
                           reason=reason or ("added by an operator" if source == "api"
                                             else "imported from a CSV file"))
              for i, (number, reason) in enumerate(dict(items).items())]
    await rt.journal.append(source, events)  # durable before the answer (SPEC 3.1)
    return json_response({"workspace_id": workspace, "added": len(events)}, status=201)


async def remove_suppressions(request: web.Request) -> web.Response:
    rt: Runtime = request.app[RUNTIME]
    workspace = workspace_of(request)
    if "number" in request.query:
        if request.can_read_body:
            raise ApiError(422, "invalid_field", "give ?number or a body, not both", "number")
        numbers = [_number(request.query["number"], "number")]
    else:
        items, _ = await _items(request)
        numbers = [n for n, _ in items]
    now = time.time()
    batch = uuidlib.uuid4().hex[:12]
    listed = [n for n in dict.fromkeys(numbers) if rt.suppressions.is_suppressed(workspace, n)]
    events = [InboundEvent(f"api:{batch}:{i}", START, MANUAL, now, number, workspace,
                           reason="removed by an operator")
              for i, number in enumerate(listed)]
    if events:
        await rt.journal.append("api", events)
    return json_response({"workspace_id": workspace, "removed": len(events)})


def add_routes(app: web.Application) -> None:
    path = "/api/workspaces/{workspace_id}/suppressions"
    app.router.add_get(path, list_suppressions)
    app.router.add_post(path, add_suppressions)
    app.router.add_delete(path, remove_suppressions)
