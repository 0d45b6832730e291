"""How each webhook source signs its requests, as pure functions.

One place for every scheme, used both ways: web/auth.py checks what a gateway sends us,
actors/relay.py signs what campaignd relays to the app behind it. Pure computation (no
clock, no I/O): the caller passes the time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl


def hex_hmac(key: str, data: bytes, algo: str) -> str:
    return hmac.new(key.encode(), data, algo).hexdigest()


def seed_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The seed's whatsapp-service (utils/webhookNotifier.js) and the Laravel
    VerifyWhatsAppHmac middleware: lowercase hex HMAC-SHA256 of the X-Timestamp value
    (unix seconds, decimal) followed by the raw body, with no separator."""
    return hex_hmac(secret, timestamp.encode("ascii") + body, "sha256")


def seed_mac(secret: str, timestamp: str) -> hmac.HMAC:
    """`seed_signature` computed incrementally: feed the body with update()."""
    return hmac.new(secret.encode(), timestamp.encode("ascii"), "sha256")


def body_mac(secret: str) -> hmac.HMAC:
    """The HMAC of `body_signature` (without its "sha256=" prefix), fed incrementally."""
    return hmac.new(secret.encode(), digestmod="sha256")


def body_signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`: webjs's X-Signature and Meta's
    X-Hub-Signature-256 have the same form."""
    return "sha256=" + hex_hmac(secret, body, "sha256")


def waha_signature(secret: str, body: bytes) -> str:
    """WAHA's X-Webhook-Hmac: hex HMAC-SHA512 of the body."""
    return hex_hmac(secret, body, "sha512")


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by every form
    parameter's name and value, sorted by name."""
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def form_params(body: bytes) -> dict[str, str]:
    """A form body's parameters, as Twilio signs them (invalid bytes replaced)."""
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def timestamp_problem(timestamp: str, now: float, window: float) -> str | None:
    """Why an X-Timestamp is refused (not unix seconds, or outside the replay window),
    or None when it is fresh."""
    if not (0 < len(timestamp) <= 12 and timestamp.isascii() and timestamp.isdigit()):
        return "X-Timestamp must be unix seconds (digits)"
    age = now - int(timestamp)
    if age > window:
        return (f"X-Timestamp is {age:.0f} s old, outside the replay window of "
                f"{window:g} s (check both machines' clocks)")
    if -age > window:
        return (f"X-Timestamp is {-age:.0f} s in the future, outside the replay window of "
                f"{window:g} s (check both machines' clocks)")
    return None
