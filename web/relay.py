"""The relay to the app behind campaignd (actors/relay.py): `GET /api/relay`, how it is
doing, and `POST /api/relay/{source}/requeue`, send the requests set aside again.

For the operator and the page's relay indicator: per relaying source, the backlog, the
age of its oldest request, what was forwarded, the failures, the last error and the
requests set aside (the app refused them as malformed). The relay is the daemon's, not
a workspace's: tokens of every workspace ("*") only.
"""

from __future__ import annotations

from aiohttp import web

from core.config import SOURCES
from web.common import require_every_workspace
from web.errors import ApiError, json_response
from web.keys import RUNTIME

EVERY_WORKSPACE = "the relay is for tokens of every workspace (workspace = \"*\") only"


async def relay_status(request: web.Request) -> web.Response:
    require_every_workspace(request, EVERY_WORKSPACE)
    return json_response({"relay": request.app[RUNTIME].relay.status()})


async def requeue(request: web.Request) -> web.Response:
    """The source's set-aside requests back at the end of its queue (after the app was
    fixed to take them)."""
    require_every_workspace(request, EVERY_WORKSPACE)
    source = request.match_info["source"]
    if source not in SOURCES:
        raise ApiError(404, "not_found", f"no webhook source {source!r}; one of "
                       f"{', '.join(SOURCES)}", "source")
    moved = await request.app[RUNTIME].relay.requeue(source)
    return json_response({"source": source, "requeued": moved})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/relay", relay_status)
    app.router.add_post("/api/relay/{source}/requeue", requeue)
