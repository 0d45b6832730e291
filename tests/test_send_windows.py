"""Send windows (domain/sendwindow.py): parsing with errors that name the field, opening
times across midnight and across daylight-saving changes, and the ETA over closed hours.
Pure functions of the instants given: no clock is read."""

from __future__ import annotations

from datetime import datetime

import pytest

from domain.sendwindow import SendWindow, WindowError, parse_window

DEFAULTS = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "from": "00:00",
            "to": "24:00", "timezone": "UTC"}


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def window(**doc: object) -> SendWindow:
    return parse_window({k.replace("from_", "from"): v for k, v in doc.items()}, DEFAULTS)


def test_defaults_fill_what_is_missing_and_the_default_is_always_open() -> None:
    assert parse_window(None, DEFAULTS).always_open
    w = window(from_="08:00", to="20:00")
    assert w.as_doc() == {"days": DEFAULTS["days"], "from": "08:00", "to": "20:00",
                          "timezone": "UTC"}


@pytest.mark.parametrize(("doc", "field"), [
    ({"from": "8am"}, "window.from"),
    ({"to": "24:30"}, "window.to"),
    ({"from": "09:00", "to": "09:00"}, "window.to"),
    ({"days": []}, "window.days"),
    ({"days": ["funday"]}, "window.days"),
    ({"timezone": "Mars/Olympus"}, "window.timezone"),
    ({"timezone": "../../etc/passwd"}, "window.timezone"),
    ({"hours": "9-5"}, "window.hours"),
    ("weekdays", "window"),
])
def test_bad_windows_name_the_field(doc: object, field: str) -> None:
    with pytest.raises(WindowError) as caught:
        parse_window(doc, DEFAULTS)
    assert caught.value.field == field


def test_weekdays_only_opens_on_monday_after_a_weekend() -> None:
    w = window(days=["mon", "tue", "wed", "thu", "fri"], from_="09:00", to="17:00",
               timezone="Asia/Jakarta")
    friday_evening = at("2026-12-04T18:00:00+07:00")
    assert not w.is_open(friday_evening)
    assert w.next_open(friday_evening) == at("2026-12-07T09:00:00+07:00")
    assert w.label(at("2026-12-07T09:00:00+07:00"), friday_evening) == "2026-12-07 09:00 WIB"
    assert w.is_open(at("2026-12-07T16:59:59+07:00"))
    assert not w.is_open(at("2026-12-07T17:00:00+07:00"))


def test_a_window_can_span_midnight() -> None:
    w = window(days=["fri"], from_="22:00", to="02:00")
    assert w.is_open(at("2026-12-04T23:30:00+00:00"))  # Friday night
    assert w.is_open(at("2026-12-05T01:30:00+00:00"))  # ...into Saturday
    assert not w.is_open(at("2026-12-05T02:00:00+00:00"))
    assert not w.is_open(at("2026-12-05T23:30:00+00:00"))  # Saturday night is not listed


def test_opening_hours_follow_daylight_saving_time() -> None:
    w = window(from_="08:00", to="20:00", timezone="Europe/Berlin")
    # Spring forward on 2026-03-29: 08:00 is 07:00 UTC the day before, 06:00 UTC that day.
    assert w.next_open(at("2026-03-28T20:00:00+00:00")) == at("2026-03-29T06:00:00+00:00")
    assert w.state(at("2026-03-29T12:00:00+00:00")) == (True, at("2026-03-29T18:00:00+00:00"))
    # Fall back on 2026-10-25: two hours of sending left at 19:00 CEST on the 24th: one
    # that evening, the other from 08:00 CET (07:00 UTC) on the 25th.
    start = at("2026-10-24T19:00:00+02:00")
    assert w.finish_time(start, 2 * 3600) == at("2026-10-25T09:00:00+01:00")


def test_the_eta_counts_closed_hours_and_weekends() -> None:
    w = window(days=["mon", "tue", "wed", "thu", "fri"], from_="08:00", to="20:00",
               timezone="Asia/Jakarta")
    friday = at("2026-12-04T19:00:00+07:00")
    # Three hours of sending: one on Friday, two on Monday morning.
    assert w.finish_time(friday, 3 * 3600) == at("2026-12-07T10:00:00+07:00")
    assert parse_window(None, DEFAULTS).finish_time(friday, 60) == friday + 60
