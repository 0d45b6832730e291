"""Alert rules (SPEC 7.2): what they say, how they are checked, when they fire and clear.

Pure: the engine is given each campaign's statistics and the time (a clock the caller
owns, so tests control it) and answers what to announce. It never polls: it is called
when statistics change; the only timer it asks for is the end of a hold time, so an
alert can clear while nothing else happens.

A rule's metric is measured over its `window` from the counts in the statistics: the
change of numerator and denominator since the oldest sample inside the window (samples
are kept at most every window / 50 seconds, so memory per campaign and rule is
bounded). `window = 0` measures the whole campaign. A statistics key that is not one of
the count-based metrics is read as it is (whole campaign), so a rule can name any
statistics key a later release adds.

Firing: over the threshold with at least `min_volume` messages in the window. It is
announced once; while it stays over it is announced again at most once per window
(never, with window 0). It clears once it has stayed under for `hold` seconds.

What is firing outlives a restart (`StoredAlert`, kept by store/alerts.py): the engine
is given it back with `restore`, so a campaign still over its threshold is not announced
again, its next repeat still waits out the window from when it was announced, and a hold
time that had begun goes on from when it began.
"""

from __future__ import annotations

import difflib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from domain.failures import CATEGORY, CATEGORY_NAMES

# metric -> (numerator key, denominator keys, default direction)
COUNT_METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "failure_rate": ("total_failed_count", ("total_sent_count", "total_failed_count"),
                     "above"),
    "category_share": ("", ("total_sent_count", "total_failed_count"), "above"),
    "delivery_rate": ("total_delivered_count", ("total_sent_count",), "below"),
    "read_rate": ("total_read_count", ("total_delivered_count",), "below"),
    "reply_rate": ("total_replied_count", ("total_delivered_count",), "below"),
}
DIRECTIONS = ("above", "below")
FIELDS = ("name", "metric", "category", "threshold", "direction", "window", "min_volume",
          "hold", "pause")
DEFAULT_WINDOW = 3600.0
DEFAULT_MIN_VOLUME = 50
DEFAULT_HOLD = 900.0
SAMPLES_PER_WINDOW = 50


