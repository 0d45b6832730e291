"""A fake WhatsApp gateway on 127.0.0.1 that answers like the real services.

One aiohttp server speaks three dialects:
- a whatsapp-web.js service (the seed's): POST /api/messages/send
- WAHA: POST /api/sendText (X-Api-Key; 422 when the session is not WORKING)
- Meta Cloud API: POST /{version}/{phone_number_id}/messages (Bearer; Graph error bodies)

It records every request (time, recipient, body) so tests count what was sent, and a
per-recipient script says what to answer: a status code (with the real service's error
body), ("429", seconds) for Retry-After, ("graph", code, status) for a Cloud API error
with that Graph error code, ("coded", status, code, message) for a service that relays
its provider's error code (Twilio's 21610 through an HTTP gateway, say), or "hang" to
trigger the client's timeout. `held` keeps a recipient's call waiting (listed in
`waiting`) until the test sets its event: a call deterministically in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Answer = Any  # 200 | 400 | 500 | ("429", s) | ("graph", code, status) | ("coded", ...) | "hang"

WEBJS_ERRORS = {
    400: {"success": False, "error": "Invalid phone number: the number is not registered"},
    500: {"success": False, "error": "Evaluation failed: Protocol error (Runtime.callFunctionOn)"},
    503: {"success": False, "error": "Client is not ready"},
}


# Titles of the Graph error codes tests script (Meta's error-code table).
GRAPH_TITLES = {
    131026: "Message undeliverable", 131049: "Meta chose not to deliver",
    130429: "Rate limit hit", 131000: "Something went wrong", 131042: "Business "
    "eligibility payment issue", 132001: "Template does not exist", 190: "Access token "
    "has expired", 131050: "User has stopped marketing messages",
}


@dataclass
class Sent:
    at: float
    dialect: str
    recipient: str
    body: dict[str, Any]
    status: int


@dataclass
class FakeGateway:
    api_key: str = "waha-key"
    token: str = "cloud-token"
    waha_session: str = "default"
    script: dict[str, list[Answer]] = field(default_factory=dict)
    default_delay: float = 0.0
    requests: list[Sent] = field(default_factory=list)
    hooks: list[tuple[dict[str, str], bytes]] = field(default_factory=list)  # webhooks in
    held: dict[str, asyncio.Event] = field(default_factory=dict)  # recipient -> release
    waiting: set[str] = field(default_factory=set)  # held calls now waiting
    url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _closed: asyncio.Event = field(default_factory=asyncio.Event)

    # --- what tests look at -----------------------------------------------------------

    def accepted(self) -> list[Sent]:
        return [r for r in self.requests if r.status == 200]

    def per_recipient(self) -> Counter[str]:
        return Counter(r.recipient for r in self.requests)

    def per_second(self, since: float | None = None) -> list[int]:
        """Requests per 1-second window from the first one (or `since`)."""
        times = sorted(r.at for r in self.requests if since is None or r.at >= since)
        if not times:
            return []
        start = times[0]
        counts = Counter(int(t - start) for t in times)
        return [counts.get(i, 0) for i in range(int(times[-1] - start) + 1)]

    # --- server -----------------------------------------------------------------------

    async def start(self) -> FakeGateway:
        app = web.Application()
        app.router.add_post("/api/messages/send", self.webjs)
        app.router.add_post("/api/sendText", self.waha)
        app.router.add_post("/{version}/{phone}/messages", self.cloud)
        app.router.add_post("/hooks/campaignd", self.hook)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        self._closed.set()  # ends hanging answers
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, dialect: str, recipient: str, body: dict[str, Any]) -> Answer:
        gate = self.held.get(recipient)
        if gate is not None:
            self.waiting.add(recipient)
            await gate.wait()
            self.waiting.discard(recipient)
        steps = self.script.get(recipient)
        answer = steps.pop(0) if steps else 200
        if answer == "hang":
            self.requests.append(Sent(time.time(), dialect, recipient, body, 0))
            try:
                await asyncio.wait_for(self._closed.wait(), 30)
            except TimeoutError:
                pass
            raise web.HTTPServiceUnavailable()
        if self.default_delay:
            await asyncio.sleep(self.default_delay)
        if isinstance(answer, tuple) and answer[0] == "graph":
            status = int(answer[2])
        elif isinstance(answer, tuple) and answer[0] == "coded":
            status = int(answer[1])
        else:
            status = int(answer[0]) if isinstance(answer, tuple) else int(answer)
        self.requests.append(Sent(time.time(), dialect, recipient, body, status))
        return answer

    async def hook(self, request: web.Request) -> web.Response:
        """campaignd's outbound webhook lands here."""
        self.hooks.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    async def webjs(self, request: web.Request) -> web.Response:
        body = await request.json()
        answer = await self._answer("webjs", body["to"], body)
        if isinstance(answer, tuple) and answer[0] == "coded":
            _, status, code, message = answer
            return web.json_response({"success": False, "error": {"code": code,
                                                                  "message": message}},
                                     status=status)
        if isinstance(answer, tuple):
            return web.json_response({"success": False, "error": "Too many requests"},
                                     status=429, headers={"Retry-After": str(answer[1])})
        if answer != 200:
            return web.json_response(WEBJS_ERRORS.get(answer, {"success": False}), status=answer)
        serial = f"true_{body['to']}@c.us_3EB0{next(self._ids):016X}"
        return web.json_response({"success": True, "message_id": serial,
                                  "timestamp": int(time.time())})

    async def waha(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Api-Key") != self.api_key:
            return web.json_response({"message": "Unauthorized", "statusCode": 401}, status=401)
        body = await request.json()
        if body.get("session") != self.waha_session:
            return web.json_response(
                {"statusCode": 422, "error": "Unprocessable Entity",
                 "message": f"Session \"{body.get('session')}\" is not WORKING. Status: STOPPED"},
                status=422)
        recipient = body["chatId"].split("@")[0]
        answer = await self._answer("waha", recipient, body)
        if answer != 200:
            return web.json_response({"statusCode": answer, "message": "Internal server error",
                                      "error": "Internal Server Error"}, status=int(answer))
        mid = f"true_{body['chatId']}_3EB0{next(self._ids):016X}"
        return web.json_response({"id": mid, "timestamp": int(time.time()), "from":
                                  "6280000000000@c.us", "fromMe": True, "to": body["chatId"],
                                  "body": body["text"], "ack": 0, "ackName": "PENDING"},
                                 status=201)

    async def cloud(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": {
                "message": "Invalid OAuth access token - Cannot parse access token",
                "type": "OAuthException", "code": 190, "fbtrace_id": "AbCdEf"}}, status=401)
        body = await request.json()
        answer = await self._answer("cloud", body["to"], body)
        if isinstance(answer, tuple) and answer[0] == "graph":
            _, code, status = answer
            title = GRAPH_TITLES.get(code, "Error")
            return web.json_response({"error": {
                "message": f"(#{code}) {title}", "type": "OAuthException", "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": title},
                "fbtrace_id": "AbCdEf"}}, status=status)
        if isinstance(answer, tuple):
            return web.json_response({"error": {
                "message": "(#130429) Rate limit hit", "type": "OAuthException",
                "code": 130429, "fbtrace_id": "AbCdEf"}}, status=400)
        if answer == 400:
            return web.json_response({"error": {
                "message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100,
                "error_data": {"messaging_product": "whatsapp",
                               "details": "Invalid WhatsApp recipient"},
                "fbtrace_id": "AbCdEf"}}, status=400)
        if answer != 200:
            return web.json_response({"error": {"message": "Service temporarily unavailable",
                                                "type": "OAuthException", "code": 2,
                                                "is_transient": True}}, status=int(answer))
        wamid = "wamid.HBgN" + secrets.token_hex(12).upper()
        return web.json_response({"messaging_product": "whatsapp",
                                  "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                                  "messages": [{"id": wamid}]})
