"""Routes of SPEC 7: the failure table and the sending number's health.

GET /api/failures: the table of domain/failures.py (categories with label, explanation,
what to do and retry; every code with its category), so the page and other clients
show what the statistics' `failures` breakdown means without a copy of the table.
GET /api/account/health: what Meta's account and template webhooks last said about each
sending number, account and template (actors/account.py). Any valid API token reads the
table; the health is the daemon's (numbers and accounts are shared by every workspace),
so a token of one workspace gets 403, as for the relay.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from domain.failures import CATEGORIES, CODES
from domain.timefmt import iso_time
from web.common import require_every_workspace
from web.errors import json_response
from web.keys import RUNTIME


def failure_table() -> dict[str, Any]:
    return {
        "categories": [{"category": c.name, "label": c.label, "explanation": c.explanation,
                        "action": c.action, "retry": c.retry, "retryable": c.retryable,
                        "pauses_campaign": c.pauses} for c in CATEGORIES],
        "codes": [{"code": c.code, "family": c.family, "title": c.title, "label": c.label,
                   "category": c.category} for c in CODES],
    }


TABLE = failure_table()


async def failures(request: web.Request) -> web.Response:
    return json_response({"failures": TABLE})


async def account_health(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    require_every_workspace(request, "the sending numbers' health is the daemon's: it needs "
                            "a token for every workspace")
    doc = await rt.account.health()
    for group in doc.values():
        for item in group:
            item["at"] = iso_time(item.get("at"))
    return json_response({"health": doc})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/failures", failures)
    app.router.add_get("/api/account/health", account_health)
