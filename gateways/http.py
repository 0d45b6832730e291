"""A whatsapp-web.js service such as the seed's: JSON POST, id read from the reply."""

from __future__ import annotations

from typing import Any

import aiohttp

from gateways.base import Outbound, Outcome, accepted, post_json


class HttpGateway:
    name = "http"

    def __init__(self, url: str, token: str, id_field: str, session_id: str,
                 timeout: float) -> None:
        self.url = url
        self.token = token
        self.id_field = id_field
        self.session_id = session_id
        self.timeout = timeout

    async def send(self, session: aiohttp.ClientSession, message: Outbound) -> Outcome:
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
