"""The configuration object and the declaration of every key, readable by every layer.

Every key is declared once in `KEYS` with its type, default, allowed values and help.
`daemon/config.py` reads daemon.toml and the environment into a `Config` and checks it;
the layers below only read values from it, so it lives here, beside the metrics.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "CAMPAIGND_"
# Environment variables of the command line that are not configuration keys.
NOT_KEYS = ("CAMPAIGND_CONFIG", "CAMPAIGND_TOKEN", "CAMPAIGND_URL")
SOURCES = ("webjs", "waha", "evolution", "cloud", "twilio")
# The key that authenticates each webhook source (SPEC 3.1).
SOURCE_SECRET = {
    "webjs": "webhooks.webjs.secret",
    "waha": "webhooks.waha.hmac_key",
    "evolution": "webhooks.evolution.apikey",
    "cloud": "webhooks.cloud.app_secret",
    "twilio": "webhooks.twilio.auth_token",
}


@dataclass(frozen=True)
class Key:
    type: type | tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    secret: bool = False
    check: Callable[[Any], str | None] | None = None


# The scheme each source's relay is signed with (actors/relay.py); evolution has none of
# its own (a shared apikey), so its original headers are passed on.
RELAY_SCHEMES = {
    "webjs": "X-Timestamp + X-HMAC-Signature, as the seed's Laravel app checks",
    "waha": "X-Webhook-Hmac, HMAC-SHA512",
    "cloud": "X-Hub-Signature-256, the Meta app secret",
    "twilio": "X-Twilio-Signature over the forward_to URL, the auth token",
}


def _url_check(value: Any) -> str | None:
    if value and not (value.startswith(("http://", "https://")) and len(value) > 8):
        return "must be an http:// or https:// URL, or \"\""
    return None


def _networks_check(value: Any) -> str | None:
    for i, item in enumerate(value):
        try:
            ipaddress.ip_network(item, strict=False)
        except (TypeError, ValueError):
            return f"item {i} ({item!r}) must be an IP address or network like 10.0.0.0/8"
    return None


def _tokens_check(value: Any) -> str | None:
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("token"), str):
            return f"item {i} must be a table with a string 'token'"
        if len(item["token"]) < 16:
            return f"item {i}: a token must be at least 16 characters"
        ws = item.get("workspace", "*")
        if ws != "*" and not (isinstance(ws, int) and not isinstance(ws, bool)):
            return f"item {i}: 'workspace' must be a workspace id (integer) or \"*\""
    return None


def _zone_check(value: Any) -> str | None:
    """An IANA time zone name the system knows (zoneinfo)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return "must be an IANA time zone name like Asia/Jakarta or Europe/Berlin"
    return None


# Default opt-out keywords (SPEC 6.4), compared as whole messages: "Please stop" is a reply.
STOP_KEYWORDS = ("STOP", "STOP ALL", "STOP PROMOTIONS", "STOP PROMO", "UNSUBSCRIBE", "OPT OUT",
                 "BERHENTI", "BERHENTI BERLANGGANAN")
START_KEYWORDS = ("START", "UNSTOP", "MULAI", "MULAI LAGI")


def _words_check(value: Any) -> str | None:
    for i, item in enumerate(value):
        if not isinstance(item, str) or not any(ch.isalnum() for ch in item):
            return f"item {i} ({item!r}) must be a word or phrase"
    return None


# --- sending, completed (SPEC 9): send windows ---------------------------------------
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def _days_check(value: Any) -> str | None:
    if not value or not all(isinstance(d, str) and d.lower()[:3] in WEEKDAYS for d in value):
        return f"must be a non-empty list of day names ({', '.join(WEEKDAYS)})"
    return None


def _hhmm_check(value: Any) -> str | None:
    return None if HHMM.match(value) else "must be a time of day as HH:MM (00:00 to 24:00)"


