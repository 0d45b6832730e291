"""Send windows (SPEC 9): the days and hours, in the recipients' time zone, a campaign
may send in. Outside them the sender waits, and the ETA counts the closed hours.

A window is local wall-clock times in an IANA zone, turned into UTC instants day by day
with zoneinfo, so it follows daylight saving time: "08:00-20:00 Europe/Berlin" opens at
08:00 local on the day clocks change too. A local time that does not exist (skipped by
a spring-forward) moves forward by the skipped hour; an ambiguous one (repeated by a
fall-back) is its first occurrence. `to` at or before `from` spans midnight: the
window opens on the listed day and closes the next day.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
HORIZON_DAYS = 400  # the ETA looks this far ahead at most


class WindowError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _minutes(value: Any, field: str) -> int:
    if not isinstance(value, str) or not TIME_RE.match(value):
        raise WindowError(field, f"{field} must be a time of day as HH:MM (00:00 to 24:00)")
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class SendWindow:
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after local midnight
    end: int  # minutes after local midnight, 1..1440; <= start spans midnight
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def always_open(self) -> bool:
        return len(self.days) == 7 and self.start == 0 and self.end == 1440

    def as_doc(self) -> dict[str, Any]:
        return {"days": [DAYS[d] for d in sorted(self.days)], "from": _hhmm(self.start),
                "to": _hhmm(self.end), "timezone": self.timezone}

    # --- instants ---------------------------------------------------------------------

    def _at(self, day: date, minutes: int) -> float:
        local = datetime.combine(day, datetime.min.time()) + timedelta(minutes=minutes)
        return local.replace(tzinfo=self.zone).timestamp()

    def intervals(self, since: float) -> Iterator[tuple[float, float]]:
        """(open, close) instants, in order, of every opening that ends after `since`."""
        zone = self.zone
        day = datetime.fromtimestamp(since, zone).date() - timedelta(days=1)
        for _ in range(HORIZON_DAYS + 2):
            if day.weekday() in self.days:
                opens = self._at(day, self.start)
                closes = self._at(day, self.end if self.end > self.start else self.end + 1440)
                if closes > since and closes > opens:
                    yield opens, closes
            day += timedelta(days=1)

    def is_open(self, now: float) -> bool:
        if self.always_open:
            return True
        for opens, closes in self.intervals(now):
            if opens > now:
                return False
            if opens <= now < closes:
                return True
        return False

    def state(self, now: float) -> tuple[bool, float | None]:
        """(open now, when that changes: the close if open, the next open if closed).
        The sender keeps this until then instead of asking at every message."""
        if self.always_open:
            return True, None
        for opens, closes in self.intervals(now):
            if opens > now:
                return False, opens
            return True, closes
        return False, None

    def next_open(self, now: float) -> float | None:
        """`now` when open, else when it opens next (None: never within the horizon)."""
        if self.always_open:
            return now
        for opens, _closes in self.intervals(now):
            return max(opens, now)
        return None

    def finish_time(self, now: float, seconds: float) -> float | None:
        """When `seconds` of sending are done, starting at `now`, counting only open
        time (None: not within the horizon)."""
        if self.always_open or seconds <= 0:
            return now + max(0.0, seconds)
        left = seconds
        for opens, closes in self.intervals(now):
            begin = max(opens, now)
            if begin + left <= closes:
                return begin + left
            left -= closes - begin
        return None

    def label(self, instant: float, now: float) -> str:
        """Local time of `instant` in the window's zone: "08:00 WIB", with the local date
        in front when it is not within the next 24 hours."""
        local = datetime.fromtimestamp(instant, self.zone)
        text = local.strftime("%H:%M %Z")
        if instant - now >= 86400:
            text = local.strftime("%Y-%m-%d ") + text
        return text


ALWAYS = SendWindow(frozenset(range(7)), 0, 1440, "UTC")


def parse_window(doc: Any, defaults: Mapping[str, Any], field: str = "window") -> SendWindow:
    """A window from an API object (missing keys from `defaults`, the [sender] keys
    window_days / window_from / window_to / window_timezone). WindowError names the field."""
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise WindowError(field, f"{field} must be an object with days, from, to, timezone")
    unknown = sorted(set(doc) - {"days", "from", "to", "timezone"})
    if unknown:
        raise WindowError(f"{field}.{unknown[0]}", f"{field} has no field {unknown[0]!r}; "
                          "it takes days, from, to and timezone")
    days = doc.get("days", defaults["days"])
    if not isinstance(days, list) or not days or not all(
            isinstance(d, str) and d.lower()[:3] in DAYS for d in days):
        raise WindowError(f"{field}.days", f"{field}.days must be a non-empty list of day "
                          f"names ({', '.join(DAYS)})")
    start = _minutes(doc.get("from", defaults["from"]), f"{field}.from")
    end = _minutes(doc.get("to", defaults["to"]), f"{field}.to")
    if start == 1440:
        raise WindowError(f"{field}.from", f"{field}.from must be before 24:00")
    end = end or 1440  # "to": "00:00" is the end of the day
    if start == end:
        raise WindowError(f"{field}.to", f"{field}.to must differ from {field}.from "
                          "(00:00 to 24:00 is the whole day)")
    zone = doc.get("timezone", defaults["timezone"])
    if not isinstance(zone, str) or not valid_zone(zone):
        raise WindowError(f"{field}.timezone", f"{field}.timezone must be an IANA time zone "
                          "name such as Asia/Jakarta or UTC")
    return SendWindow(frozenset(DAYS.index(d.lower()[:3]) for d in days), start, end, zone)


def valid_zone(name: str) -> bool:
    if not name or len(name) > 64 or ".." in name or name.startswith("/"):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True

