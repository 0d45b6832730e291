"""The embedded campaign page (SPEC 3.5): `GET /`, its static files, and its config.

The page is plain files under web/static/ (no build step, no CDN), so it works offline
and is served as it is in the repository. `GET /page-config.json` tells it how to reach
the live push (the Pusher app key) and whether the API wants a bearer token; it never
reveals anything a token would protect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from actors.runtime import Runtime
from web.errors import json_response
from web.keys import GUARD, RUNTIME

STATIC = Path(__file__).resolve().parent / "static"
# The page is small and changes with the daemon: let the browser revalidate every time.
NO_CACHE = {"Cache-Control": "no-cache"}
GATEWAYS = ("simulator", "http", "waha", "cloud")


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)


def _gateways(rt: Runtime) -> list[str]:
    """The gateways the form offers: those the sender has configured, when it runs."""
    sending = getattr(rt, "sending", None)
    if sending is None or not hasattr(sending, "check_gateway"):
        return list(GATEWAYS)
    return [name for name in GATEWAYS if sending.check_gateway(name) is None]


async def page_config(request: web.Request) -> web.Response:
    rt: Runtime = request.app[RUNTIME]
    config = rt.config
    guard = request.app[GUARD]
    if guard.tokens.open_:
        guard.api_principal(request)  # an open API is for this machine only: 401 otherwise
    auth_required = not guard.tokens.open_
    workspaces: list[int] = []
    if not auth_required:  # with tokens, which workspaces exist is the API's to tell
        rows = await rt.store.fetchall(
            "SELECT DISTINCT workspace_id FROM campaigns ORDER BY 1 LIMIT 100")
        workspaces = [row[0] for row in rows]
    doc: dict[str, Any] = {
        "app_key": config["pusher.app_key"],
        "ws_path": f"/app/{config['pusher.app_key']}",
        "auth_required": auth_required,
        "auth_endpoint": "/broadcasting/auth",
        "private_channels": not guard.allow_public_channels,
        "activity_timeout": config["pusher.activity_timeout"],
        "workspaces": workspaces,
        "default_workspace": workspaces[0] if workspaces else 1,
        "gateways": _gateways(rt),
        "default_gateway": config.values.get("sender.default_gateway", "simulator"),
        "default_rate": config.values.get("sender.default_rate", 10.0),
        "max_rate": config.values.get("sender.max_rate"),
        "skip_unreachable": config.values.get("sender.skip_unreachable", False),  # SPEC 9
        # A cluster node lists campaigns across nodes and creates them on a chosen node.
        "cluster": ({"node": config["cluster.node"],
                     "nodes": [config["cluster.node"], *config["cluster.peers"]]}
                    if config["cluster.node"] else None),
    }
    return json_response(doc, headers=NO_CACHE)


def setup(app: web.Application) -> None:
    """Add the page's routes (one line in web.app.make_app)."""
    # /static/ answers carry Cache-Control: no-cache (web/app.py `_guarded`: a response
    # hook would run for every webhook answer too)
    app.router.add_get("/", index)
    app.router.add_get("/page-config.json", page_config)
    app.router.add_static("/static/", STATIC, append_version=False)
