"""The relay: every request a source accepted, passed on to the app behind campaignd.

campaignd stands where the gateway's webhooks used to go (the seed's whatsapp-service
posts ALL its events to one URL), so the app that was there (the seed's Laravel app)
must still get every one of them: sessions, QR codes, incoming chats and the ACKs too.

- Durable first: the webhook handler hands the request (raw body and the headers worth
  passing on) to the journal with its events; both are committed together
  (store/journal.py, store/relay.py) before the gateway gets its 2xx, which therefore
  never waits for the app behind.
- In order, at least once: one worker per source sends that source's outbox rows one at
  a time in commit order, and moves on only when the app answered 2xx. Delivered rows
  are deleted in batches, so after a crash up to a batch may be sent again.
- Signed for the app behind with `webhooks.<source>.forward_secret`, each source with its
  own scheme (domain/signatures.py): webjs as the seed's service signs (X-Timestamp +
  X-HMAC-Signature, a fresh timestamp at each attempt: the Laravel middleware allows
  300 s), Cloud X-Hub-Signature-256, WAHA X-Webhook-Hmac, Twilio X-Twilio-Signature over
  the forward_to URL. Without a forward_secret (and for Evolution) the original headers
  are passed on as they came.
- While the app is down: retries with exponential backoff, a bounded backlog per source
  (`webhooks.forward_max_backlog`; beyond it the webhook answers 503 + Retry-After and
  stores nothing), metrics, logs and a status for the page.
- A request the app refuses as malformed (400, 413, 415, 422: its body, not the app's
  state or our settings) `webhooks.forward_set_aside_after` times is set aside, kept
  whole in SQLite, so one bad request does not hold every later one forever; an operator
  puts them back with `requeue` once the app takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from core.aio import cancel_and_wait
from core.config import SOURCES, Config
from core.metrics import Metrics
from domain.signatures import (
    body_signature,
    form_params,
    seed_signature,
    twilio_signature,
    waha_signature,
)
from store.db import StoreUnavailable
from store.relay import Outbox, OutboxEntry, OutboxRow

log = structlog.get_logger(__name__)

# Not passed on: they describe the connection to campaignd, not the request.
NOT_RELAYED = frozenset((
    "host", "content-length", "connection", "keep-alive", "transfer-encoding", "te",
    "trailer", "upgrade", "proxy-authorization", "proxy-authenticate", "proxy-connection",
    "expect", "content-encoding"))
# The credentials a source's scheme replaces when it re-signs for the app behind.
SIGNATURE_HEADERS = {
    "webjs": frozenset(("x-hmac-signature", "x-signature", "x-timestamp", "x-api-key",
                        "authorization")),
    "cloud": frozenset(("x-hub-signature-256", "x-hub-signature")),
    "waha": frozenset(("x-webhook-hmac", "x-webhook-hmac-algorithm")),
    "twilio": frozenset(("x-twilio-signature",)),
}
FIRST_RETRY = 0.5  # seconds; doubled per failed attempt up to webhooks.forward_retry_max
FORGET_EVERY = 64  # delivered rows deleted per transaction (re-sent after a crash at most)
LOG_EVERY = 10  # a failing source logs its 1st, 11th, 21st, ... failure
# The app refuses the request itself (Laravel's validation answers 422): set aside after
# webhooks.forward_set_aside_after attempts. Every other refusal is retried forever.
SET_ASIDE_STATUSES = frozenset((400, 413, 415, 422))


@dataclass
class SourceState:
    """What the page and the metrics show of one source's relay."""

    backlog: int = 0
    oldest: float | None = None  # receive time of the oldest request waiting
    forwarded: int = 0
    failures: int = 0
    failing_since: float | None = None
    consecutive: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    next_retry_at: float | None = None
    full_logged: bool = False
    set_aside: int = 0  # requests set aside, waiting for an operator's requeue
    last_set_aside: str | None = None