@dataclass(frozen=True, slots=True)
class AlertRule:
    index: int
    name: str
    metric: str
    threshold: float
    direction: str
    window: float
    min_volume: int
    hold: float
    pause: bool
    category: str | None = None

    def describe(self) -> str:
        what = f"{self.metric} of {self.category}" if self.category else self.metric
        return f"{what} {self.direction} {self.threshold:g}"

    def fingerprint(self) -> str:
        """What the rule measures and where its limit is: a stored alert of a rule whose
        fingerprint changed (the operator edited it) is judged afresh, not restored."""
        return (f"{self.metric}|{self.category or ''}|{self.direction}|{self.threshold:g}|"
                f"{self.window:g}|{self.min_volume}")


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert that was firing when last written: its campaign, its rule's name and
    fingerprint, when it was last announced, the alert as shown, and since when it has
    stayed under its threshold (its hold time running), if it has."""

    campaign_no: int
    rule: str
    fingerprint: str
    fired_at: float
    alert: dict[str, Any]
    under_since: float | None = None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_rules(raw: Any) -> tuple[list[AlertRule], list[str]]:
    """The `[[alerts]]` tables as rules, and every problem, each naming its key
    (`alerts[2].threshold = 'x': must be a number`)."""
    if not isinstance(raw, list):
        return [], [f"alerts = {raw!r}: must be an array of tables ([[alerts]])"]
    rules: list[AlertRule] = []
    problems: list[str] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        at = f"alerts[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{at}: must be a table with a metric and a threshold")
            continue
        before = len(problems)
        for key in item:
            if key not in FIELDS:
                hint = difflib.get_close_matches(str(key), FIELDS, n=1)
                problems.append(f"{at}.{key}: unknown key" + (
                    f" (did you mean {hint[0]!r}?)" if hint else f"; one of {', '.join(FIELDS)}"))
        metric = item.get("metric")
        if not isinstance(metric, str) or not metric:
            problems.append(f"{at}.metric = {metric!r}: required, one of "
                            f"{', '.join(COUNT_METRICS)} or a numeric statistics key")
            metric = ""
        category = item.get("category")
        if metric == "category_share":
            if category not in CATEGORY_NAMES:
                problems.append(f"{at}.category = {category!r}: category_share needs one of "
                                f"{', '.join(CATEGORY_NAMES)}")
        elif category is not None:
            problems.append(f"{at}.category: only used with metric = \"category_share\"")
        threshold = item.get("threshold")
        if not _number(threshold):
            problems.append(f"{at}.threshold = {threshold!r}: required, must be a number")
        elif metric in COUNT_METRICS and not 0 <= threshold <= 100:
            problems.append(f"{at}.threshold = {threshold!r}: out of range, must be a "
                            "percentage from 0 to 100")
        default_direction = COUNT_METRICS.get(metric, ("", (), "above"))[2]
        direction = item.get("direction", default_direction)
        if direction not in DIRECTIONS:
            problems.append(f"{at}.direction = {direction!r}: must be 'above' or 'below'")
        window = item.get("window", DEFAULT_WINDOW)
        if not _number(window) or not 0 <= window <= 30 * 86400:
            problems.append(f"{at}.window = {window!r}: must be seconds from 0 (the whole "
                            "campaign) to 2592000")
        min_volume = item.get("min_volume", DEFAULT_MIN_VOLUME)
        if isinstance(min_volume, bool) or not isinstance(min_volume, int) or min_volume < 1:
            problems.append(f"{at}.min_volume = {min_volume!r}: must be an integer of at "
                            "least 1")
        hold = item.get("hold", DEFAULT_HOLD)
        if not _number(hold) or not 0 <= hold <= 7 * 86400:
            problems.append(f"{at}.hold = {hold!r}: must be seconds from 0 to 604800")
        pause = item.get("pause", False)
        if not isinstance(pause, bool):
            problems.append(f"{at}.pause = {pause!r}: must be true or false")
        name = item.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()
                                 or len(name) > 80):
            problems.append(f"{at}.name = {name!r}: must be a non-empty string of at most 80 "
                            "characters")
            name = None
        if len(problems) > before:
            continue
        name = name.strip() if name else (f"{metric}:{category}" if category else metric)
        if name in names:
            problems.append(f"{at}.name = {name!r}: another rule has this name; give each "
                            "rule its own name")
            continue
        names.add(name)
        rules.append(AlertRule(i, name, metric, float(threshold), direction, float(window),
                               min_volume, float(hold), pause, category))
    return rules, problems


# --- measuring ---------------------------------------------------------------------------


def counts(rule: AlertRule, stats: dict[str, Any]) -> tuple[float, float] | None:
    """(numerator, denominator) of a count-based metric; None to read the value as is."""
    spec = COUNT_METRICS.get(rule.metric)
    if spec is None:
        return None
    numerator_key, denominator_keys, _ = spec
    if rule.metric == "category_share":
        numerator = next((e.get("count", 0) for e in stats.get("failures") or ()
                          if e.get("category") == rule.category), 0)
    elif numerator_key in stats:
        numerator = stats[numerator_key]
    else:
        return None  # e.g. reply_rate before total_replied_count exists
    try:
        return float(numerator), float(sum(stats.get(k, 0) for k in denominator_keys))
    except (TypeError, ValueError):
        return None


@dataclass(slots=True)
class Reading:
    value: float | None
    volume: float


@dataclass(slots=True)
class _Track:
    """One rule on one campaign: samples for the window, and the alert's state."""

    samples: deque[tuple[float, float, float]] = field(default_factory=deque)
    firing: bool = False
    fired_at: float = 0.0
    under_since: float | None = None
    last: Reading | None = None


def read(rule: AlertRule, stats: dict[str, Any], track: _Track, now: float) -> Reading:
    pair = counts(rule, stats)
    if pair is None:
        value = stats.get(rule.metric)
        volume = stats.get("total_sent_count", 0) + stats.get("total_failed_count", 0)
        return Reading(float(value) if _number(value) else None, float(volume))
    numerator, denominator = pair
    if rule.window > 0:
        samples = track.samples
        if not samples or now - samples[-1][0] >= rule.window / SAMPLES_PER_WINDOW:
            samples.append((now, numerator, denominator))
        # The newest sample at or before the window's start is the baseline; everything
        # older goes. Until the campaign has been seen for a window, the baseline is zero.
        while len(samples) > 1 and samples[1][0] <= now - rule.window:
            samples.popleft()
        base_n, base_d = (samples[0][1], samples[0][2]) if samples[0][0] <= now - \
            rule.window else (0.0, 0.0)
        numerator, denominator = numerator - base_n, denominator - base_d
    if denominator <= 0:
        return Reading(None, 0.0)
    return Reading(round(numerator * 100.0 / denominator, 1), denominator)


