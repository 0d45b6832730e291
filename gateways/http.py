"""A whatsapp-web.js service: JSON POST, id read from the reply.

Two request shapes (`gateways.http.preset`):
- "generic": `{session_id, to, chat_id, message, campaign_uuid, contact_id}` with
  `Authorization: Bearer <token>`, the id at `gateways.http.id_field`.
- "blazz": the seed's whatsapp-service unchanged (reference/seed_repo.md 3.1):
  `POST /api/messages/send` with `{session_id, workspace_id, recipient_phone (digits, no
  +), message, type: "text", api_key}` (the key in the body), answered
  `{success, message_id, timestamp}`. Its refusals are mapped: 401 Invalid API key,
  404 Session not found and 400 Session not connected stop every message, so they pause
  the campaign with the reason; other 4xx fail the message; 5xx and timeouts are
  retried; `success` without a `message_id` is an unknown outcome (it may be out).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from domain.failures import Failure, short
from gateways.base import Outbound, Outcome, accepted, post_json

PRESETS = ("generic", "blazz")


class HttpGateway:
    name = "http"

    def __init__(self, url: str, token: str, id_field: str, session_id: str,
                 timeout: float, preset: str = "generic") -> None:
        self.url = url
        self.token = token
        self.id_field = id_field
        self.session_id = session_id
        self.timeout = timeout
        self.preset = preset

    async def send(self, session: aiohttp.ClientSession, message: Outbound) -> Outcome:
        if self.preset == "blazz":
            return await self._send_blazz(session, message)
        doc: dict[str, Any] = {
            "session_id": self.session_id,
            "to": message.recipient,
            "chat_id": f"{message.recipient}@c.us",
            "message": message.text,
            "campaign_uuid": message.campaign_uuid,
            "contact_id": message.contact_id,
        }
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        failure, reply = await post_json(session, self.url, doc, headers, self.timeout)
        return failure or accepted(reply, self.id_field)

    async def _send_blazz(self, session: aiohttp.ClientSession, message: Outbound) -> Outcome:
        doc: dict[str, Any] = {
            "session_id": self.session_id,
            "workspace_id": message.workspace_id,
            "recipient_phone": message.recipient,
            "message": message.text,
            "type": "text",
        }
        if self.token:  # a service without API_KEY accepts a body without api_key
            doc["api_key"] = self.token
        failure, reply = await post_json(session, self.url, doc, {}, self.timeout)
        if failure is not None:
            return self._blazz_refusal(failure)
        if not isinstance(reply, dict) or reply.get("success") is not True:
            error = reply.get("error") if isinstance(reply, dict) else None
            return Outcome("permanent", reason="the whatsapp-service did not send it"
                           + (f": {str(error)[:300]}" if error else f" ({str(reply)[:200]})"))
        message_id = reply.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            return Outcome("unknown", reason="the whatsapp-service answered success without "
                           "a message_id: the message may be out (retry-unknown re-sends it)")
        return Outcome("accepted", message_id=message_id)

    def _blazz_refusal(self, failure: Outcome) -> Outcome:
        """The seed service's refusals that no retry fixes and that stop every message."""
        said = failure.reason or ""
        if failure.status == 401:
            return Outcome("halt", status=401, reason=f"the whatsapp-service refused the API "
                           f"key ({said}): set gateways.http.token to its API_KEY",
                           failure=failure.failure)
        # No session, or not connected: the failure table's account problem (pause).
        session_down = Failure("http", "session_not_working", short(said))
        if failure.status == 404:
            return Outcome("halt", status=404, reason=f"the whatsapp-service has no session "
                           f"{self.session_id!r} ({said}): check gateways.http.session_id "
                           "and gateways.http.url", failure=session_down)
        if failure.status == 400 and "session not connected" in said.lower():
            return Outcome("halt", status=400, reason=f"the whatsapp-service session "
                           f"{self.session_id!r} is not connected ({said}): reconnect it "
                           "(scan its QR code), then resume", failure=session_down)
        return failure
