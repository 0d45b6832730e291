"""Who may talk to us: webhook signatures per source (SPEC 3.1), API bearer tokens, and
whether a request came from this machine or through a proxy (SPEC 3.7).

Every comparison is constant-time. A source with no secret configured is accepted only
from a direct loopback peer: a request that came through a reverse proxy is remote
whatever the socket's address, so loopback is never a credential behind nginx.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from core.config import SOURCE_SECRET, Config
from web.errors import ApiError
from web.sources.twilio import parse_form


def _hex_hmac(key: str, body: bytes, algo: str) -> str:
    return hmac.new(key.encode(), body, algo).hexdigest()


def _raw(value: str) -> bytes:
    """A header value's bytes: aiohttp keeps invalid UTF-8 as surrogates, which a plain
    encode() refuses (a hostile header must be a 401, not a 500)."""
    return value.encode("utf-8", "surrogateescape")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(_raw(a), _raw(b))


class WebjsSignature:
    """The webjs credentials of one request, checked over a body fed in chunks: a
    `message_received` with media can be tens of megabytes, which the route streams
    (web/bigbody.py) and never holds whole. `_webjs` feeds it the whole body at once."""

    def __init__(self, secret: str, request: web.BaseRequest) -> None:
        self.secret = secret
        signature = request.headers.get("X-Signature", "")
        self._given = signature[7:].lower() if signature.startswith("sha256=") else None
        self._mac = hmac.new(secret.encode(), digestmod="sha256") \
            if self._given is not None else None
        auth = request.headers.get("Authorization", "")
        self._bearer = auth[7:] if auth.startswith("Bearer ") else None

    def update(self, chunk: bytes) -> None:
        if self._mac is not None:
            self._mac.update(chunk)

    def ok(self) -> bool:
        if self._mac is not None and self._given is not None:
            return _same(self._given, self._mac.hexdigest())
        return self._bearer is not None and _same(self._bearer, self.secret)


def _webjs(secret: str, request: web.Request, body: bytes) -> bool:
    check = WebjsSignature(secret, request)
    check.update(body)
    return check.ok()


def _waha(secret: str, request: web.Request, body: bytes) -> bool:
    signature = request.headers.get("X-Webhook-Hmac", "")
    return bool(signature) and _same(signature.lower(), _hex_hmac(secret, body, "sha512"))


def _cloud(secret: str, request: web.Request, body: bytes) -> bool:
    signature = request.headers.get("X-Hub-Signature-256", "")
    return signature.startswith("sha256=") and _same(
        signature[7:].lower(), _hex_hmac(secret, body, "sha256")
    )


def _evolution(secret: str, request: web.Request, body: bytes) -> bool:
    header = request.headers.get("apikey")
    if header is not None:
        return _same(header, secret)
    try:
        import orjson

        doc = orjson.loads(body)
    except Exception:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("apikey"), str) and _same(
        doc["apikey"], secret
    )


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _twilio_factory(config: Config) -> Any:
    def check(secret: str, request: web.Request, body: bytes) -> bool:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            return False
        url = config["webhooks.twilio.public_url"] or str(request.url)
        try:
            params = parse_form(body)
        except Exception:
            return False
        return _same(signature, twilio_signature(secret, url, params))

    return check


@dataclass(frozen=True)
class WebhookAuth:
    """Checks the request of one source; `open_` when no secret is set (loopback only)."""

    source: str
    secret: str
    checker: Any

    @property
    def open_(self) -> bool:
        return not self.secret

    def verify(self, request: web.Request, body: bytes) -> bool:
        return self.open_ or bool(self.checker(self.secret, request, body))

    def streamed(self, request: web.BaseRequest) -> StreamCheck:
        """A check fed the body in chunks (only webjs bodies are streamed)."""
        if self.open_:
            return StreamCheck(None)
        if self.source != "webjs":
            raise ValueError(f"the {self.source} webhook's body is not streamed")
        return StreamCheck(WebjsSignature(self.secret, request))


class StreamCheck:
    """Feeds a streamed body to a source's signature; open sources always pass."""

    def __init__(self, signature: WebjsSignature | None) -> None:
        self._signature = signature

    def update(self, chunk: bytes) -> None:
        if self._signature is not None:
            self._signature.update(chunk)

    def ok(self) -> bool:
        return self._signature is None or self._signature.ok()