# --- firing and clearing -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notice:
    """Something to announce: an alert fired (again) or cleared."""

    rule: AlertRule
    state: str  # "firing" | "cleared"
    value: float | None
    volume: float
    at: float
    repeat: bool = False  # firing again after a window while still over

    def as_dict(self) -> dict[str, Any]:
        category = CATEGORY.get(self.rule.category or "")
        return {"rule": self.rule.name, "metric": self.rule.metric,
                "category": self.rule.category,
                "category_label": category.label if category else None,
                "threshold": self.rule.threshold, "direction": self.rule.direction,
                "window": self.rule.window, "min_volume": self.rule.min_volume,
                "value": self.value, "volume": int(self.volume), "state": self.state,
                "pause": self.rule.pause, "repeat": self.repeat,
                "message": self.message()}

    def message(self) -> str:
        what = (f"{self.rule.category} share" if self.rule.category
                else self.rule.metric.replace("_", " "))
        span = (f"over the last {_duration(self.rule.window)}" if self.rule.window
                else "over the whole campaign")
        if self.state == "cleared":
            return (f"{self.rule.name}: back to normal ({what} {self.value}% {span}, "
                    f"limit {self.rule.direction} {self.rule.threshold:g}%)")
        return (f"{self.rule.name}: {what} is {self.value}% {span} "
                f"({self.rule.direction} {self.rule.threshold:g}%, {int(self.volume)} "
                f"messages)")


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


class AlertEngine:
    """Every rule on every campaign it has seen. Not thread-safe: one owner."""

    def __init__(self, rules: list[AlertRule]) -> None:
        self.rules = rules
        self.tracks: dict[tuple[int, int], _Track] = {}

    def check(self, campaign: int, stats: dict[str, Any], now: float
              ) -> tuple[list[Notice], float | None]:
        """Notices to announce, and when to check again if nothing changes (the end of
        a hold time), or None."""
        notices: list[Notice] = []
        wake: float | None = None
        for rule in self.rules:
            track = self.tracks.setdefault((campaign, rule.index), _Track())
            reading = read(rule, stats, track, now)
            track.last = reading
            over = (reading.value is not None and reading.volume >= rule.min_volume and (
                reading.value > rule.threshold if rule.direction == "above"
                else reading.value < rule.threshold))
            if over:
                track.under_since = None
                if not track.firing:
                    track.firing, track.fired_at = True, now
                    notices.append(Notice(rule, "firing", reading.value, reading.volume, now))
                elif rule.window > 0 and now - track.fired_at >= rule.window:
                    track.fired_at = now
                    notices.append(Notice(rule, "firing", reading.value, reading.volume, now,
                                          repeat=True))
                continue
            if not track.firing:
                continue
            if track.under_since is None:
                track.under_since = now
            if now - track.under_since >= rule.hold:
                track.firing, track.under_since = False, None
                notices.append(Notice(rule, "cleared", reading.value, reading.volume, now))
            else:
                due = track.under_since + rule.hold
                wake = due if wake is None else min(wake, due)
        return notices, wake

    def recheck(self, campaign: int, now: float) -> tuple[list[Notice], float | None]:
        """The end of a hold time with no new statistics: judge the last readings again."""
        notices: list[Notice] = []
        wake: float | None = None
        for rule in self.rules:
            track = self.tracks.get((campaign, rule.index))
            if track is None or not track.firing or track.under_since is None:
                continue
            if now - track.under_since >= rule.hold:
                track.firing, track.under_since = False, None
                last = track.last or Reading(None, 0.0)
                notices.append(Notice(rule, "cleared", last.value, last.volume, now))
            else:
                due = track.under_since + rule.hold
                wake = due if wake is None else min(wake, due)
        return notices, wake

    def restore(self, stored: StoredAlert) -> AlertRule | None:
        """Take back an alert that was firing before a restart; its rule, or None when no
        rule of that name and fingerprint is configured any more (then it is dropped)."""
        rule = next((r for r in self.rules if r.name == stored.rule
                     and r.fingerprint() == stored.fingerprint), None)
        if rule is not None:
            self.tracks[(stored.campaign_no, rule.index)] = _Track(
                firing=True, fired_at=stored.fired_at, under_since=stored.under_since)
        return rule

    def holds(self, campaign: int) -> dict[str, float | None]:
        """Each firing alert of a campaign (rule name) and since when it has stayed under
        (None: over), to be stored so a restart does not start a hold time again."""
        return {rule.name: t.under_since for rule in self.rules
                if (t := self.tracks.get((campaign, rule.index))) is not None and t.firing}

    def firing(self, campaign: int) -> list[AlertRule]:
        return [rule for rule in self.rules
                if (t := self.tracks.get((campaign, rule.index))) is not None and t.firing]

    def forget(self, campaign: int) -> None:
        for rule in self.rules:
            self.tracks.pop((campaign, rule.index), None)
