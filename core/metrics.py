"""Prometheus metrics, one registry per daemon instance (tests run several at once)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from core.config import SOURCES

OUTCOMES = ("applied", "duplicate", "orphaned", "rejected")


class LoopHistogram:
    """One label value's buckets, observed from the event loop only: a list index and two
    additions, where prometheus_client's Histogram takes a lock for its sum and another
    for the bucket (every webhook request observes one: ~2 us of the loop's time each)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class LoopHistograms:
    """A histogram with one label whose children are `LoopHistogram`s, exported as
    prometheus_client's own would be (_bucket, _count, _sum). Not thread-safe by design:
    observe it only on the loop (it is read on the loop too, by GET /metrics)."""

    def __init__(self, name: str, documentation: str, label: str, values: Iterable[str],
                 buckets: Iterable[float], registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.bounds = (*sorted(buckets), float("inf"))
        self.children = {value: LoopHistogram(self.bounds) for value in values}
        registry.register(self)

    def labels(self, value: str) -> LoopHistogram:
        child = self.children.get(value)
        if child is None:
            child = self.children[value] = LoopHistogram(self.bounds)
        return child

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, child in self.children.items():
            total, buckets = 0, []
            for bound, count in zip(self.bounds, child.counts, strict=True):
                total += count
                buckets.append((floatToGoString(bound), total))
            family.add_metric([value], buckets, child.sum)
        yield family


class LoopCounts:
    """Counters with one label, counted from the event loop only (a dict entry and an
    addition, no lock: the front counts every request), exported as prometheus_client's
    own Counter would be."""

    def __init__(self, name: str, documentation: str, label: str, values: Iterable[str],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.counts = dict.fromkeys(values, 0)
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in self.counts.items():
            family.add_metric([value], count)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "campaignd_events_ingested",
            "Status events by source and outcome (applied, duplicate, orphaned, rejected).",
            ["source", "outcome"],
            registry=r,
        )
        self.orphans_pending = Gauge(
            "campaignd_orphans_pending", "Events waiting for their message id.", registry=r
        )
        self.orphans_expired = Counter(
            "campaignd_orphans_expired",
            "Orphan events dropped because their id was never registered.",
            registry=r,
        )
        # Observed by every webhook request, on the loop: no locks (LoopHistograms).
        self.webhook_latency = LoopHistograms(
            "campaignd_webhook_seconds",
            "Time from a webhook's arrival to its answer.",
            "source", SOURCES,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        # Bound once: a webhook request should not pay for a labels() lookup.
        self.webhook_seconds = {source: self.webhook_latency.labels(source)
                                for source in SOURCES}
        self.journal_commit = Histogram(
            "campaignd_journal_commit_seconds",
            "Duration of one group commit of the journal.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
            registry=r,
        )
        self.journal_batch = Histogram(
            "campaignd_journal_batch_requests",
            "Requests sharing one journal commit.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.snapshot_seconds = Histogram(
            "campaignd_snapshot_seconds",
            "Duration of a checkpoint (collect dirty rows, write, compact the journal).",
            registry=r,
        )
        self.active_campaigns = Gauge(
            "campaignd_active_campaign_actors", "Campaign actors in memory.", registry=r
        )
        self.ws_connections = Gauge(
            "campaignd_websocket_connections", "Open WebSocket connections.", registry=r
        )
        self.ws_frames = Counter(
            "campaignd_websocket_frames",
            "WebSocket frames sent, and updates dropped by coalescing.",
            ["outcome"],
            registry=r,
        )
        # engagement (SPEC 6)
        self.inbound = Counter(
            "campaignd_inbound",
            "Inbound messages by source and outcome when first decided: credited (to a "
            "campaign message), unattributed (a reply to no campaign message), duplicate.",
            ["source", "outcome"],
            registry=r,
        )
        self.inbound_live = Gauge(
            "campaignd_inbound_live",
            "Inbound events inside their reply window (their credit may still move).",
            registry=r,
        )
        self.sends = Counter(
            "campaignd_sends", "Send attempts by gateway and outcome.", ["gateway", "outcome"],
            registry=r,
        )
        # --- events that are not ours, and the relay (actors/relay.py) ---
        self.webhook_ignored = Counter(
            "campaignd_webhook_ignored",
            "Webhook events accepted (2xx) but not used: not delivery statuses (sessions, QR "
            "codes, typing, ...), by source and event name.", ["source", "event"], registry=r)
        self.front = LoopCounts(
            "campaignd_http_front",
            "Requests the webhook front answered itself (answered), and connections it "
            "handed to aiohttp (handed_over) for a request of another kind (web/front.py).",
            "outcome", ("answered", "handed_over"), r)
        self.relay_backlog = Gauge(
            "campaignd_relay_backlog", "Accepted requests waiting to be relayed.", ["source"],
            registry=r)
        self.relay_oldest = Gauge(
            "campaignd_relay_oldest_seconds",
            "Age of the oldest request waiting to be relayed (0: none waiting).", ["source"],
            registry=r)
        self.relay_forwarded = Counter(
            "campaignd_relay_forwarded",
            "Requests relayed and accepted (2xx) by the app behind campaignd.", ["source"],
            registry=r)
        self.relay_failures = Counter(
            "campaignd_relay_failures",
            "Relay attempts that failed and will be retried, by reason (http_4xx, http_5xx, "
            "timeout, connection).", ["source", "reason"], registry=r)
        self.relay_set_aside = Counter(
            "campaignd_relay_set_aside",
            "Relayed requests the app behind refused as malformed (400, 413, 415, 422) "
            "webhooks.forward_set_aside_after times, set aside so the ones after them go on.",
            ["source"], registry=r)
        self.relay_refused = Counter(
            "campaignd_relay_backlog_full",
            "Webhook requests answered 503 because their source's relay backlog was full.",
            ["source"], registry=r)
        # --- failures and alerts (docs/failures.md) ---
        self.alerts_firing = Gauge(
            "campaignd_alerts_firing", "Campaigns on which an alert rule is firing now.",
            ["rule"], registry=r,
        )
        self.alert_notices = Counter(
            "campaignd_alert_notices", "Alert notices sent (firing, cleared) by rule.",
            ["rule", "state"], registry=r,
        )
        self.account_events = Counter(
            "campaignd_account_events", "Meta account and template webhooks stored, by field.",
            ["field"], registry=r,
        )
        # Known label sets start at 0, so dashboards and rate() see them before the first
        # event (a series that appears only later hides its first increment).
        for source in SOURCES:
            for outcome in OUTCOMES:
                self.events.labels(source, outcome)
        for source in SOURCES:
            self.relay_backlog.labels(source)
            self.relay_forwarded.labels(source)
            self.relay_refused.labels(source)
        for outcome in ("sent", "coalesced"):
            self.ws_frames.labels(outcome)
