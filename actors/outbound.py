"""The signed outbound webhook: one JSON POST to `sender.webhook_url`, retried.

Used for a campaign's status changes (actors/sender_service.py) and its alerts
(actors/alerts.py): the receiver tells them apart by `event`. The body is signed with
`X-Campaignd-Signature: sha256=<hex HMAC-SHA256(sender.webhook_secret, body)>` when a
secret is set, and posted up to five times with growing pauses until it gets a 2xx.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import aiohttp
import orjson
import structlog

log = structlog.get_logger(__name__)

ATTEMPTS = 5


async def post_signed(session: aiohttp.ClientSession, url: str, secret: str,
                      doc: dict[str, Any], backoff_base: float = 0.5,
                      backoff_max: float = 30.0, **log_fields: Any) -> bool:
    """POST `doc` signed; True once the receiver answered 2xx, False after every try
    (then `sender.webhook_given_up` is logged). Pauses between tries: the sender's
    backoff, 0.5, 1, 2, 4 s by default."""
    body = orjson.dumps(doc)
    headers = {"Content-Type": "application/json", "User-Agent": "campaignd"}
    if secret:
        digest = hmac.new(secret.encode(), body, hashlib.sha256)
        headers["X-Campaignd-Signature"] = "sha256=" + digest.hexdigest()
    problem = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            await asyncio.sleep(min(backoff_max, backoff_base * 2 ** (attempt - 1)))
        try:
            async with session.post(url, data=body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=10)) as resp:
                if resp.status < 300:
                    return True
                problem = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = str(exc) or type(exc).__name__
        log.warning("sender.webhook_failed", kind=doc.get("event"), attempt=attempt + 1,
                    error=problem, **log_fields)
    log.error("sender.webhook_given_up", kind=doc.get("event"), tries=ATTEMPTS, error=problem,
              **log_fields)
    return False