def _zone_check(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "must be an IANA time zone name such as Asia/Jakarta or UTC"
    return None


KEYS: dict[str, Key] = {
    "server.host": Key(str, "127.0.0.1", "Address to listen on."),
    "server.port": Key(int, 8080, "TCP port (Reverb's default, so Echo needs no change).",
                       minimum=0, maximum=65535),
    "server.max_body_bytes": Key(int, 4 * 1024 * 1024, "Largest accepted request body.",
                                 minimum=1024, maximum=64 * 1024 * 1024),
    "server.webhook_front": Key(bool, True, "Answer the usual webhook request (POST "
                                "/webhooks/<source> with a Content-Length) on campaignd's "
                                "own lean HTTP path instead of aiohttp's request cycle; "
                                "every other request is aiohttp's (docs/architecture.md). "
                                "false: aiohttp serves all."),
    "server.public_url": Key(str, "", "URL the daemon is reached at (for links and Twilio)."),
    "server.require_auth": Key(bool, False, "Require every secret at start whatever the "
                               "listen address (the systemd unit sets it): webhook secrets, "
                               "api.tokens and pusher.app_secret.", ),
    "server.trusted_proxies": Key(list, [], "Addresses or networks of reverse proxies (e.g. "
                                  "[\"127.0.0.1\", \"10.0.0.0/8\"]): a request from one is "
                                  "remote and needs credentials, like one carrying "
                                  "Forwarded / X-Forwarded-For / X-Real-IP.",
                                  check=_networks_check),
    "store.path": Key(str, "campaignd.sqlite3",
                      "SQLite file; relative paths are relative to the config file's folder."),
    "store.synchronous": Key(str, "FULL", "SQLite synchronous mode (SPEC 10.2). FULL: a 2xx "
                             "survives a crash of the process (kill -9) and a power loss "
                             "(fsync at every group commit). NORMAL survives kill -9 only: "
                             "a power loss can take back events already answered 2xx, "
                             "which providers never resend.",
                             choices=("NORMAL", "FULL")),
    "store.busy_timeout_ms": Key(int, 2000, "How long a write waits for a lock before 503.",
                                 minimum=0, maximum=60000),
    "store.failure_hold": Key((int, float), 5.0,
                              "Seconds /readyz keeps reporting a failed write after writes "
                              "succeed again: a nearly full disk that takes some writes "
                              "and refuses others does not flap readiness.",
                              minimum=0, maximum=600),
    "store.checkpoint_interval": Key((int, float), 2.0,
                                     "Seconds between checkpoints (rows written, journal "
                                     "compacted).", minimum=0.05, maximum=3600),
    "ingest.ack_numbering": Key(str, "webjs", "Numbering of integer ACKs on /webhooks/webjs and "
                                "/webhooks/waha: whatsapp-web.js or raw Baileys statuses.",
                                choices=("webjs", "baileys")),
    "ingest.orphan_ttl": Key((int, float), 3600.0, "Seconds an ACK for an unregistered message "
                             "id is kept before it is dropped and counted.",
                             minimum=1, maximum=30 * 86400),
    "ingest.passivate_after": Key((int, float), 300.0, "Idle seconds before a campaign actor "
                                  "is stopped (it comes back on demand).",
                                  minimum=0.1, maximum=86400),
    "webhooks.webjs.enabled": Key(bool, True, "Accept /webhooks/webjs."),
    "webhooks.webjs.secret": Key(str, "", "HMAC-SHA256 key: the seed's X-Timestamp + "
                                 "X-HMAC-Signature, X-Signature: sha256=<hex>, or a Bearer "
                                 "token.", secret=True),
    "webhooks.waha.enabled": Key(bool, True, "Accept /webhooks/waha."),
    "webhooks.waha.hmac_key": Key(str, "", "HMAC-SHA512 key for X-Webhook-Hmac.", secret=True),
    "webhooks.evolution.enabled": Key(bool, True, "Accept /webhooks/evolution."),
    "webhooks.evolution.apikey": Key(str, "", "Token expected as 'apikey' (body or header).",
                                     secret=True),
    "webhooks.cloud.enabled": Key(bool, True, "Accept /webhooks/cloud."),
    "webhooks.cloud.app_secret": Key(str, "", "Meta app secret for X-Hub-Signature-256.",
                                     secret=True),
    "webhooks.cloud.verify_token": Key(str, "", "Token for the GET subscription handshake.",
                                       secret=True),
    "webhooks.twilio.enabled": Key(bool, True, "Accept /webhooks/twilio."),
    "webhooks.twilio.auth_token": Key(str, "", "Twilio auth token for X-Twilio-Signature.",
                                      secret=True),
    "webhooks.twilio.public_url": Key(str, "", "The exact callback URL configured at Twilio "
                                      "(signatures cover it); default: the request's URL."),
    # --- the seed's whatsapp-service and the relay to the app behind campaignd
    # (docs/integration.md) ---
    "webhooks.webjs.api_key": Key(str, "", "Also accept X-API-Key: <this> on /webhooks/webjs "
                                  "(the seed service's earlier versions sent it).",
                                  secret=True),
    "webhooks.webjs.replay_window": Key((int, float), 300.0, "Seconds an X-Timestamp (the "
                                        "seed's signature) may be away from our clock.",
                                        minimum=1, maximum=86400),
    **{f"webhooks.{source}.forward_to": Key(
        str, "", f"Relay every accepted {source} request to this URL (the app behind "
        "campaignd), durably and in order (\"\" = off).", check=_url_check)
       for source in SOURCES},
    **{f"webhooks.{source}.forward_secret": Key(
        str, "", f"Key that signs what is relayed to webhooks.{source}.forward_to ({scheme}); "
        "\"\" = the original headers are passed on.", secret=True)
       for source, scheme in RELAY_SCHEMES.items()},
    "webhooks.forward_max_backlog": Key(int, 100000, "Requests of one source waiting to be "
                                        "relayed at most; beyond, its webhook answers 503 + "
                                        "Retry-After.", minimum=1, maximum=100_000_000),
    "webhooks.forward_timeout": Key((int, float), 10.0, "Seconds before a relayed request "
                                    "counts as failed (retried).", minimum=0.1, maximum=600),
    "webhooks.forward_retry_max": Key((int, float), 30.0, "Longest wait between retries of a "
                                      "relayed request (from 0.5 s, doubling).",
                                      minimum=0.01, maximum=3600),
    "webhooks.forward_set_aside_after": Key(int, 10, "Attempts after which a request the app "
                                            "behind refuses as malformed (HTTP 400, 413, 415, "
                                            "422) is set aside, so the requests after it go "
                                            "on (POST /api/relay/{source}/requeue sends it "
                                            "again); 0 = retry it forever.",
                                            minimum=0, maximum=1_000_000),
    "api.tokens": Key(list, [], "Bearer tokens: [{token = \"...\", workspace = 1 | \"*\"}]. "
                      "Empty: the API is open (only allowed on loopback).", secret=True,
                      check=_tokens_check),
    "pusher.app_id": Key(str, "campaignd", "Pusher app id (informational)."),
    "pusher.app_key": Key(str, "campaignd-key", "Pusher app key: clients connect to /app/{key}."),
    "pusher.app_secret": Key(str, "campaignd-secret", "Signs private-channel auth.", secret=True),
    "pusher.activity_timeout": Key(int, 30, "Seconds of silence before a client pings.",
                                   minimum=5, maximum=600),
    "pusher.coalesce_ms": Key(int, 100, "At most one statistics push per campaign per interval.",
                              minimum=0, maximum=10000),
    "pusher.allow_public_channels": Key(bool, True, "Allow channels without the private- prefix."),
    "pusher.pong_timeout": Key(int, 30, "Seconds a client has to answer a ping (else 4201).",
                               minimum=1, maximum=600),
    "pusher.max_subscriptions": Key(int, 100, "Channels one connection may subscribe to.",
                                    minimum=1, maximum=10000),
    "pusher.max_frame_bytes": Key(int, 16384, "Largest WebSocket frame a client may send.",
                                  minimum=1024, maximum=1024 * 1024),
    "pusher.max_connections": Key(int, 10000, "Open WebSocket connections at most; more are "
                                  "closed with 4100 (over capacity: clients retry later).",
                                  minimum=1, maximum=1_000_000),
    "pusher.max_rows_per_event": Key(int, 250, "Rows in one campaign.messages.updated event; "
                                     "beyond, the event says resync.", minimum=1, maximum=5000),
    # --- sending (docs/sending.md) ---
    "sender.default_gateway": Key(str, "simulator", "Gateway of campaigns created without one.",
                                  choices=("simulator", "http", "waha", "cloud")),
    "sender.default_rate": Key((int, float), 10.0, "Messages per second of a campaign created "
                               "without a rate.", minimum=0.01, maximum=1000),
    "sender.max_rate": Key((int, float), 200.0, "Highest rate a campaign may ask for.",
                           minimum=0.01, maximum=10000),
    "sender.max_in_flight": Key(int, 8, "Gateway calls of one campaign running at once.",
                                minimum=1, maximum=256),
    "sender.max_attempts": Key(int, 5, "Attempts per message for transient errors before it "
                               "is marked failed.", minimum=1, maximum=50),
    "sender.backoff_base": Key((int, float), 0.5, "First retry delay in seconds (doubled per "
                               "attempt, with jitter).", minimum=0.01, maximum=600),
    "sender.backoff_max": Key((int, float), 60.0, "Longest retry delay in seconds.",
                              minimum=0.01, maximum=3600),
    "sender.request_timeout": Key((int, float), 15.0, "Seconds before a gateway call counts as "
                                  "timed out (retried).", minimum=0.1, maximum=600),
    "sender.failure_threshold": Key((int, float), 0.5, "Pause a campaign when this share of its "
                                    "send outcomes failed (0..1).", minimum=0, maximum=1),
    "sender.failure_min_sample": Key(int, 20, "Outcomes needed before the failure share is "
                                     "judged.", minimum=1, maximum=100000),
    "sender.max_recipients": Key(int, 100000, "Most recipients in one created campaign.",
                                 minimum=1, maximum=10000000),
    "sender.webhook_url": Key(str, "", "POST the final statistics here when a campaign "
                              "completes, pauses or fails (\"\" = off)."),
    "sender.webhook_secret": Key(str, "", "HMAC-SHA256 key for the outbound webhook's "
                                 "X-Campaignd-Signature.", secret=True),
    # --- failures and alerts (docs/failures.md) ---
    "sender.retry_limited_by_meta": Key(bool, False, "Retry a message Meta did not deliver "
                                        "because of its per-person marketing limit (Limited by "
                                        "Meta: 131049, 63049, ...) after "
                                        "sender.marketing_cap_retry_after."),
    "sender.marketing_cap_retry_after": Key((int, float), 86400.0, "Seconds before a Limited "
                                            "by Meta message is retried (Meta: wait at least 24 "
                                            "hours).", minimum=60, maximum=30 * 86400),
    "alerts": Key(list, [], "Alert rules, each a [[alerts]] table: metric, threshold, "
                  "direction, window, min_volume, hold, pause (docs/failures.md). Every "
                  "problem is reported per key, e.g. alerts[2].threshold."),
    # --- sending, completed (SPEC 9: send windows, shared account rates) ---
    "sender.window_days": Key(list, list(WEEKDAYS), "Days a campaign created without a "
                              "window may send on (in window_timezone).", check=_days_check),
    "sender.window_from": Key(str, "00:00", "Local time the default send window opens "
                              "(HH:MM).", check=_hhmm_check),
    "sender.window_to": Key(str, "24:00", "Local time the default send window closes "
                            "(HH:MM; at or before window_from: the next day).",
                            check=_hhmm_check),
    "sender.window_timezone": Key(str, "UTC", "IANA time zone of the default send window "
                                  "(e.g. Asia/Jakarta).", check=_zone_check),
    "sender.throttle_decrease": Key((int, float), 0.5, "A throttling answer (HTTP 429, Meta "
                                    "130429) multiplies the account's rate by this.",
                                    minimum=0.05, maximum=0.95),
    "sender.throttle_recovery": Key((int, float), 1.0, "Messages/s the account's rate gains "
                                    "back per second without a throttling answer.",
                                    minimum=0.01, maximum=10000),
    "sender.throttle_min_rate": Key((int, float), 0.5, "The account's rate never goes below "
                                    "this many messages/s.", minimum=0.01, maximum=10000),
    "gateways.cloud.coexistence": Key(bool, False, "The number is also used in the WhatsApp "
                                      "Business app (coexistence): Meta allows it 20 "
                                      "messages/s, so the rate is at most 20."),
    "gateways.simulator.rate": Key((int, float), 0.0, "Messages/s over all campaigns (0 = no "
                                   "gateway limit).", minimum=0, maximum=100000),
    "gateways.simulator.seed": Key(int, 1, "Seed: the same seed gives the same ACK stream."),
    "gateways.simulator.send_latency": Key((int, float), 0.005, "Mean seconds per send call.",
                                           minimum=0, maximum=60),
    "gateways.simulator.sent_after": Key((int, float), 0.2, "Mean seconds to the server ACK.",
                                         minimum=0, maximum=3600),
    "gateways.simulator.delivered_after": Key((int, float), 0.8, "Mean further seconds to "
                                              "delivered.", minimum=0, maximum=3600),
    "gateways.simulator.read_after": Key((int, float), 2.0, "Mean further seconds to read.",
                                         minimum=0, maximum=86400),
    "gateways.simulator.reject_ratio": Key((int, float), 0.02, "Share refused at send time.",
                                           minimum=0, maximum=1),
    "gateways.simulator.failure_ratio": Key((int, float), 0.03, "Share failing after being "
                                            "accepted.", minimum=0, maximum=1),
    "gateways.simulator.delivery_ratio": Key((int, float), 0.95, "Share of the rest delivered.",
                                             minimum=0, maximum=1),
    "gateways.simulator.read_ratio": Key((int, float), 0.6, "Share of the delivered read.",
                                         minimum=0, maximum=1),
    "gateways.simulator.receipts_off_ratio": Key((int, float), 0.1, "Share of recipients with "
                                                 "read receipts off.", minimum=0, maximum=1),
    "gateways.http.url": Key(str, "", "whatsapp-web.js service send endpoint, e.g. "
                             "http://127.0.0.1:3000/api/messages/send."),
    "gateways.http.preset": Key(str, "generic", "Request shape: \"blazz\" = the seed's "
                                "whatsapp-service unchanged (api_key in the body, its errors "
                                "mapped); \"generic\" = {session_id, to, chat_id, message} "
                                "with a Bearer token.", choices=("generic", "blazz")),
    "gateways.http.token": Key(str, "", "The service's key: a Bearer token (generic), or "
                               "the body's api_key (blazz: its API_KEY).", secret=True),
    "gateways.http.id_field": Key(str, "message_id", "Dotted path of the message id in the "
                                  "reply, e.g. data.id._serialized."),
    "gateways.http.session_id": Key(str, "default", "Session id sent with each message."),
    "gateways.http.rate": Key((int, float), 0.0, "Messages/s over all campaigns (0 = none).",
                              minimum=0, maximum=100000),
    "gateways.waha.base_url": Key(str, "", "WAHA base URL, e.g. http://127.0.0.1:3000."),
    "gateways.waha.api_key": Key(str, "", "WAHA X-Api-Key.", secret=True),
    "gateways.waha.session": Key(str, "default", "WAHA session name."),
    "gateways.waha.rate": Key((int, float), 0.0, "Messages/s over all campaigns (0 = none).",
                              minimum=0, maximum=100000),
    "gateways.cloud.base_url": Key(str, "https://graph.facebook.com", "Graph API base URL."),
    "gateways.cloud.version": Key(str, "v21.0", "Graph API version."),
    "gateways.cloud.phone_number_id": Key(str, "", "The sending phone number's id."),
    "gateways.cloud.access_token": Key(str, "", "Bearer token (system user).", secret=True),
    "gateways.cloud.rate": Key((int, float), 80.0, "Messages/s over all campaigns (Cloud API "
                               "default throughput is 80/s).", minimum=0, maximum=100000),
    # --- engagement: replies, button taps, opt-outs (docs/engagement.md) ---
    "webhooks.max_inbound_bytes": Key(int, 32 * 1024 * 1024, "Largest whatsapp-web.js "
                                      "message_received body (its media is streamed past, "
                                      "never stored or decoded).",
                                      minimum=1024, maximum=1024 * 1024 * 1024),
    "gateways.simulator.reply_ratio": Key((int, float), 0.15, "Of the delivered, share that "
                                          "answer (a text or a button tap).",
                                          minimum=0, maximum=1),
    "gateways.simulator.button_ratio": Key((int, float), 0.5, "Of the answers, share that "
                                           "are a quick-reply button tap.",
                                           minimum=0, maximum=1),
    "gateways.simulator.stop_ratio": Key((int, float), 0.02, "Of the delivered, share that "
                                         "send STOP.", minimum=0, maximum=1),
    "gateways.simulator.reply_after": Key((int, float), 5.0, "Mean seconds from delivered "
                                          "(or read) to the answer.", minimum=0, maximum=86400),
    "engagement.reply_window": Key((int, float), 72 * 3600.0, "Seconds after a campaign "
                                   "message is sent during which a reply from its number "
                                   "that quotes nothing is credited to it.",
                                   minimum=60, maximum=90 * 86400),
    "engagement.keep_reply_text": Key(bool, False, "Keep what recipients wrote (shown in the "
                                      "table and CSV). Off: only that and when they replied."),
    "engagement.stop_keywords": Key(list, list(STOP_KEYWORDS), "Whole-message replies or "
                                    "button payloads / titles that opt a number out (case, "
                                    "spaces and punctuation ignored).", check=_words_check),
    "engagement.start_keywords": Key(list, list(START_KEYWORDS), "Whole-message replies or "
                                     "buttons that lift an opt-out.", check=_words_check),
    # --- more than one machine (docs/cluster.md) ---
    "cluster.node": Key(str, "", "This node's name in a cluster (1-16 lowercase letters and "
                        "digits, starting with a letter): its campaign uuids start with it "
                        "and its webhooks arrive at /n/{node}/webhooks/... \"\" = a single "
                        "node: no cluster, no Redis."),
    "cluster.redis_url": Key(str, "", "Redis for live push across nodes (pub/sub) and their "
                             "shared opt-outs (one stream), e.g. redis://10.0.0.5:6379/0; "
                             "required with cluster.node.", secret=True),
    "cluster.channel": Key(str, "campaignd", "The Redis pub/sub channel the nodes of one "
                           "cluster share, and the name of their opt-out stream "
                           "({channel}:stops); another cluster on the same Redis takes "
                           "another.",
                           check=lambda v: None if v.strip() else "must not be empty"),
    "cluster.peers": Key(dict, {}, "The other nodes: {n2 = \"http://10.0.0.2:8080\"}, for "
                         "the campaign list across nodes and private channels of their "
                         "campaigns."),
    "cluster.peer_timeout": Key((int, float), 3.0, "Seconds a peer has to answer before the "
                                "campaign list shows it as not answering.",
                                minimum=0.1, maximum=60),
    "cluster.reconnect_max": Key((int, float), 5.0, "Longest wait between two attempts to "
                                 "reach Redis (from 0.1 s, doubling).",
                                 minimum=0.1, maximum=300),
    # --- analytics across campaigns (docs/insights.md) ---
    "analytics.timezone": Key(str, "Asia/Jakarta", "IANA time zone the best-time heatmaps "
                              "are shown in (weekday and hour of sending and of reading).",
                              check=_zone_check),
    "analytics.best_time_days": Key(int, 90, "Days of sending the best-time heatmaps look "
                                    "back over.", minimum=1, maximum=3650),
    "analytics.min_cell_messages": Key(int, 30, "Delivered messages a heatmap cell needs "
                                       "before its rate is judged (fewer: marked too little "
                                       "data).", minimum=1, maximum=1000000),
    "analytics.prior_strength": Key((int, float), 50.0, "k of the shrinkage: a cell's rate is "
                                    "(reads + k x average) / (delivered + k).",
                                    minimum=0, maximum=1000000),
    "analytics.advice_min_messages": Key(int, 200, "Delivered messages a two-hour block needs "
                                         "before it can be advised.", minimum=1,
                                         maximum=100000000),
    "analytics.engaged_days": Key((int, float), 90.0, "A contact who read or replied within "
                                  "this many days is engaged.", minimum=1, maximum=3650),
    "analytics.unengaged_min_delivered": Key(int, 5, "Delivered messages without a read or "
                                             "reply in engaged_days that make a contact "
                                             "unengaged.", minimum=1, maximum=100000),
    # --- skips (SPEC 9: suppressed and unreachable recipients, docs/sending.md) ---
    "sender.skip_unreachable": Key(bool, False, "Skip recipients in the unreachable tier "
                                   "(their last 2 sends failed as Not on WhatsApp) in "
                                   "campaigns created without skip_unreachable. Suppressed "
                                   "numbers are always skipped."),
    # --- recovery images (issue 20, docs/reliability.md "Recovery images") ---
    "store.image_chunk_rows": Key(int, 32768, "Rows per chunk of a campaign's recovery "
                                  "image: a checkpoint rewrites only the chunks whose rows "
                                  "changed since the previous image.",
                                  minimum=1, maximum=1 << 24),
    # --- recovery10 (issue 20): images that keep close behind a flood ---
    "store.image_backlog_events": Key(int, 20000, "Events dispatched since the newest "
                                      "recovery image that make the next one be taken at "
                                      "once (a restart after kill -9 replays about this "
                                      "many, whatever the checkpoint interval).",
                                      minimum=1, maximum=100_000_000),
    "log.level": Key(str, "info", "Log level.", choices=("debug", "info", "warning", "error")),
    "log.format": Key(str, "auto", "auto: readable on a terminal, JSON lines otherwise.",
                      choices=("auto", "json", "console")),
}


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Config:
    """The effective configuration: every key of `KEYS`, validated."""

    def __init__(self, values: dict[str, Any], base_dir: Path, path: Path | None) -> None:
        self.values = values
        self.base_dir = base_dir
        self.path = path

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def with_overrides(self, **overrides: Any) -> Config:
        values = dict(self.values)
        for key, value in overrides.items():
            values[key.replace("__", ".")] = value
        return Config(values, self.base_dir, self.path)

    @property
    def db_path(self) -> Path:
        path = Path(self["store.path"])
        return path if path.is_absolute() else self.base_dir / path

    @property
    def on_loopback(self) -> bool:
        return is_loopback(self["server.host"])

    def masked(self) -> dict[str, Any]:
        """The values with every secret replaced by "***" (token workspaces stay visible)."""
        return {k: mask(k, v) for k, v in sorted(self.values.items())}


def mask(name: str, value: Any) -> Any:
    key = KEYS.get(name)
    if key is None or not key.secret or not value:
        return value
    if isinstance(value, list):
        return [{**item, "token": "***"} if isinstance(item, Mapping) else "***"
                for item in value]
    return "***"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace(".", "__")