def webhook_auth(config: Config) -> dict[str, WebhookAuth]:
    checkers = {"webjs": _webjs, "waha": _waha, "cloud": _cloud, "evolution": _evolution,
                "twilio": _twilio_factory(config)}
    return {source: WebhookAuth(source, config[key], checkers[source])
            for source, key in SOURCE_SECRET.items()}


@dataclass(frozen=True)
class Principal:
    """Who is calling the API: all workspaces, or one."""

    workspace: int | None  # None = every workspace

    def sees(self, workspace_id: int) -> bool:
        return self.workspace is None or self.workspace == workspace_id


EVERYONE = Principal(None)


class TokenBook:
    def __init__(self, tokens: list[Mapping[str, Any]]) -> None:
        self._tokens = [(t["token"], t.get("workspace", "*")) for t in tokens]

    @property
    def open_(self) -> bool:
        return not self._tokens

    def principal(self, authorization: str | None) -> Principal | None:
        """The caller's principal, or None when the token is missing or wrong."""
        if self.open_:
            return EVERYONE
        if not authorization or not authorization.startswith("Bearer "):
            return None
        given = authorization[7:].strip()
        found: Principal | None = None
        for token, workspace in self._tokens:
            if hmac.compare_digest(_raw(token), _raw(given)):
                found = EVERYONE if workspace == "*" else Principal(int(workspace))
        return found


PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

log = structlog.get_logger(__name__)


class Guard:
    """The credentials every route checks, made from the configuration and replaced
    whole on SIGHUP (so a reload changes tokens, secrets and channel rules together)."""

    def __init__(self, config: Config) -> None:
        self._warned: set[str] = set()
        self.reload(config)

    def reload(self, config: Config) -> None:
        self.tokens = TokenBook(config["api.tokens"])
        self.webhooks = webhook_auth(config)
        self.allow_public_channels: bool = config["pusher.allow_public_channels"]
        self.trusted_proxies: tuple[Network, ...] = tuple(
            ipaddress.ip_network(item, strict=False) for item in config["server.trusted_proxies"])

    def is_remote(self, request: web.BaseRequest) -> bool:
        """True unless the request came straight from this machine: a proxy header, a
        peer listed in server.trusted_proxies or a peer off loopback make it remote."""
        headers = request.headers
        if any(name in headers for name in PROXY_HEADERS):
            return True
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if not peer:
            return True  # unknown peer (a closing transport): never trusted
        host = peer[0] if isinstance(peer, tuple) else peer
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return True  # a unix socket path or similar: not a loopback peer we know
        if any(address in net for net in self.trusted_proxies):
            return True
        return not address.is_loopback

    def api_principal(self, request: web.BaseRequest) -> Principal:
        """Who is calling the API, or a 401 that says what is missing. Without api.tokens
        the API is open, which is only safe for this machine itself."""
        if self.tokens.open_ and self.is_remote(request):
            advice = ("this request came through a proxy or from another host, and the API "
                      "has no tokens: set api.tokens")
            self.warn_once("api.tokens", advice)
            raise ApiError(401, "token_required", advice,
                           headers={"WWW-Authenticate": "Bearer"})
        principal = self.tokens.principal(request.headers.get("Authorization"))
        if principal is None:
            raise ApiError(401, "unauthorized", "a valid bearer token is required",
                           headers={"WWW-Authenticate": "Bearer"})
        return principal

    def warn_once(self, setting: str, advice: str) -> None:
        """Log a refusal's advice once per setting (a scan must not flood the log)."""
        if setting not in self._warned:
            self._warned.add(setting)
            log.warning("auth.remote_refused", setting=setting, advice=advice)
