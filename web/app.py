"""The aiohttp application: routes, middlewares, and the runtime's lifecycle.

Shutdown order (SPEC 3.6) falls out of aiohttp's own: the sites stop accepting, then
`on_shutdown` closes WebSockets, then the cleanup context stops the runtime (final
checkpoint, actors, database).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.web_urldispatcher import MatchInfoError, ResourceRoute, UrlMappingMatchInfo
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actors.runtime import Runtime
from core.config import Config
from web import (
    api,
    cluster,
    cluster_push,
    export,
    failures,
    insights,
    openapi,
    page,
    passthrough,
    pusher,
    relay,
    sending,
    suppressions,
    webhooks,
)
from web.auth import Guard
from web.common import PRINCIPAL
from web.errors import ApiError, error_answer, json_response
from web.keys import GUARD, RECOVERY, RUNTIME
from web.webhooks import ANSWERS_ERRORS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC_PREFIXES = ("/webhooks/", "/healthz", "/readyz", "/metrics")
NODE_API = re.compile(r"^/n/[^/]*/api/")  # /n/{node}/api/... (web/cluster.py)
# What needs the recovered state (campaigns, actors): answered 503 `starting` until then.
# Webhooks are committed from the start (`Runtime.start_core`); the page's files load.
NEEDS_STATE = ("/api/", "/n/", "/app/", "/broadcasting/")
STARTING_RETRY_AFTER = "1"


def _guarded(handler: Handler, runtime: Runtime, guard: Guard) -> Handler:
    """A route's handler with what every route but the webhooks needs: bearer tokens for
    /api (SPEC 3.2), the 503 `starting` while the state is recovered after a start (only
    webhooks and the health routes answer then), and any refusal it raises answered as
    JSON (web/errors.py). Wrapped once per route instead of an application middleware:
    with any middleware, aiohttp runs every request through it AND a second layer of its
    own (`_fix_request_current_app`), two coroutines per webhook request for nothing."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            path = request.path
            if not runtime.ready and path.startswith(NEEDS_STATE) and \
                    "/webhooks/" not in path:
                raise ApiError(503, "starting", "campaignd is loading its campaigns after a "
                               "restart; webhooks are already taken", headers={
                                   "Retry-After": STARTING_RETRY_AFTER})
            if (path.startswith("/api/") and path != "/api/openapi.json") or \
                    NODE_API.match(path):
                request[PRINCIPAL] = guard.api_principal(request)
            response = await handler(request)
            if path.startswith("/static/"):  # the page's files: revalidated each load
                response.headers.setdefault("Cache-Control", "no-cache")
            return response
        except Exception as exc:
            return error_answer(request, exc)

    guarded.__name__ = getattr(handler, "__name__", "guarded")
    return guarded


class _JsonMatchError(MatchInfoError):
    """No route for the path or method: answered 404 / 405 as JSON like any refusal."""

    @property
    def handler(self) -> Handler:
        return self._answer

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        return error_answer(request, self.http_exception)


def guard_routes(app: web.Application, runtime: Runtime) -> None:
    """Wrap every route's handler (`_guarded`) but the webhooks', which answer their own
    refusals (web/webhooks.py: the hot path, no layer around it), and answer unmatched
    paths as JSON. Called once all routes are added."""
    guard = app[GUARD]
    for route in app.router.routes():
        handler = route.handler
        if getattr(handler, ANSWERS_ERRORS, False) or not isinstance(route, ResourceRoute):
            continue
        route._handler = _guarded(handler, runtime, guard)
    resolve = app.router.resolve

    async def resolve_json(request: web.Request) -> UrlMappingMatchInfo:
        found = await resolve(request)
        if isinstance(found, MatchInfoError):
            return _JsonMatchError(found.http_exception)
        return found

    app.router.resolve = resolve_json  # type: ignore[method-assign]


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    problems = []
    if not rt.ready:
        problems.append("starting or stopping")
    if rt.store.writer is None:
        problems.append("the database is not open")
    elif failing := rt.store.failing():
        problems.append(f"storage is failing: {failing}")
    if rt.ingest is None or not rt.ingest.is_alive():
        problems.append("the ingest actor is not running")
    if problems:
        return json_response({"status": "not ready", "problems": problems}, status=503)
    return json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = generate_latest(rt.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(config: Config, runtime: Runtime | None = None,
             listen_early: bool = False) -> web.Application:
    """`listen_early` (campaignd serve): the app is set up once webhooks can be committed,
    and the state is recovered behind it (`RECOVERY`, awaited by daemon/serve.py), so a
    restart with a long journal does not refuse the gateways' webhooks meanwhile."""
    rt = runtime or Runtime(config)
    app = web.Application(
        client_max_size=config["server.max_body_bytes"],
    )
    app[RUNTIME] = rt
    app[GUARD] = Guard(config)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        if not listen_early:
            await rt.start()
            yield
            await rt.stop()
            return
        await rt.start_core()
        app[RECOVERY] = recovery = asyncio.create_task(rt.recover(), name="recover")
        yield
        if not recovery.done():  # stopped while recovering: the journal keeps it all
            recovery.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await recovery
        await rt.stop()

    app.cleanup_ctx.append(lifecycle)
    webhooks.add_routes(app)
    api.add_routes(app)
    failures.add_routes(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    pusher.setup(app, rt)  # the WebSocket, /broadcasting/auth, the broadcaster actor
    if config["cluster.node"]:
        cluster_push.setup(app, rt)  # live push across nodes over Redis (docs/cluster.md)
    page.setup(app)
    export.add_routes(app)
    openapi.add_routes(app)
    sending.add_routes(app)
    relay.add_routes(app)
    passthrough.add_routes(app)
    cluster.add_routes(app)  # node paths and the list across nodes (docs/cluster.md)
    suppressions.add_routes(app)
    insights.add_routes(app)
    guard_routes(app, rt)  # last: every route is added
    return app
