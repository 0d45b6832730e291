"""`/laravel/...`: campaignd standing where the seed's whatsapp-service expects Laravel.

The service has ONE setting for where Laravel is, `LARAVEL_URL`, a base URL it appends
paths to: its webhooks go to `/api/whatsapp/webhooks/webjs`, but it also calls Laravel
for answers it needs (`GET /api/whatsapp/accounts/active` to restore sessions at start,
`/api/whatsapp/chats/sync`, `/api/whatsapp/sessions/{id}/mark-disconnected`, the
cleanup routes). So with `LARAVEL_URL=http://campaignd:8080/laravel`:

- `POST /laravel/api/whatsapp/webhooks/webjs` is the webjs webhook itself (checked,
  journaled, relayed to `webhooks.webjs.forward_to`, durable, in order);
- every other `/laravel/api/whatsapp/...` call is passed through to the Laravel app at
  once and its answer returned as it is (no outbox: the service waits for the answer
  and handles failures itself). Laravel's own checks apply to them unchanged.

The Laravel app's base URL is `webhooks.webjs.forward_to` without its
`/api/whatsapp/webhooks/webjs` end, so there is one setting on our side too.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from yarl import URL

from actors.relay import NOT_RELAYED
from web.errors import ApiError
from web.keys import RUNTIME, WEBHOOK_ROUTES
from web.webhooks import TAKER, make_handler

PREFIX = "/laravel"
SEED_WEBHOOK = "/api/whatsapp/webhooks/webjs"
PASSED = "/api/whatsapp/"  # the service's calls; nothing else of the app is reachable
# Not copied back from the app's answer: aiohttp sets them for the body it sends.
NOT_RETURNED = NOT_RELAYED | {"content-type", "server", "date"}


def laravel_base(forward_to: str) -> str | None:
    """The Laravel app's base URL, from the webjs relay's target."""
    if forward_to.endswith(SEED_WEBHOOK) and len(forward_to) > len(SEED_WEBHOOK):
        return forward_to[: -len(SEED_WEBHOOK)]
    return None


async def passthrough(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    base = laravel_base(rt.config["webhooks.webjs.forward_to"])
    if base is None:
        raise ApiError(404, "passthrough_off", "nothing to pass this call to: set "
                       f"webhooks.webjs.forward_to to the Laravel app's ...{SEED_WEBHOOK}")
    tail = request.raw_path[len(PREFIX):]  # as sent: path and query, still encoded
    path = tail.split("?", 1)[0]
    if not path.startswith(PASSED) or "/../" in path + "/" or "%2e" in path.lower():
        raise ApiError(404, "not_found", f"only the whatsapp-service's {PASSED} calls are "
                       "passed through")
    session = rt.relay.session
    if session is None:
        raise ApiError(503, "starting", "the daemon is starting or stopping",
                       headers={"Retry-After": "1"})
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in NOT_RELAYED]
    peer = request.remote
    if peer:
        headers.append(("X-Forwarded-For", peer))
    body = await request.read()
    timeout = rt.config["webhooks.forward_timeout"]
    try:
        async with session.request(request.method, URL(base + tail, encoded=True),
                                   data=body or None, headers=headers, allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            answer = await resp.read()
            back = {k: v for k, v in resp.headers.items() if k.lower() not in NOT_RETURNED}
            if not answer:
                return web.Response(status=resp.status, headers=back)
            return web.Response(status=resp.status, body=answer, headers=back,
                                content_type=resp.content_type, charset=resp.charset)
    except TimeoutError:
        raise ApiError(504, "app_timeout", f"the Laravel app did not answer within "
                       f"{timeout:g} s (webhooks.forward_timeout)") from None
    except aiohttp.ClientError as exc:
        raise ApiError(502, "app_unreachable", f"the Laravel app did not answer "
                       f"({type(exc).__name__})") from None


def add_routes(app: web.Application) -> None:
    # The webhook first: routes match in the order they were added.
    handler = make_handler("webjs")
    app.router.add_post(PREFIX + SEED_WEBHOOK, handler)
    app[WEBHOOK_ROUTES][(PREFIX + SEED_WEBHOOK).encode()] = getattr(handler, TAKER)  # web/front.py
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        app.router.add_route(method, PREFIX + "/{tail:.*}", passthrough)
