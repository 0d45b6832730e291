"""Who may talk to us: webhook signatures per source (SPEC 3.1), API bearer tokens, and
whether a request came from this machine or through a proxy (SPEC 3.7).

Every comparison is constant-time. A source with no secret configured is accepted only
from a direct loopback peer: a request that came through a reverse proxy is remote
whatever the socket's address, so loopback is never a credential behind nginx.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from core.config import KEYS, SOURCE_SECRET, Config
from domain.signatures import (
    body_mac,
    body_signature,
    seed_mac,
    timestamp_problem,
    twilio_signature,
    waha_signature,
)
from web.errors import ApiError
from web.sources.twilio import parse_form


def _raw(value: str) -> bytes:
    """A header value's bytes: aiohttp keeps invalid UTF-8 as surrogates, which a plain
    encode() refuses (a hostile header must be a 401, not a 500)."""
    return value.encode("utf-8", "surrogateescape")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(_raw(a), _raw(b))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a webhook's credentials were refused: the 401's code and message."""

    code: str
    message: str


# A checker answers True (accepted), False (missing or wrong) or a Refusal that says why.
Checker = Callable[[str, web.Request, bytes], "bool | Refusal"]


class WebjsCheck:
    """The webjs credentials of one request, checked over a body fed in chunks: a
    `message_received` with media can be tens of megabytes, which the route streams
    (web/bigbody.py) and never holds whole. Accepted, in this order: `X-API-Key` (when
    webhooks.webjs.api_key is set); the seed's scheme, `X-Timestamp` + hex
    HMAC-SHA256(secret, timestamp + raw body) in `X-HMAC-Signature` or, unprefixed,
    `X-Signature` (its earlier versions), within the replay window; `X-Signature:
    sha256=<hex HMAC of the body>`; `Authorization: Bearer`. The HMACs are those of
    domain/signatures.py, computed incrementally."""

    def __init__(self, api_key: str, window: float, secret: str,
                 request: web.BaseRequest) -> None:
        headers = request.headers
        self.window = window
        self.secret = secret
        self._accepted = False
        self._refusal: Refusal | None = None
        self._mac: Any = None
        self._given = ""
        self._timestamp: str | None = None
        self._bearer: str | None = None
        given_key = headers.get("X-API-Key")
        if api_key and given_key is not None and _same(given_key, api_key):
            self._accepted = True
            return
        if not secret:
            return  # only the API key is configured
        signature = headers.get("X-HMAC-Signature") or headers.get("X-Signature", "")
        if signature.startswith("sha256="):
            self._given, self._mac = signature.lower(), body_mac(secret)
        elif signature:
            timestamp = headers.get("X-Timestamp")
            if timestamp is None:
                self._refusal = Refusal("bad_signature",
                                        "X-HMAC-Signature needs an X-Timestamp header")
            elif timestamp.isascii():
                self._given, self._timestamp = signature.lower(), timestamp
                self._mac = seed_mac(secret, timestamp)
        else:
            auth = headers.get("Authorization", "")
            self._bearer = auth[7:] if auth.startswith("Bearer ") else None

    def update(self, chunk: bytes) -> None:
        if self._mac is not None:
            self._mac.update(chunk)

    def verdict(self) -> bool | Refusal:
        if self._accepted:
            return True
        if self._refusal is not None:
            return self._refusal
        if self._mac is not None:
            digest = self._mac.hexdigest()
            if self._timestamp is None:
                return _same(self._given, "sha256=" + digest)
            if not _same(self._given, digest):
                return False
            problem = timestamp_problem(self._timestamp, time.time(), self.window)
            if problem:
                return Refusal("stale_timestamp", f"{problem}; see webhooks.webjs.replay_window")
            return True
        return self._bearer is not None and _same(self._bearer, self.secret)


def _webjs_factory(config: Config) -> Checker:
    """webjs: see WebjsCheck (the whole body at once here)."""
    api_key: str = config["webhooks.webjs.api_key"]
    window: float = config["webhooks.webjs.replay_window"]

    def check(secret: str, request: web.Request, body: bytes) -> bool | Refusal:
        checking = WebjsCheck(api_key, window, secret, request)
        checking.update(body)
        return checking.verdict()

    return check


def _waha(secret: str, request: web.Request, body: bytes) -> bool:
    signature = request.headers.get("X-Webhook-Hmac", "")
    return bool(signature) and _same(signature.lower(), waha_signature(secret, body))


