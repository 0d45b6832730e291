"""Where an ACK enters: one route per source, answered only once it is durable.

body -> signature check (401) -> content type (415) -> parser (4xx naming the field)
-> relay backlog (503 when full) -> journal group commit (503 when storage fails) -> 200.
The journal hands the events to the ingest actor after the commit; nothing here waits on
an actor. A source that relays (forward_to) hands the whole request to the journal too,
committed with its events (actors/relay.py passes it on later). Events the parser
accepted but does not use are answered 2xx `"ignored"` and counted.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from actors.runtime import Runtime
from core.config import SOURCE_SECRET, Config
from domain.inbound import Event, Keywords
from web.auth import Guard
from web.bigbody import read_streamed
from web.common import check_node
from web.errors import ApiError, error_answer, error_response
from web.keys import GUARD, RUNTIME, WEBHOOK_ROUTES
from web.sources import BadPayload, ParseContext, cloud, evolution, twilio, waha, webjs

Parser = Callable[[bytes, ParseContext], list[Event]]

PARSERS: dict[str, Parser] = {
    "webjs": webjs.parse,
    "waha": waha.parse,
    "evolution": evolution.parse,
    "cloud": cloud.parse,
    "twilio": twilio.parse,
}
FORM_SOURCES = ("twilio",)
# Sources whose large bodies are streamed past their media (SPEC 6.1), and from what size.
STREAMED_SOURCES = ("webjs",)
STREAM_ABOVE = 256 * 1024
# Marks a handler that answers its own refusals as JSON: web/app.py wraps every other route.
ANSWERS_ERRORS = "answers_errors"
TAKER = "taker"  # the handler's `make_taker` function, for the front (web/front.py)


def _content_type_ok(source: str, request: web.Request) -> bool:
    given = request.headers.get("Content-Type")
    if not given:
        return True  # many gateways send none; the parser decides
    if given == "application/json" and source not in FORM_SOURCES:
        return True  # the usual header, without parsing it
    ctype = request.content_type
    if source in FORM_SOURCES:
        return ctype == "application/x-www-form-urlencoded"
    return ctype in ("application/json", "text/plain") or ctype.endswith("+json")


# The usual answers, encoded once (every webhook request gets one).
OK_BODIES = [orjson.dumps({"ok": True, "events": n}) for n in range(1001)]
# Event names the seed's whatsapp-service is known to send (reference/seed_repo.md 1.3):
# the metric of ignored events names these; any other name is counted as "other".
KNOWN_EVENTS = frozenset((
    "qr_code_generated", "session_authenticated", "session_ready", "session_error",
    "session_disconnected", "session_status_changed", "message_received", "message_sent",
    "typing_indicator", "chat_state_updated", "mobile_activity_detected", "connection_test"))
BACKLOG_RETRY_AFTER = "30"


def ok_response(events: int, ignored: list[str] | None = None) -> web.Response:
    if ignored:
        counts: dict[str, int] = {}
        for name in ignored:
            counts[name] = counts.get(name, 0) + 1
        return web.Response(body=orjson.dumps({"ok": True, "events": events,
                                               "ignored": counts}),
                            content_type="application/json")
    body = OK_BODIES[events] if events < len(OK_BODIES) else orjson.dumps(
        {"ok": True, "events": events})
    return web.Response(body=body, content_type="application/json")


_KEYWORDS: list[tuple[Config, Keywords]] = []  # the last configuration's, made once
# The receive clock: it dates the events of sources that send no time, and no event is
# dated after it. Tests replace it to date a webhook when they need (a reply whose time
# is after a send the daemon hears of only later).
clock: Callable[[], float] = time.time


def parse_context(config: Config) -> ParseContext:
    """What a parser needs from the configuration, with the receive time."""
    if not _KEYWORDS or _KEYWORDS[0][0] is not config:
        _KEYWORDS[:] = [(config, Keywords(config["engagement.stop_keywords"],
                                          config["engagement.start_keywords"]))]
    return ParseContext(clock(), config["ingest.ack_numbering"], _KEYWORDS[0][1],
                        config["engagement.keep_reply_text"])


@dataclass(slots=True)
class SourceSettings:
    """What a request of one source reads from the configuration, looked up once per
    configuration (a SIGHUP makes a new one) instead of once per request."""

    config: Config
    enabled: bool
    relays: bool
    ack_numbering: str
    keywords: Keywords
    keep_reply_text: bool


def source_settings(cache: list[SourceSettings], source: str, config: Config
                    ) -> SourceSettings:
    if not cache or cache[0].config is not config:
        keywords = parse_context(config).keywords
        cache[:] = [SourceSettings(config, config[f"webhooks.{source}.enabled"],
                                   bool(config[f"webhooks.{source}.forward_to"]),
                                   config["ingest.ack_numbering"], keywords,
                                   config["engagement.keep_reply_text"])]
    return cache[0]


# What a webhook's taking gives: (events counted, names ignored) once the events are
# durable, or the refusal to answer. The answer is made by whoever serves the request:
# aiohttp (`make_handler`) or the front (web/front.py), which writes the usual one as bytes.
Taken = tuple[int, list[str]] | web.StreamResponse
Taker = Callable[[web.Request], Awaitable[Taken]]


def make_handler(source: str, node_route: bool = False) -> Callable[[web.Request], object]:
    """The aiohttp route of one source; `node_route` for /n/{node}/webhooks/...
    (web/cluster.py), whose node is checked."""
    take = make_taker(source, node_route)

    async def receive(request: web.Request) -> web.StreamResponse:
        taken = await take(request)
        return ok_response(*taken) if taken.__class__ is tuple else taken  # type: ignore

    receive.__name__ = f"webhook_{source}"
    setattr(receive, ANSWERS_ERRORS, True)
    setattr(receive, TAKER, take)
    return receive


def make_taker(source: str, node_route: bool = False) -> Taker:
    """Takes one request of a source: checks, parses, journals; answers only refusals."""
    parser = PARSERS[source]
    cache: list[SourceSettings] = []
    streams = source in STREAMED_SOURCES
    bound: list[tuple[web.Application, Runtime, Guard]] = []  # this route's app's, once

    async def take(request: web.Request) -> Taken:
        try:
            app = request.app
            if not bound or bound[0][0] is not app:
                bound[:] = [(app, app[RUNTIME], app[GUARD])]
            _, rt, guard = bound[0]
            started = time.perf_counter()
            settings = source_settings(cache, source, rt.config)
            if not settings.enabled:
                raise ApiError(404, "source_disabled", f"the {source} webhook is disabled")
            check = guard.webhooks[source]
            if check.open_ and guard.is_remote(request):
                rt.metrics.events.labels(source, "rejected").inc()
                setting = SOURCE_SECRET[source]
                advice = (f"this request came through a proxy or from another host, and the "
                          f"{source} webhook has no secret: set {setting}")
                guard.warn_once(setting, advice)
                raise ApiError(401, "secret_required", advice)
            streamed = None
            try:
                if streams and (request.content_length is None or
                                request.content_length > STREAM_ABOVE):
                    # a message_received with inline media: read past it (web/bigbody.py);
                    # what is relayed (forward_to) is this body, its media blanked
                    streamed = check.streamed(request)
                    body, _ = await read_streamed(request, streamed,
                                                  rt.config["webhooks.max_inbound_bytes"],
                                                  rt.config["server.max_body_bytes"])
                else:
                    body = await request.read()
            except web.HTTPRequestEntityTooLarge:  # answered 413 as JSON by the except below
                rt.metrics.events.labels(source, "rejected").inc()
                raise
            refusal = streamed.refusal() if streamed is not None else (
                None if check.open_ else check.verify(request, body))
            if refusal is not None:
                rt.metrics.events.labels(source, "rejected").inc()
                raise ApiError(401, refusal.code, refusal.message)
            if not _content_type_ok(source, request):
                rt.metrics.events.labels(source, "rejected").inc()
                raise ApiError(415, "unsupported_media_type",
                               f"Content-Type {request.content_type!r} is not accepted here")
            received = clock()
            ctx = ParseContext(received, settings.ack_numbering, settings.keywords,
                               settings.keep_reply_text)
            try:
                events = parser(body, ctx)
            except BadPayload as exc:
                rt.metrics.events.labels(source, "rejected").inc()
                return error_response(422 if exc.field else 400, "invalid_payload", str(exc),
                                      exc.field or None)
            except RecursionError:
                rt.metrics.events.labels(source, "rejected").inc()
                return error_response(400, "invalid_payload", "the body is nested too deeply")
            if node_route:
                check_node(request)  # /n/{node}/...: only the node named (docs/cluster.md)
            if ctx.extras:  # Meta account and template webhooks (actors/account.py):
                await rt.account.record(ctx.extras)  # stored now, also while recovering
            relay = None
            if settings.relays:
                if rt.relay.full(source):
                    raise ApiError(503, "relay_backlog_full",
                                   f"{rt.relay.state[source].backlog} requests of the {source} "
                                   "webhook wait to be relayed to the app behind campaignd "
                                   f"({rt.relay.state[source].last_error or 'not taking them'}); "
                                   "nothing was stored, retry later",
                                   headers={"Retry-After": BACKLOG_RETRY_AFTER})
                relay = rt.relay.entry(source, request.headers.items(), body)
            for event in events:
                if event.at > received:
                    # A provider clock ahead of ours: nothing happened after we heard of it.
                    # Fixed before journaling, so a replay gives the same times.
                    events = [e._replace(at=received) if e.at > received else e for e in events]
                    break
            if events or relay is not None:
                await rt.journal.submit(source, events, relay)
            for name in ctx.ignored:
                rt.metrics.webhook_ignored.labels(
                    source, name if name in KNOWN_EVENTS else "other").inc()
            rt.metrics.webhook_seconds[source].observe(time.perf_counter() - started)
            return len(events) + len(ctx.extras), ctx.ignored
        except Exception as exc:  # no middleware around this route (web/app.py)
            return error_answer(request, exc)

    return take


async def cloud_verify(request: web.Request) -> web.Response:
    """Meta's subscription handshake: echo hub.challenge when the token matches."""
    rt: Runtime = request.app[RUNTIME]
    mode = request.query.get("hub.mode")
    token = request.query.get("hub.verify_token", "")
    challenge = request.query.get("hub.challenge")
    expected = rt.config["webhooks.cloud.verify_token"]
    if mode != "subscribe" or challenge is None:
        raise ApiError(400, "bad_handshake", "expected hub.mode=subscribe and hub.challenge")
    check_node(request)
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError(403, "bad_verify_token", "hub.verify_token does not match")
    return web.Response(text=challenge, content_type="text/plain")


def add_routes(app: web.Application) -> None:
    routes = app[WEBHOOK_ROUTES] = {}
    for source in PARSERS:
        path = f"/webhooks/{source}"
        handler = make_handler(source)
        routes[path.encode()] = getattr(handler, TAKER)
        app.router.add_post(path, handler)
    app.router.add_get("/webhooks/cloud", cloud_verify)
