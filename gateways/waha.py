"""WAHA: POST {base}/api/sendText {session, chatId, text}, X-Api-Key."""

from __future__ import annotations

import aiohttp

from domain.failures import Failure
from gateways.base import Outbound, Outcome, accepted, post_json


class WahaGateway:
    name = "waha"

    def __init__(self, base_url: str, api_key: str, session_name: str, timeout: float) -> None:
        self.url = base_url.rstrip("/") + "/api/sendText"
        self.api_key = api_key
        self.session_name = session_name
        self.timeout = timeout

    async def send(self, session: aiohttp.ClientSession, message: Outbound) -> Outcome:
        doc = {"session": self.session_name, "chatId": f"{message.recipient}@c.us",
               "text": message.text}
        headers = {"X-Api-Key": self.api_key} if self.api_key else {}
        failure, reply = await post_json(session, self.url, doc, headers, self.timeout)
        if failure is not None:
            # WAHA answers 422 when the session is not WORKING: no message can go out.
            if failure.kind == "permanent" and "session" in (failure.reason or "").lower():
                return Outcome("halt", reason=failure.reason, failure=Failure(
                    "waha", "session_not_working", failure.reason))
            return failure
        # WAHA returns the sent message; its id is `id` (webjs engine: serialized form).
        out = accepted(reply, "id")
        if out.kind != "accepted":
            out = accepted(reply, "key.id")
        return out
