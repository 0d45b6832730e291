"""Meta WhatsApp Cloud API: POST {base}/{version}/{phone_number_id}/messages."""

from __future__ import annotations

from typing import Any

import aiohttp

from gateways.base import Outbound, Outcome, accepted, post_json


class CloudGateway:
    name = "cloud"

    def __init__(self, base_url: str, version: str, phone_number_id: str, token: str,
                 timeout: float) -> None:
        self.url = f"{base_url.rstrip('/')}/{version}/{phone_number_id}/messages"
        self.token = token
        self.timeout = timeout

    def body(self, message: Outbound) -> dict[str, Any]:
        doc: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                               "to": message.recipient}
        template = message.options.get("template")
        if template:
            doc["type"] = "template"
            doc["template"] = template
        else:
            doc["type"] = "text"
            doc["text"] = {"preview_url": False, "body": message.text}
        return doc

    async def send(self, session: aiohttp.ClientSession, message: Outbound) -> Outcome:
        headers = {"Authorization": f"Bearer {self.token}"}
        failure, reply = await post_json(session, self.url, self.body(message), headers,
                                         self.timeout)
        if failure is not None:
            # The Graph error code (failure.failure.code) decides retry, fail or pause:
            # the sender judges it through domain/failures.py.
            return failure
        return accepted(reply, "messages.0.id")
