"""Scheduled campaigns and send windows through the API (SPEC 9): `send_at` on create or
`POST .../schedule`, the `scheduled` status kept across restarts (started at once, and
saying so, when its time passed while the daemon was down), cancelling, validation,
and a campaign that waits for its send window. The sender's timing inside a window is
tested on a clock the test holds (tests/test_sending_clock.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon, eventually, make_config, start_daemon
from tests.fakes.gateways import FakeGateway
from tests.test_pusher_protocol import Client
from tests.test_sending_http import numbers

WIB = timezone(timedelta(hours=7))


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway().start()
    yield gw
    await gw.close()


def settings(fake: FakeGateway) -> dict[str, Any]:
    return {"gateways.http.url": fake.url + "/api/messages/send",
            "gateways.http.id_field": "message_id"}


def iso_in(seconds: float, tz: timezone = WIB) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).astimezone(tz).isoformat()


async def create(d: Daemon, recipients: list[str], **extra: Any) -> dict[str, Any]:
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Later", "message": "Hi", "recipients": recipients,
        "gateway": "http", "rate": 50, **extra})
    assert status == 201, body
    return body["campaign"]


async def stop(d: Daemon) -> None:
    await d.session.close()
    await d.server.close()


async def restart(tmp_path: Path, fake: FakeGateway) -> Daemon:
    server, session = await start_daemon(make_config(tmp_path, **settings(fake)))
    return Daemon(server, session)


async def status_of(d: Daemon, uuid: str) -> dict[str, Any]:
    _, body = await d.request("GET", f"/api/campaigns/{uuid}/sending")
    return body["sending"]


async def finished(d: Daemon, uuid: str) -> dict[str, Any]:
    async def check() -> Any:
        state = await status_of(d, uuid)
        return state["status"] == "completed" and state
    return await eventually(check, timeout=20)


async def test_a_scheduled_campaign_starts_on_time_after_a_restart(
        daemon_factory: Any, fake: FakeGateway, tmp_path: Path) -> None:
    d = await daemon_factory(**settings(fake))
    recipients = numbers(5)
    send_at = iso_in(3)
    campaign = await create(d, recipients, send_at=send_at)
    due = datetime.fromisoformat(send_at).timestamp()
    assert campaign["status"] == "scheduled"
    assert datetime.fromisoformat(campaign["send_at"].replace("Z", "+00:00")).timestamp() == \
        pytest.approx(due, abs=0.001)
    _, listed = await d.request("GET", "/api/campaigns?status=scheduled")
    assert [c["uuid"] for c in listed["campaigns"]] == [campaign["uuid"]]
    await stop(d)

    again = await restart(tmp_path, fake)
    restarted_at = time.time()
    try:
        state = await finished(again, campaign["uuid"])
        assert sorted(fake.per_recipient().values()) == [1] * 5
        assert min(r.at for r in fake.requests) >= due  # not one message before its time
        if restarted_at < due:  # the restart beat the schedule: an on-time start
            assert state["start_note"] is None
    finally:
        await stop(again)


async def test_a_schedule_that_passed_while_the_daemon_was_down_starts_at_once_and_says_so(
        daemon_factory: Any, fake: FakeGateway, tmp_path: Path) -> None:
    d = await daemon_factory(**settings(fake))
    campaign = await create(d, numbers(3), send_at=iso_in(1))
    await stop(d)
    due = datetime.fromisoformat(campaign["send_at"].replace("Z", "+00:00")).timestamp()

    async def passed() -> bool:
        return time.time() > due + 0.5
    await eventually(passed)
    assert not fake.requests

    again = await restart(tmp_path, fake)
    try:
        state = await finished(again, campaign["uuid"])
        assert "the daemon was not running then" in state["start_note"]
        assert state["start_note"].endswith(" late")
        assert sorted(fake.per_recipient().values()) == [1] * 3
    finally:
        await stop(again)


async def test_a_scheduled_campaign_can_be_cancelled(daemon_factory: Any,
                                                     fake: FakeGateway) -> None:
    d = await daemon_factory(**settings(fake))
    campaign = await create(d, numbers(3), send_at=iso_in(1))
    uuid = campaign["uuid"]
    status, body = await d.post_json(f"/api/campaigns/{uuid}/cancel", {})
    assert status == 200 and body["campaign"]["status"] == "cancelled"
    assert uuid not in d.runtime.sending.scheduler.due
    due = datetime.fromisoformat(campaign["send_at"].replace("Z", "+00:00")).timestamp()

    async def passed() -> bool:
        return time.time() > due + 0.5
    await eventually(passed)
    assert (await status_of(d, uuid))["status"] == "cancelled"
    assert not fake.requests


async def test_schedule_reschedule_and_start_now(daemon_factory: Any, fake: FakeGateway) -> None:
    d = await daemon_factory(**settings(fake))
    uuid = (await create(d, numbers(2)))["uuid"]
    path = f"/api/campaigns/{uuid}/schedule"
    for doc, why in (({"send_at": "2026-12-01T08:00:00"}, "offset"),
                     ({"send_at": iso_in(-3600)}, "past"),
                     ({"send_at": iso_in(400 * 86400)}, "year"),
                     ({"send_at": "tomorrow"}, "ISO 8601"),
                     ({}, "ISO 8601")):
        status, body = await d.post_json(path, doc)
        assert status == 422 and body["error"]["field"] == "send_at", body
        assert why in body["error"]["message"]
    status, body = await d.request("POST", path, data=b"[]",
                                   headers={"Content-Type": "application/json"})
    assert status == 400
    later = iso_in(3600, UTC)
    status, body = await d.post_json(path, {"send_at": later})
    assert status == 200 and body["campaign"]["status"] == "scheduled"
    status, body = await d.post_json(path, {"send_at": iso_in(7200)})  # moved
    assert status == 200 and body["campaign"]["send_at"] != later
    status, body = await d.post_json(f"/api/campaigns/{uuid}/start", {})  # start now
    assert status == 200 and body["campaign"]["status"] == "processing"
    assert uuid not in d.runtime.sending.scheduler.due
    await finished(d, uuid)
    status, body = await d.post_json(path, {"send_at": iso_in(3600)})
    assert status == 409 and body["error"]["code"] == "invalid_transition"
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Both", "message": "Hi", "recipients": numbers(1),
        "start": True, "send_at": iso_in(60)})
    assert status == 422 and body["error"]["field"] == "send_at"


def _hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M")


async def test_a_campaign_waits_for_its_send_window(daemon_factory: Any,
                                                    fake: FakeGateway) -> None:
    d = await daemon_factory(**settings(fake))
    now = datetime.now(UTC)
    opens, closes = now + timedelta(hours=2), now + timedelta(hours=3)
    window = {"from": _hhmm(opens), "to": _hhmm(closes), "timezone": "UTC"}
    campaign = await create(d, numbers(4), window=window, start=True)
    # "to": "00:00" is the end of the day and is shown as 24:00 (run at 21:xx UTC)
    shown = {**window, "to": "24:00" if window["to"] == "00:00" else window["to"]}
    assert campaign["window"] == {**shown, "days": ["mon", "tue", "wed", "thu", "fri",
                                                    "sat", "sun"]}

    async def waiting() -> Any:
        state = await status_of(d, campaign["uuid"])
        return state["progress"]["waiting_for"] == "send_window" and state
    state = await eventually(waiting)
    assert not fake.requests  # the window is checked before any call
    assert state["status"] == "processing"
    assert state["progress"]["window_opens"] == f"{_hhmm(opens)} UTC"
    assert state["progress"]["eta_seconds"] > 3600  # the closed hours count
    assert state["window"]["open"] is False and state["window"]["opens"] == state[
        "progress"]["window_opens"]
    stats = (await d.request("GET", f"/api/campaigns/{campaign['uuid']}"))[1]
    assert stats["campaign"]["statistics"]["waiting_for"] == "send_window"


@pytest.mark.parametrize(("window", "field"), [
    ({"from": "25:00"}, "window.from"), ({"timezone": "Jakarta"}, "window.timezone"),
    ({"days": ["someday"]}, "window.days"), ([], "window"), ({"start": "08:00"}, "window.start"),
])
async def test_bad_windows_are_refused_naming_the_field(daemon_factory: Any, fake: FakeGateway,
                                                        window: Any, field: str) -> None:
    d = await daemon_factory(**settings(fake))
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "W", "message": "Hi", "recipients": numbers(1),
        "window": window})
    assert status == 422 and body["error"]["field"] == field, body
    _, listed = await d.request("GET", "/api/campaigns")
    assert listed["campaigns"] == []  # nothing of a refused request is kept


async def test_a_watcher_hears_that_a_started_campaign_waits_for_its_window(
        daemon_factory: Any, fake: FakeGateway) -> None:
    """No counter moves while a campaign waits for its window, so the sender says so
    itself: a page that subscribed before the start is told the campaign waits (it
    showed nothing when it had read the statistics before the sender looked at the
    window; a Bahasa page-walk run caught it)."""
    d = await daemon_factory(**settings(fake))
    now = datetime.now(UTC)
    window = {"from": _hhmm(now + timedelta(hours=2)), "to": _hhmm(now + timedelta(hours=3)),
              "timezone": "UTC"}
    campaign = await create(d, numbers(2), window=window)
    watcher = await Client.connect(d)
    await watcher.subscribe(f"campaign.{campaign['uuid']}")
    status, body = await d.post_json(f"/api/campaigns/{campaign['uuid']}/start", {})
    assert status == 200, body
    frame = await watcher.until(lambda f: f["event"] == "campaign.statistics.updated"
                                and f["data"]["statistics"].get("waiting_for")
                                == "send_window", timeout=15)
    assert frame["data"]["statistics"]["window_opens"].endswith(" UTC")
    await watcher.ws.close()
