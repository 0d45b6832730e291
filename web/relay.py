"""GET /api/relay: how the relay to the app behind campaignd is doing (actors/relay.py).

For the operator and the page's relay indicator: per relaying source, the backlog, the
age of its oldest request, what was forwarded, the failures and the last error. The
relay is the daemon's, not a workspace's: tokens of every workspace ("*") only.
"""

from __future__ import annotations

from aiohttp import web

from web.common import principal_of
from web.errors import ApiError, json_response
from web.keys import RUNTIME


async def relay_status(request: web.Request) -> web.Response:
    if principal_of(request).workspace is not None:
        raise ApiError(403, "forbidden", "the relay's status is shown to tokens of every "
                       "workspace (workspace = \"*\") only")
    return json_response({"relay": request.app[RUNTIME].relay.status()})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/relay", relay_status)