class Relay:
    """A runtime extension: `start()` after the core, `stop()` before it."""

    def __init__(self, config: Callable[[], Config], outbox: Outbox, metrics: Metrics) -> None:
        self._config = config  # read at each use: SIGHUP replaces the configuration
        self.outbox = outbox
        self.metrics = metrics
        self.state = {source: SourceState() for source in SOURCES}
        self.session: aiohttp.ClientSession | None = None
        self._wake: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        for source in SOURCES:
            metrics.relay_oldest.labels(source).set_function(self._age_of(source))

    # --- the webhook path (on the loop, never waits) ----------------------------------

    def enabled(self, source: str) -> bool:
        return bool(self._config()[f"webhooks.{source}.forward_to"])

    def full(self, source: str) -> bool:
        """The source's backlog is at its bound: its webhook answers 503 for now."""
        st = self.state[source]
        if st.backlog < self._config()["webhooks.forward_max_backlog"]:
            st.full_logged = False
            return False
        self.metrics.relay_refused.labels(source).inc()
        if not st.full_logged:
            st.full_logged = True
            log.warning("relay.backlog_full", source=source, backlog=st.backlog,
                        last_error=st.last_error,
                        advice="the app behind campaignd is not taking requests; the "
                               "gateway's webhooks get 503 until the backlog drains")
        return True

    @staticmethod
    def entry(source: str, headers: Iterable[tuple[str, str]], body: bytes) -> OutboxEntry:
        """The request as it will be relayed: the raw body and its end-to-end headers."""
        kept = []
        for name, value in headers:
            if name.lower() in NOT_RELAYED:
                continue
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # invalid bytes in a header: not passed on
                continue
            kept.append((name, value))
        return OutboxEntry(source, time.time(), tuple(kept), body)

    def committed(self, relayed: dict[str, int]) -> None:
        """After a journal commit wrote outbox rows: count them, wake the workers."""
        now = time.time()
        for source, count in relayed.items():
            st = self.state[source]
            if st.backlog == 0:
                st.oldest = now
            st.backlog += count
            self.metrics.relay_backlog.labels(source).set(st.backlog)
            wake = self._wake.get(source)
            if wake is not None:
                wake.set()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()
        waiting = await self.outbox.backlog()
        set_aside = await self.outbox.set_aside_counts()
        for source in SOURCES:
            count, oldest = waiting.get(source, (0, None))
            st = self.state[source]
            st.backlog, st.oldest = count, oldest
            st.set_aside = set_aside.get(source, 0)
            self.metrics.relay_backlog.labels(source).set(count)
            if count:
                log.info("relay.backlog_found", source=source, backlog=count,
                         forward_to=_safe_url(self._config()[f"webhooks.{source}.forward_to"]))
            self._wake[source] = asyncio.Event()
            self._workers[source] = asyncio.create_task(self._run(source),
                                                        name=f"relay-{source}")

    async def stop(self) -> None:
        for task in self._workers.values():
            await cancel_and_wait(task)
        self._workers.clear()
        if self.session is not None:
            await self.session.close()
            self.session = None

    # --- status (the API and the page) --------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = time.time()
        out = {}
        for source, st in self.state.items():
            url = self._config()[f"webhooks.{source}.forward_to"]
            if not url and not st.backlog and not st.set_aside:
                continue
            out[source] = {
                "forward_to": _safe_url(url) or None,
                "backlog": st.backlog,
                "oldest_age": round(now - st.oldest, 1) if st.backlog and st.oldest else 0.0,
                "forwarded": st.forwarded,
                "failures": st.failures,
                "failing": st.consecutive > 0,
                "failing_since": st.failing_since,
                "last_error": st.last_error,
                "last_error_at": st.last_error_at,
                "next_retry_in": (round(max(0.0, st.next_retry_at - now), 1)
                                  if st.consecutive and st.next_retry_at else None),
                "set_aside": st.set_aside,
                "last_set_aside": st.last_set_aside,
            }
        return out

    async def requeue(self, source: str) -> int:
        """Put the source's set-aside requests back at the end of its queue; how many."""
        moved = await self.outbox.requeue(source)
        st = self.state[source]
        st.set_aside = 0
        if moved:
            log.info("relay.requeued", source=source, requests=moved)
            self.committed({source: moved})
        return moved

    def _age_of(self, source: str) -> Callable[[], float]:
        def age() -> float:
            st = self.state[source]
            return max(0.0, time.time() - st.oldest) if st.backlog and st.oldest else 0.0
        return age

    # --- the worker of one source ---------------------------------------------------------

    async def _run(self, source: str) -> None:
        """The worker; a bug in one round is logged and the worker starts over from the
        oldest row still stored (re-sending is within at-least-once)."""
        while True:
            try:
                await self._relay_all(source)
            except Exception:
                log.exception("relay.worker_failed", source=source)
                await asyncio.sleep(1.0)

    async def _relay_all(self, source: str) -> None:
        st = self.state[source]
        wake = self._wake[source]
        last_id = 0  # the last row delivered
        forgotten = 0  # the last row deleted
        while True:
            wake.clear()  # before the read: a commit after it sets the event again
            row = await self._retry_store(self.outbox.next_row, source, last_id)
            if row is None:
                if last_id > forgotten:
                    await self._retry_store(self.outbox.delete_through, source, last_id)
                    forgotten = last_id
                await wake.wait()
                continue
            st.oldest = row.received_at
            delivered = await self._deliver(row)
            last_id = row.id
            st.backlog = max(0, st.backlog - 1)
            if delivered:
                st.forwarded += 1
                self.metrics.relay_forwarded.labels(source).inc()
            self.metrics.relay_backlog.labels(source).set(st.backlog)
            if last_id - forgotten >= FORGET_EVERY or not st.backlog:
                await self._retry_store(self.outbox.delete_through, source, last_id)
                forgotten = last_id

    async def _deliver(self, row: OutboxRow) -> bool:
        """Send one row until the app behind accepts it (True), or it is set aside."""
        st = self.state[row.source]
        attempt = 0
        while True:
            config = self._config()
            url = config[f"webhooks.{row.source}.forward_to"]
            if not url:  # switched off by a reload with a backlog: keep it, wait
                await asyncio.sleep(1.0)
                continue
            secret = config.values.get(f"webhooks.{row.source}.forward_secret", "")
            problem = await self._post(row, url, secret, config["webhooks.forward_timeout"])
            if problem is None:
                if st.consecutive:
                    log.info("relay.recovered", source=row.source, after_failures=st.consecutive,
                             backlog=st.backlog)
                st.consecutive = 0
                st.failing_since = st.next_retry_at = None
                return True
            reason, detail, status = problem
            attempt += 1
            now = time.time()
            st.failures += 1
            st.consecutive += 1
            st.failing_since = st.failing_since or now
            st.last_error, st.last_error_at = detail, now
            self.metrics.relay_failures.labels(row.source, reason).inc()
            limit = config["webhooks.forward_set_aside_after"]
            if status in SET_ASIDE_STATUSES and limit and attempt >= limit:
                await self._retry_store(self.outbox.set_aside, row, status, detail)
                st.set_aside += 1
                st.last_set_aside = detail
                st.consecutive = 0
                st.failing_since = st.next_retry_at = None
                self.metrics.relay_set_aside.labels(row.source).inc()
                log.warning("relay.set_aside", source=row.source, forward_to=_safe_url(url),
                            error=detail, attempts=attempt, received_at=row.received_at,
                            advice="the app refuses this request as malformed; the ones "
                                   "after it go on. Fix the app, then POST "
                                   f"/api/relay/{row.source}/requeue")
                return False
            delay = min(config["webhooks.forward_retry_max"], FIRST_RETRY * 2 ** (attempt - 1))
            st.next_retry_at = now + delay
            if st.consecutive % LOG_EVERY == 1:
                log.warning("relay.failed", source=row.source, forward_to=_safe_url(url),
                            error=detail, attempt=attempt, retry_in=round(delay, 2),
                            backlog=st.backlog)
            await asyncio.sleep(delay)

    async def _post(self, row: OutboxRow, url: str, secret: str, timeout: float
                    ) -> tuple[str, str, int] | None:
        """None when the app accepted the request, else (metric reason, detail, HTTP
        status or 0)."""
        assert self.session is not None
        headers = signed_headers(row, url, secret, time.time())
        try:
            async with self.session.post(url, data=row.body, headers=headers,
                                         allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                answer = await resp.read()
                if 200 <= resp.status < 300:
                    return None
                text = answer[:200].decode("utf-8", "replace").strip()
                return (f"http_{resp.status // 100}xx",
                        f"HTTP {resp.status}" + (f": {text}" if text else ""), resp.status)
        except TimeoutError:
            return "timeout", f"no answer within {timeout:g} s", 0
        except aiohttp.ClientError as exc:
            return "connection", f"{type(exc).__name__}: {exc}"[:300], 0

    async def _retry_store(self, work: Callable[..., Any], *args: Any) -> Any:
        """Storage failing: wait and try again (the rows stay where they are)."""
        for attempt in range(1, 1_000_000):
            try:
                return await work(*args)
            except StoreUnavailable as exc:
                if attempt % LOG_EVERY == 1:
                    log.warning("relay.store_failed", error=str(exc), attempt=attempt)
                await asyncio.sleep(min(5.0, 0.1 * attempt))
        return None


def signed_headers(row: OutboxRow, url: str, secret: str, now: float) -> list[tuple[str, str]]:
    """The row's headers, re-signed for the app behind with the source's scheme."""
    replaced = SIGNATURE_HEADERS.get(row.source) if secret else None
    headers = [(k, v) for k, v in row.headers if not replaced or k.lower() not in replaced]
    if not replaced:
        return headers
    if row.source == "webjs":
        timestamp = str(int(now))
        headers += [("X-Timestamp", timestamp),
                    ("X-HMAC-Signature", seed_signature(secret, timestamp, row.body))]
    elif row.source == "cloud":
        headers.append(("X-Hub-Signature-256", body_signature(secret, row.body)))
    elif row.source == "waha":
        headers += [("X-Webhook-Hmac", waha_signature(secret, row.body)),
                    ("X-Webhook-Hmac-Algorithm", "sha512")]
    elif row.source == "twilio":
        headers.append(("X-Twilio-Signature",
                        twilio_signature(secret, url, form_params(row.body))))
    return headers


def _safe_url(url: str) -> str:
    """A URL without its user:password part (it may be logged and shown)."""
    if not url:
        return ""
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.username or parts.password:
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            return parts._replace(netloc=host + port).geturl()
    return url
