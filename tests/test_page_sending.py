"""SPEC 9 on the page, in real headless Chromium: a scheduled campaign says when it
starts, a campaign outside its send window says when the window opens and shows its
gateway account's effective rate, and a retried recipient shows its earlier attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import eventually, make_config, webjs_ack
from tests.fakes.gateways import FakeGateway
from tests.test_page_browser import Server, dom, expect, page, shot  # noqa: F401 - page


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway().start()
    yield gw
    await gw.close()


@pytest.fixture
async def srv(tmp_path: Path, fake: FakeGateway) -> AsyncIterator[Server]:
    server = Server(make_config(tmp_path, **{
        "gateways.http.url": fake.url + "/api/messages/send", "gateways.http.rate": 6,
        "sender.backoff_base": 0.05}))
    await server.start()
    yield server
    await server.stop()
    await server.http.close()


async def create(srv: Server, uuid: str, recipients: list[str], **extra: Any) -> None:
    status, body = await srv.post("/api/campaigns", {
        "workspace_id": 1, "uuid": uuid, "name": uuid.title(), "message": "Halo",
        "gateway": "http", "rate": 5, "recipients": recipients, **extra})
    assert status == 201, body


async def text(pg: Any, selector: str) -> str | None:
    return await dom(pg, f"() => document.querySelector('{selector}')?.textContent ?? null")


async def test_schedule_window_rate_and_attempts_on_the_page(srv: Server, fake: FakeGateway,
                                                             page: Any) -> None:  # noqa: F811
    pg = page
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    await create(srv, "later", ["6281300000001"], send_at=in_an_hour.isoformat())
    await pg.goto(srv.url("/#/campaigns/later"))
    await expect(pg, lambda p: text(p, "#scheduled-at"))
    assert await text(pg, "#campaign-status") == "Scheduled"
    scheduled = await text(pg, "#scheduled-at")
    assert scheduled.startswith("Scheduled: starts "), scheduled
    shown = await dom(pg, "() => document.querySelector('#scheduled-at time').dateTime")
    assert abs(datetime.fromisoformat(shown.replace("Z", "+00:00")) - in_an_hour) <= \
        timedelta(milliseconds=1)  # the API gives milliseconds
    assert (await text(pg, ".sending-speed")).startswith("in 59 min")
    assert await text(pg, "[data-action=start]") == "\u25b6 Start now"
    assert await dom(pg, "() => document.querySelector('[data-action=cancel]').disabled") \
        is False
    await shot(pg, "s1-scheduled")

    now = datetime.now(UTC)
    opens = now + timedelta(hours=2)
    window = {"from": opens.strftime("%H:%M"),
              "to": (now + timedelta(hours=3)).strftime("%H:%M"), "timezone": "UTC"}
    await create(srv, "polite", ["6281300000002"], window=window, start=True)
    await pg.goto(srv.url("/#/campaigns/polite"))
    wait = await expect(pg, lambda p: text(p, "#window-wait"))
    assert wait == f"Waiting for the send window, opens {opens:%H:%M} UTC", wait
    assert await text(pg, "#account-rate") == "account limit 6 msg/s"
    assert await text(pg, "#send-window") == (
        f"sends every day {window['from']}\u2013{window['to']} (UTC)")
    assert not fake.requests
    await shot(pg, "s2-waiting-for-window")

    a, b = "6281300000003", "6281300000004"
    fake.script = {a: [400, 200]}
    await create(srv, "retried", [a, b], start=True)

    async def state(status: str) -> bool:
        async with srv.http.get(srv.url("/api/campaigns/retried")) as resp:
            return (await resp.json())["campaign"]["status"] == status
    await eventually(lambda: state("completed"), timeout=15)
    status, body = await srv.post("/api/campaigns/retried/retry-failed", {})
    assert status == 200 and body["requeued"] == 1
    await eventually(lambda: state("completed"), timeout=15)
    await pg.goto(srv.url("/#/campaigns/retried"))
    row = '#recipients tr[data-row="0"]'
    await expect(pg, lambda p: text(p, f"{row} details.attempts summary"))
    assert await text(pg, f"{row} details.attempts summary") == "attempt 2"
    assert await text(pg, '#recipients tr[data-row="1"] details.attempts') is None
    await pg.click(f"{row} details.attempts summary")
    line = await text(pg, f'{row} .attempt-list li[data-attempt="1"]')
    assert line.startswith("#1 failed "), line
    assert ": Invalid phone number: the number is not registered" in line, line
    assert await dom(pg, "() => document.querySelector('.attempt-list .reason')"
                           ".getAttribute('translate')") == "no"
    # A receipt for the retry redraws the row live: the history the reader opened stays
    # open (and its text readable) rather than snapping shut under the pointer.
    async with srv.http.get(srv.url("/api/campaigns/retried/messages")) as resp:
        retry_id = (await resp.json())["messages"][0]["message_id"]
    assert (await srv.post("/webhooks/webjs", webjs_ack(retry_id, 2)))[0] == 200
    await expect(pg, lambda p: text(p, f'{row}[data-status="delivered"] details.attempts'))
    assert await dom(pg, f"() => document.querySelector('{row} details.attempts').open")
    assert (await text(pg, f'{row} .attempt-list li[data-attempt="1"]')) == line
    assert pg.errors == []
    await shot(pg, "s3-attempts")