def _cloud(secret: str, request: web.Request, body: bytes) -> bool:
    signature = request.headers.get("X-Hub-Signature-256", "")
    return signature.startswith("sha256=") and _same(
        signature.lower(), body_signature(secret, body))


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
    """Checks the request of one source; `open_` when it has no credential configured
    (accepted only from this machine itself)."""

    source: str
    secret: str
    checker: Checker
    alternative: str = ""  # a second credential (webjs: webhooks.webjs.api_key)
    # (secret, request) -> an incremental check, for sources whose bodies are streamed
    streamer: Callable[[str, web.BaseRequest], WebjsCheck] | None = None

    @property
    def open_(self) -> bool:
        return not self.secret and not self.alternative

    def verify(self, request: web.Request, body: bytes) -> Refusal | None:
        """None when the request is authentic, else why not."""
        if self.open_:
            return None
        verdict = self.checker(self.secret, request, body)
        if verdict is True:
            return None
        if isinstance(verdict, Refusal):
            return verdict
        return Refusal("bad_signature",
                       f"missing or invalid signature for the {self.source} webhook")

    def streamed(self, request: web.BaseRequest) -> StreamCheck:
        """A check fed the body in chunks (only webjs bodies are streamed)."""
        if self.open_:
            return StreamCheck(self.source, None)
        if self.streamer is None:
            raise ValueError(f"the {self.source} webhook's body is not streamed")
        return StreamCheck(self.source, self.streamer(self.secret, request))


class StreamCheck:
    """Feeds a streamed body to a source's check; `refusal()` answers like `verify`."""

    def __init__(self, source: str, checking: WebjsCheck | None) -> None:
        self.source = source
        self._checking = checking

    def update(self, chunk: bytes) -> None:
        if self._checking is not None:
            self._checking.update(chunk)

    def refusal(self) -> Refusal | None:
        if self._checking is None:
            return None
        verdict = self._checking.verdict()
        if verdict is True:
            return None
        if isinstance(verdict, Refusal):
            return verdict
        return Refusal("bad_signature",
                       f"missing or invalid signature for the {self.source} webhook")


def webhook_auth(config: Config) -> dict[str, WebhookAuth]:
    checkers: dict[str, Checker] = {
        "webjs": _webjs_factory(config), "waha": _waha, "cloud": _cloud,
        "evolution": _evolution, "twilio": _twilio_factory(config)}
    alternatives = {"webjs": config["webhooks.webjs.api_key"]}
    api_key, window = config["webhooks.webjs.api_key"], config["webhooks.webjs.replay_window"]
    streamers = {"webjs": lambda secret, request: WebjsCheck(api_key, window, secret, request)}
    return {source: WebhookAuth(source, config[key], checkers[source],
                                alternatives.get(source, ""), streamers.get(source))
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


# Headers a reverse proxy adds (nginx only when told to; Caddy, Traefik, Apache and
# HAProxy by default or by their usual options). Any of them makes a request remote: a
# header can only make a request MORE restricted, so a spoofed one costs nothing.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
                 "X-Real-IP", "Via")
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
        # The built-in Pusher secret is public: a remote client could sign any private
        # channel with it, so remote connections get no private channel while it is in use.
        self.pusher_secret_is_default: bool = (
            config["pusher.app_secret"] == KEYS["pusher.app_secret"].default)
        self.trusted_proxies: tuple[Network, ...] = tuple(
            ipaddress.ip_network(item, strict=False) for item in config["server.trusted_proxies"])
        self._peers: dict[str, bool] = {}  # peer address -> remote? (for these proxies)

    def is_remote(self, request: web.BaseRequest) -> bool:
        """True unless the request came straight from this machine: a proxy header, a
        peer listed in server.trusted_proxies or a peer off loopback make it remote."""
        headers = request.headers
        for name in PROXY_HEADERS:  # (a loop, not any(): no generator per request)
            if name in headers:
                return True
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if not peer:
            return True  # unknown peer (a closing transport): never trusted
        host = peer[0] if isinstance(peer, tuple) else peer
        known = self._peers.get(host)
        if known is None:
            if len(self._peers) > 4096:  # many peers: start over rather than grow
                self._peers.clear()
            known = self._peers[host] = self._peer_is_remote(host)
        return known

    def _peer_is_remote(self, host: str) -> bool:
        """The peer part of `is_remote` (remembered per address: parsing it costs more
        than the rest of a webhook's checks)."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return True  # a unix socket path or similar: not a loopback peer we know
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 on a dual-stack socket
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
