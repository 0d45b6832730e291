"""Meta WhatsApp Cloud API: POST {base}/{version}/{phone_number_id}/messages."""

from __future__ import annotations

from typing import Any

import aiohttp

from gateways.base import Outbound, Outcome, accepted, post_json

# Graph error codes that no retry of this message can fix but that stop every message
# (auth, account or phone-number problems): the campaign pauses instead.
HALT_CODES = {0, 10, 190, 200, 368, 131031, 131042}
# Throttling codes answered with 4xx: retry later.
THROTTLE_CODES = {4, 80007, 130429, 131048, 131056}
# Of those, the ones that say the number (account) sends too fast: its rate goes down.
# 131056 (too many to ONE recipient) and 131048 (spam limit) are not about the pace.
ACCOUNT_THROTTLE_CODES = {4, 80007, 130429}


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
            code = _code(failure.reason)
            if code in THROTTLE_CODES:
                return Outcome("transient", reason=failure.reason,
                               retry_after=failure.retry_after,
                               throttled=code in ACCOUNT_THROTTLE_CODES or failure.throttled)
            if code in HALT_CODES and failure.kind != "transient":
                return Outcome("halt", reason=failure.reason)
            return failure
        return accepted(reply, "messages.0.id")


def _code(reason: str | None) -> int | None:
    """error_text() writes 'HTTP 400 (code 131026): ...'."""
    if not reason or "(code " not in reason:
        return None
    raw = reason.split("(code ", 1)[1].split(")", 1)[0]
    return int(raw) if raw.isdigit() else None
