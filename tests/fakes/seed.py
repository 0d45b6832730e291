"""Local fakes of the seed system (reference/seed_repo.md), as real HTTP servers on
127.0.0.1, and its webhook signature.

- `seed_headers`: the headers the seed's whatsapp-service signs a webhook with
  (utils/webhookNotifier.js): X-Timestamp (unix seconds) and X-HMAC-Signature = hex
  HMAC-SHA256(secret, timestamp + raw body).
- `FakeLaravel`: the seed's Laravel app as the relay's downstream. Its webhook route
  checks the signature exactly as its VerifyWhatsAppHmac middleware does (both headers
  present, |now - X-Timestamp| <= 300 s, hash_equals of the hex HMAC), records every
  request it accepted in arrival order, and can be stopped and started again on the
  same port (a downstream that is down refuses connections).
- `FakeSeedService`: the whatsapp-service's send API, POST /api/messages/send, with its
  real answers: the key in the JSON body (401 Invalid API key), 404 Session not found,
  400 Session not connected, 400 for missing fields or a bad phone number,
  `{success, message_id, timestamp}` on success, and `{success: true}` with no id for a
  type it does not know (the service really does that).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def seed_signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).hexdigest()


def seed_headers(secret: str, body: bytes, timestamp: int | None = None,
                 header: str = "X-HMAC-Signature") -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"Content-Type": "application/json", "X-Timestamp": ts,
            header: seed_signature(secret, ts, body), "X-Instance-Url": "http://localhost:3001",
            "User-Agent": "WhatsApp-WebJS-Service/1.0"}


async def _serve(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeLaravel:
    secret: str = "laravel-hmac-secret"
    signature_ttl: int = 300
    received: list[Received] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    answer_status: int = 200  # e.g. 503 to play an app in maintenance mode
    # bodies containing this are refused 422, as Laravel's validation refuses a payload
    refuse_containing: bytes | None = None
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return self.url + "/api/whatsapp/webhooks/webjs"

    async def start(self) -> FakeLaravel:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/whatsapp/webhooks/webjs", self.webjs)
        app.router.add_post("/cloud/webhook", self.cloud)
        app.router.add_get("/api/whatsapp/accounts/active", self.accounts_active)
        app.router.add_post("/api/whatsapp/chats/sync", self.chats_sync)
        self._runner, self.port = await _serve(app, self.port)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def bodies(self) -> list[bytes]:
        return [r.body for r in self.received]

    async def webjs(self, request: web.Request) -> web.Response:
        """VerifyWhatsAppHmac, then the controller's answer."""
        signature = request.headers.get("X-HMAC-Signature")
        timestamp = request.headers.get("X-Timestamp")
        payload = await request.read()
        if not signature or not timestamp:
            return self._refuse(401, "Missing required security headers")
        if abs(time.time() - int(timestamp)) > self.signature_ttl:
            return self._refuse(401, "Request timestamp expired")
        expected = hmac.new(self.secret.encode(), timestamp.encode() + payload,
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return self._refuse(401, "Invalid signature")
        if self.answer_status != 200:
            return self._refuse(self.answer_status, "Service Unavailable")
        if self.refuse_containing is not None and self.refuse_containing in payload:
            return self._refuse(422, "The given data was invalid.")
        self.received.append(Received(request.path, dict(request.headers), payload))
        return web.json_response({"status": "received"})

    async def cloud(self, request: web.Request) -> web.Response:
        """A Cloud API callback: X-Hub-Signature-256 with the app secret."""
        payload = await request.read()
        expected = "sha256=" + hmac.new(self.secret.encode(), payload,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
            return self._refuse(401, "Invalid signature")
        self.received.append(Received(request.path, dict(request.headers), payload))
        return web.Response(text="EVENT_RECEIVED")

    async def accounts_active(self, request: web.Request) -> web.Response:
        if request.headers.get("X-API-Key") != "laravel-api-token":
            return web.json_response({"error": "Unauthorized"}, status=401)
        return web.json_response({"success": True, "data": [
            {"session_id": "webjs_1_1763079321_JSmiuJVF", "workspace_id": 1}]})

    async def chats_sync(self, request: web.Request) -> web.Response:
        payload = await request.read()
        self.received.append(Received(request.path, dict(request.headers), payload))
        return web.json_response({"status": "queued"}, status=202)

    def _refuse(self, status: int, message: str) -> web.Response:
        self.refused.append((status, message))
        return web.json_response({"message": message}, status=status)


PHONE = re.compile(r"^\+?[\d\s\-\(\)]+$")


@dataclass
class Sent:
    body: dict[str, Any]
    status: int


@dataclass
class FakeSeedService:
    api_key: str = "seed-api-key"
    sessions: dict[str, str] = field(
        default_factory=lambda: {"webjs_1_1763079321_JSmiuJVF": "connected"})
    # recipient -> its next answers: 500, "hang" (a timeout) or "no_id" (success, no id)
    script: dict[str, list[Any]] = field(default_factory=dict)
    requests: list[Sent] = field(default_factory=list)
    port: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def send_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/messages/send"

    async def start(self) -> FakeSeedService:
        app = web.Application()
        app.router.add_post("/api/messages/send", self.send)
        self._runner, self.port = await _serve(app)
        return self

    async def close(self) -> None:
        self._closed.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def accepted(self) -> list[Sent]:
        return [r for r in self.requests if r.status == 200]

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        sent = Sent(body, 0)  # recorded on arrival: a call that times out was still made
        self.requests.append(sent)
        sent.status, answer = await self._answer(body)
        return web.json_response(answer, status=sent.status)

    async def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """MessageController.sendMessage and SessionManager.sendMessage, in their order."""
        if body.get("api_key") != self.api_key:
            return 401, {"error": "Invalid API key"}
        session_id, phone, message = (body.get("session_id"), body.get("recipient_phone"),
                                      body.get("message"))
        if not session_id or not phone or not message:
            return 400, {"error": "Missing required fields",
                         "required": ["session_id", "recipient_phone", "message"]}
        if not PHONE.match(str(phone).replace(" ", "")):
            return 400, {"error": "Invalid phone number format"}
        steps = self.script.get(phone)
        step = steps.pop(0) if steps else None
        if step == "hang":
            try:
                await asyncio.wait_for(self._closed.wait(), 30)
            except TimeoutError:
                pass
            return 500, {"error": "timed out"}
        if step == 500:
            return 500, {"error": "Evaluation failed: Protocol error (Runtime.callFunctionOn)"}
        if session_id not in self.sessions:
            return 404, {"error": "Session not found"}
        if self.sessions[session_id] != "connected":
            return 400, {"error": "Session not connected. Please check session status."}
        if body.get("type", "text") != "text" or step == "no_id":
            return 200, {"success": True}  # no result: JSON.stringify drops undefined ids
        serial = f"true_{phone}@c.us_3EB0{next(self._ids):016X}"
        return 200, {"success": True, "message_id": serial, "timestamp": int(time.time())}
