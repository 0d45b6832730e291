"""The embedded page in real headless Chromium, against a real daemon.

What a person watching the page would check: the cards, the "where the messages are"
bar and the recipient ticks move as ACK webhooks arrive, without a reload; when the
daemon is restarted (same port, same SQLite file) the page says "Reconnecting…", comes
back "Live" on its own and shows the right numbers. Screenshots go to test-output/.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from core.config import Config
from tests.chromium import SharedChromium, open_page, screenshot
from tests.conftest import close_server, eventually, fixture_bytes, fixture_json, make_config
from tests.proc import DaemonProcess, write_config
from web.app import make_app

OUTPUT = Path(__file__).resolve().parents[1] / "test-output" / "page"
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
UUID = "page-live"

# Registered messages: the ids the fixtures carry, so the fixtures apply as they are.
WEBJS_ID = "true_6281234567890@c.us_3EB0C767D8B4D5E3F0A1"
NAMED = [
    ("6281234567890", WEBJS_ID),
    ("16505551234", "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="),
    ("16505551299", "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA"),
    ("11111111111", "true_11111111111@c.us_4CC5EDD64BC22EBA6D639F2AF571346C"),
    ("200000000000", "A5561E44C2A63682E4295B52F484C14E"),
    ("39333444555", "SMxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
]
FILLER = 54  # 60 recipients: more than one page of the table


class Server:
    """A daemon that can be stopped and started again on the same port and database."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.port = 0
        self.server: TestServer | None = None
        self.http = ClientSession()

    async def start(self) -> None:
        self.server = TestServer(make_app(self.config), host="127.0.0.1", port=self.port,
                                 shutdown_timeout=3)
        await self.server.start_server()
        self.port = self.server.port

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await close_server(server)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def post(self, path: str, body: bytes | Any, headers: dict[str, str] = JSON
                   ) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with self.http.post(self.url(path), data=data, headers=headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    srv = Server(make_config(tmp_path))
    await srv.start()
    yield srv
    await srv.stop()
    await srv.http.close()


@pytest.fixture
async def page(chromium: SharedChromium) -> AsyncIterator[Any]:
    """A fresh browser context (nothing stored, English) in the worker's Chromium, with
    `page.errors` and `page.requested` (tests/chromium.py)."""
    async with open_page(chromium) as pg:
        yield pg


async def shot(page: Any, name: str) -> None:
    await screenshot(page, OUTPUT, name)


async def dom(page: Any, script: str) -> Any:
    return await page.evaluate(script)


async def cards(page: Any) -> dict[str, int]:
    return await dom(page, """() => Object.fromEntries(
        [...document.querySelectorAll('.card')].map(c => [c.id.slice(5), +c.dataset.value]))""")


async def row_status(page: Any, recipient: str) -> str | None:
    return await dom(page, f"""() => {{
        const tr = [...document.querySelectorAll('#recipients tbody tr')]
            .find(r => r.querySelector('.recipient')?.textContent.includes('{recipient}'));
        return tr ? tr.dataset.status : null; }}""")


async def expect(page: Any, check: Any, timeout: float = 30.0) -> Any:
    """Poll the page until `check(page)` is truthy; on failure say what it shows. The
    timeout only bounds a failing test: on two busy cores (`make test` runs two workers
    beside whatever else runs) Chromium can take seconds to paint a frame."""
    try:
        return await eventually(lambda: check(page), timeout=timeout, interval=0.1)
    except AssertionError as exc:
        await shot(page, "failure")
        raise AssertionError(f"{exc}; the page shows cards={await cards(page)}, "
                             f"live={await live_state(page)}") from None


async def live_state(page: Any) -> str:
    return await dom(page, "() => document.getElementById('live').dataset.state")


def webjs(ack: int, message_id: str = WEBJS_ID) -> dict[str, Any]:
    """The seed's webhook (fixture shape) with another ACK level."""
    doc = fixture_json("webjs_message_status_updated.json")
    doc["data"].update(message_id=message_id, ack_level=ack)
    return doc


async def test_campaign_page_updates_live_and_survives_a_restart(server: Server, page: Any
                                                                 ) -> None:
    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    status, body = await server.post("/api/campaigns", {"workspace_id": 1, "uuid": UUID,
                                                        "name": "November promo"})
    assert status == 201, body
    messages = [{"recipient": r, "message_id": m} for r, m in NAMED]
    messages += [{"recipient": f"62899{i:07d}", "message_id": f"FILLER{i:04d}"}
                 for i in range(FILLER)]
    status, body = await server.post(f"/api/campaigns/{UUID}/messages",
                                     {"messages": messages})
    assert status == 201, body

    await page.goto(server.url(f"/#/campaigns/{UUID}"))
    await expect(page, lambda p: _is(p, "connected"))
    await expect(page, lambda p: _cards_are(p, total=60, sent=60, delivered=0, read=0, failed=0))
    assert await dom(page, "() => document.querySelector('.title').textContent") == \
        "November promo"
    await expect(page, lambda p: _row_is(p, "6281234567890", "pending"))
    # A mark that a reload would wipe: every later check proves "without a reload".
    await dom(page, "() => { window.__noReload = 'still here'; }")
    await shot(page, "1-registered")

    # ACKs arrive: delivered (whatsapp-web.js), sent and failed (Cloud API).
    for route, payload in [
        ("/webhooks/webjs", fixture_bytes("webjs_message_status_updated.json")),
        ("/webhooks/cloud", fixture_bytes("cloud_status_sent.json")),
        ("/webhooks/cloud", fixture_bytes("cloud_status_failed.json")),
    ]:
        status, body = await server.post(route, payload)
        assert status == 200, body
    await expect(page, lambda p: _cards_are(p, total=60, sent=59, delivered=1, read=0,
                                            failed=1))
    await expect(page, lambda p: _row_is(p, "6281234567890", "delivered"))
    await expect(page, lambda p: _row_is(p, "16505551299", "failed"))
    reason = await dom(page, """() => { const el = [...document.querySelectorAll(
        '#recipients tbody tr')].find(r => r.dataset.status === 'failed').querySelector(
        '.reason'); return [el.textContent, el.title]; }""")
    # the failure table's plain label and code; Meta's own words on hover
    assert reason[0] == "Meta capped marketing to this person (131049)", reason
    assert "healthy ecosystem" in reason[1]
    spread = await dom(page, "() => document.getElementById('spread-summary').textContent")
    assert spread.startswith("1.7% delivered"), spread
    assert await dom(page, "() => window.__noReload") == "still here"
    await shot(page, "2-acks-arrived")

    # Tabs, search and paging go through the API with the page's filters.
    await page.click("[data-tab=failed]")
    await expect(page, lambda p: _visible_rows(p, ["16505551299"]))
    await page.click("[data-tab=all]")
    await page.fill("input.search", "1650555")
    await expect(page, lambda p: _visible_rows(p, ["16505551234", "16505551299"]))
    await page.fill("input.search", "")
    await expect(page, lambda p: _row_count(p, 50))
    await page.click("text=Next →")
    await expect(page, lambda p: _row_count(p, 10))
    assert await dom(page, "() => document.querySelector('.pager-info').textContent") == \
        "Rows 51\u201360"
    await page.click("text=← Previous")
    await expect(page, lambda p: _row_count(p, 50))
    await expect_export(page, "16505551299")

    # The daemon goes away: the page says so and keeps trying.
    await server.stop()
    await expect(page, lambda p: _is(p, "reconnecting"))
    assert await dom(page, "() => document.querySelector('#live .live-text').textContent") == \
        "Reconnecting…"
    await shot(page, "3-daemon-down")

    # A new daemon on the same port and database; more ACKs from other gateways.
    await server.start()
    await expect(page, lambda p: _is(p, "connected"), timeout=60)
    for route, payload, headers in [
        ("/webhooks/webjs", fixture_bytes("webjs_message_read.json"), JSON),
        ("/webhooks/waha", fixture_bytes("waha_message_ack.json"), JSON),
        ("/webhooks/evolution", fixture_bytes("evolution_messages_update.json"), JSON),
        ("/webhooks/twilio", fixture_bytes("twilio_status_read.form"), FORM),
        ("/webhooks/webjs", json.dumps(webjs(1, "FILLER0000")).encode(), JSON),
    ]:
        status, body = await server.post(route, payload, headers)
        assert status == 200, (route, body)
    await expect(page, lambda p: _cards_are(p, total=60, sent=59, delivered=4, read=3,
                                            failed=1))
    await expect(page, lambda p: _row_is(p, "6281234567890", "read"))
    await expect(page, lambda p: _row_is(p, "200000000000", "delivered"))
    tick = await dom(page, """() => [...document.querySelectorAll('#recipients tbody tr')]
        .find(r => r.textContent.includes('6281234567890')).querySelector('.tick').className""")
    assert "tick-read" in tick  # the blue double tick
    assert await dom(page, "() => window.__noReload") == "still here"
    await shot(page, "4-after-restart")

    # The list shows the campaign's counters and follows them live (workspace channel).
    await page.click("text=← All campaigns")
    await expect(page, lambda p: _list_count(p, "n-delivered", "4"))
    status, body = await server.post("/webhooks/webjs", webjs(2, "FILLER0001"))
    assert status == 200, body
    await expect(page, lambda p: _list_count(p, "n-delivered", "5"))
    assert await dom(page, "() => window.__noReload") == "still here"
    assert page.errors == []
    outside = [u for u in page.requested
               if not u.startswith((f"http://127.0.0.1:{server.port}/",
                                    f"ws://127.0.0.1:{server.port}/app/", "data:", "blob:"))]
    assert outside == []
    assert any("/app/campaignd-key?protocol=7" in u for u in page.requested)
    await shot(page, "5-list")


async def expect_export(page: Any, recipient: str) -> None:
    """"Export CSV" downloads every recipient (with a token too: fetched with it)."""
    async with page.expect_download() as info:
        await page.click("[data-action=export]")
    download = await info.value
    text = Path(await download.path()).read_text(encoding="utf-8")
    assert recipient in text, text[:500]


async def _is(page: Any, state: str) -> bool:
    return await live_state(page) == state


async def _cards_are(page: Any, **expected: int) -> bool:
    shown = await cards(page)
    shown.pop("replied", None)  # the Replied card: tests/test_page_engagement.py
    return shown == expected


async def _row_is(page: Any, recipient: str, status: str) -> bool:
    return await row_status(page, recipient) == status


async def _visible_rows(page: Any, recipients: list[str]) -> bool:
    shown = await dom(page, """() => [...document.querySelectorAll('#recipients tbody tr')]
        .map(r => r.querySelector('.recipient')?.textContent.trim()).filter(Boolean)""")
    return sorted(shown) == sorted(recipients)


async def _row_count(page: Any, n: int) -> bool:
    return await dom(page, "() => document.querySelectorAll('#recipients tbody tr[data-row]')"
                     ".length") == n


async def _list_count(page: Any, cls: str, value: str) -> bool:
    return await dom(page, f"""() => document.querySelector(
        '.camp[data-uuid="{UUID}"] .{cls} b')?.textContent""") == value


SIMULATOR = {  # deterministic and quick: every message is delivered and read
    "gateways.simulator.send_latency": 0.001,
    "gateways.simulator.sent_after": 0.05,
    "gateways.simulator.delivered_after": 0.1,
    "gateways.simulator.read_after": 0.2,
    "gateways.simulator.reject_ratio": 0.0,
    "gateways.simulator.failure_ratio": 0.0,
    "gateways.simulator.delivery_ratio": 1.0,
    "gateways.simulator.read_ratio": 1.0,
    "gateways.simulator.receipts_off_ratio": 0.0,
}
PASTED = "\n".join([
    "phone,name",
    *(f"+62 812-5555-{i:04d},Customer {i}" for i in range(8)),
    "0812345678,Local number",
    "not a number,Bad",
    "6281255550003,Duplicate of line 5",
])


async def test_new_campaign_form_reports_bad_numbers_and_lands_on_the_live_view(
        tmp_path: Path, page: Any) -> None:
    srv = Server(make_config(tmp_path, **SIMULATOR))
    await srv.start()
    try:
        await page.goto(srv.url("/#/new"))
        await page.fill("#f-name", "Black Friday")
        await page.fill("#f-message", "Hello! Black Friday starts now.")
        await page.fill("#f-recipients", PASTED)
        report = await page.inner_text("#recipient-report")
        assert "8 recipients" in report
        assert "1 duplicate left out" in report and "6281255550003" in report
        assert "2 invalid numbers" in report
        assert "line 10: \u201c0812345678\u201d" in report and "country code" in report
        assert "line 11: \u201cnot a number\u201d" in report
        # The API's refusal: the page's own sentence at the top and next to the field it
        # names, the API's message (for developers) in small print under it.
        await page.fill("#f-rate", "100000")
        await page.click("button[type=submit]")
        await expect(page, lambda p: _shown(p, "#form-error"))
        error = await page.inner_text("#form-error")
        assert error.startswith("campaignd refused the campaign: The rate must be above 0"), error
        assert "rate must be a number of messages per second" in await page.inner_text(
            "#form-error small.detail")
        assert (await page.inner_text('.field-error[data-for="f-rate"]')).startswith(
            "The rate must be above 0 and at most")
        await shot(page, "6-form-refused")

        await page.fill("#f-rate", "1")
        await page.click("button[type=submit]")
        await expect(page, lambda p: _url_has(p, "#/campaigns/"))
        label = await expect(page, lambda p: _sending_label(p))
        assert label.startswith("Sending\u2026") and label.endswith("/ 8)"), label
        # Pause and resume with the buttons; the progress line says which it is. (At once:
        # the eight messages take eight seconds, and the pause must come before the end.)
        await page.click("[data-action=pause]")
        await expect(page, lambda p: _text_is(p, "#campaign-status", "Paused"))
        label = await expect(page, lambda p: _sending_label(p))
        assert label.startswith("Paused "), label
        await page.click("[data-action=resume]")
        await expect(page, lambda p: _text_is(p, "#campaign-status", "Sending"))
        await shot(page, "7-sending")
        await expect(page, lambda p: _text_is(p, "#campaign-status", "Completed"), timeout=60)
        await expect(page, lambda p: _cards_are(p, total=8, sent=8, delivered=8, read=8,
                                                failed=0))
        assert await dom(page, "() => document.getElementById('sending').hidden") is True
        # Finished: nothing to pause or cancel (no greyed-out buttons that look usable),
        # nothing failed to retry; the export stays.
        assert await dom(page, "() => [...document.querySelectorAll('.actions button')]"
                               ".map(b => b.dataset.action)") == ["export"]
        # The chart is drawn at the width it is shown at (a stretched SVG scales its text),
        # also when its box changes without the window's (the grid settling).
        drawn_at_box_width = ("() => { const s = document.querySelector('.chart-svg'); "
                              "return s && Math.abs(s.getBoundingClientRect().width"
                              " - Number(s.getAttribute('width'))) <= 1 }")
        await expect(page, lambda p: dom(p, drawn_at_box_width))
        await dom(page, "() => { document.querySelector('.chart').style.width = '420px' }")
        await expect(page, lambda p: dom(p, "() => document.querySelector('.chart-svg')"
                                            ".getAttribute('width') === '420'"))
        await dom(page, "() => { document.querySelector('.chart').style.width = '' }")
        await expect(page, lambda p: dom(p, drawn_at_box_width))
        assert page.errors == []
        await shot(page, "8-completed")
    finally:
        await srv.stop()
        await srv.http.close()


async def _shown(page: Any, selector: str) -> bool:
    return await dom(page, f"() => !document.querySelector('{selector}').hidden")


async def _url_has(page: Any, part: str) -> bool:
    return part in page.url


async def _sending_label(page: Any) -> str | None:
    return await dom(page, """() => { const el = document.querySelector('.sending-label');
        return el && !document.getElementById('sending').hidden ? el.textContent : null; }""")


async def _text_is(page: Any, selector: str, text: str) -> bool:
    return await dom(page, f"() => document.querySelector('{selector}')?.textContent") == text


TOKEN = "page-test-token-0123456789"


async def test_with_tokens_the_page_asks_once_and_listens_on_private_channels(
        tmp_path: Path, page: Any) -> None:
    srv = Server(make_config(tmp_path, **{"api.tokens": [{"token": TOKEN, "workspace": 1}],
                                          "pusher.allow_public_channels": False}))
    await srv.start()
    auth = {**JSON, "Authorization": f"Bearer {TOKEN}"}
    try:
        status, body = await srv.post("/api/campaigns", {"workspace_id": 1, "uuid": UUID,
                                                         "name": "Private promo"}, auth)
        assert status == 201, body
        status, body = await srv.post(f"/api/campaigns/{UUID}/messages", {"messages": [
            {"recipient": r, "message_id": m} for r, m in NAMED]}, auth)
        assert status == 201, body

        await page.goto(srv.url(f"/#/campaigns/{UUID}"))
        await page.wait_for_selector("#token-dialog")
        await shot(page, "9-token-prompt")
        await page.fill("#token-input", TOKEN)
        await page.click("#token-dialog button[type=submit]")
        await expect(page, lambda p: _cards_are(p, total=6, sent=6, delivered=0, read=0,
                                                failed=0))
        status, body = await srv.post("/webhooks/webjs",
                                      fixture_bytes("webjs_message_read.json"))
        assert status == 200, body
        # Live over private-campaign.{uuid}, signed through /broadcasting/auth.
        await expect(page, lambda p: _cards_are(p, total=6, sent=6, delivered=1, read=1,
                                                failed=0))
        channels = await dom(page, "() => [...window.campaigndLive.channels.keys()]")
        assert channels == [f"private-campaign.{UUID}"]
        # Kept in this browser: a reload does not ask again.
        await page.reload()
        await expect(page, lambda p: _cards_are(p, total=6, sent=6, delivered=1, read=1,
                                                failed=0))
        assert await page.query_selector("#token-dialog") is None
        await expect_export(page, "6281234567890")
        assert page.errors == []
    finally:
        await srv.stop()
        await srv.http.close()


async def test_page_comes_back_after_the_daemon_is_killed(tmp_path: Path, page: Any) -> None:
    """kill -9 (no goodbye frame, no final checkpoint), then a new process on the same port."""
    settings = {"store.checkpoint_interval": 0.2}
    proc = await asyncio.to_thread(DaemonProcess, write_config(tmp_path, **settings))
    port = int(proc.url.rsplit(":", 1)[1])
    http = ClientSession()

    async def post(path: str, body: bytes | Any) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with http.post(f"{proc.url}{path}", data=data, headers=JSON) as resp:
            assert resp.status in (200, 201), await resp.text()

    try:
        await post("/api/campaigns", {"workspace_id": 1, "uuid": UUID, "name": "Crash test"})
        await post(f"/api/campaigns/{UUID}/messages", {"messages": [
            {"recipient": r, "message_id": m} for r, m in NAMED[:3]]})
        await page.goto(f"{proc.url}/#/campaigns/{UUID}")
        await expect(page, lambda p: _is(p, "connected"))
        await post("/webhooks/webjs", fixture_bytes("webjs_message_status_updated.json"))
        await expect(page, lambda p: _cards_are(p, total=3, sent=3, delivered=1, read=0,
                                                failed=0))

        await asyncio.to_thread(proc.kill)
        await expect(page, lambda p: _is(p, "reconnecting"))
        proc = await asyncio.to_thread(
            DaemonProcess, write_config(tmp_path, **settings, **{"server.port": port}))
        # The page retries on its own, at most 15 s apart (web/static/pusher-lite.js).
        await expect(page, lambda p: _is(p, "connected"), timeout=60)
        await post("/webhooks/cloud", fixture_bytes("cloud_status_failed.json"))
        # The delivered ACK survived the kill; the failure arrived after it.
        await expect(page, lambda p: _cards_are(p, total=3, sent=2, delivered=1, read=0,
                                                failed=1))
        await expect(page, lambda p: _row_is(p, "16505551299", "failed"))
        assert page.errors == []
        await shot(page, "10-after-kill")
    finally:
        await http.close()
        await asyncio.to_thread(proc.terminate)


async def test_an_api_answer_read_before_a_live_change_does_not_take_it_back(
        server: Server, page: Any) -> None:
    """docs/live.md: the page never shows an older state after a newer one. Under load the
    page's own GET of the campaign can be answered with the state before a change and
    reach the page after that change's live frame; here the answer is held until then.
    A failure that arrives late keeps `updated_at` (the time of the latest event) as it
    was, so only the order of arrival can tell the two states apart."""
    status, body = await server.post("/api/campaigns", {"workspace_id": 1, "uuid": UUID,
                                                        "name": "Late answer"})
    assert status == 201, body
    status, body = await server.post(f"/api/campaigns/{UUID}/messages", {"messages": [
        {"recipient": r, "message_id": m} for r, m in NAMED[:3]]})
    assert status == 201, body
    loop = asyncio.get_running_loop()
    read: asyncio.Future[None] = loop.create_future()  # the daemon has answered the GET
    release = asyncio.Event()

    async def hold_the_first_answer(route: Any) -> None:
        if read.done():
            await route.continue_()
            return
        response = await route.fetch()  # the state as the daemon has it now
        read.set_result(None)
        await release.wait()
        await route.fulfill(response=response)

    await page.route(f"**/api/campaigns/{UUID}", hold_the_first_answer)
    await page.goto(server.url(f"/#/campaigns/{UUID}"))
    await asyncio.wait_for(read, 30)
    # The numbers come live (the state on subscribe) while the answer is held.
    await expect(page, lambda p: _cards_are(p, total=3, sent=3, delivered=0, read=0,
                                            failed=0))
    status, body = await server.post("/webhooks/cloud",
                                     fixture_bytes("cloud_status_failed.json"))
    assert status == 200, body
    await expect(page, lambda p: _cards_are(p, total=3, sent=2, delivered=0, read=0,
                                            failed=1))
    release.set()
    await expect(page, lambda p: _text_is(p, "h1.title", "Late answer"))  # answer handled
    assert await _cards_are(page, total=3, sent=2, delivered=0, read=0, failed=1), \
        await cards(page)
    assert await _text_is(page, "#campaign-status", "Tracking")
    assert page.errors == []


async def test_a_list_answer_read_before_a_live_change_does_not_take_it_back(
        server: Server, page: Any) -> None:
    """The same for the campaign list: its GET (here: a click on the "All" tab) answered
    with the state before a failure, held until the failure's live frame is shown."""
    status, body = await server.post("/api/campaigns", {"workspace_id": 1, "uuid": UUID,
                                                        "name": "Late list"})
    assert status == 201, body
    status, body = await server.post(f"/api/campaigns/{UUID}/messages", {"messages": [
        {"recipient": r, "message_id": m} for r, m in NAMED[:3]]})
    assert status == 201, body
    await page.goto(server.url("/#/"))
    await expect(page, lambda p: _list_count(p, "n-sent", "3"))
    await expect(page, lambda p: dom(p, """() => [...window.campaigndLive.channels.values()]
        .some(c => c.name === 'workspace.1' && c.subscribed)"""))

    loop = asyncio.get_running_loop()
    read: asyncio.Future[None] = loop.create_future()
    release = asyncio.Event()

    async def hold_the_answer(route: Any) -> None:
        if read.done():
            await route.continue_()
            return
        response = await route.fetch()
        read.set_result(None)
        await release.wait()
        await route.fulfill(response=response)

    await page.route(lambda url: url.split("?")[0].endswith("/api/campaigns"), hold_the_answer)
    await page.click(".tabs .tab[data-filter='']")
    await asyncio.wait_for(read, 30)
    status, body = await server.post("/webhooks/cloud",
                                     fixture_bytes("cloud_status_failed.json"))
    assert status == 200, body
    await expect(page, lambda p: _list_count(p, "n-failed", "1"))
    row = f".camp[data-uuid='{UUID}']"
    await dom(page, f"() => {{ document.querySelector(\"{row}\").shownBefore = true; }}")
    release.set()
    await expect(page, lambda p: dom(  # the answer handled: the list is built anew
        p, f"() => !!document.querySelector(\"{row}\") && "
           f"!document.querySelector(\"{row}\").shownBefore"))
    assert await _list_count(page, "n-failed", "1")
    assert await _list_count(page, "n-sent", "2")
    assert page.errors == []


async def test_the_page_shows_why_messages_failed_alerts_and_number_health(
        tmp_path: Path, page: Any) -> None:
    """SPEC 7: the breakdown beside the Failed card (label, count, codes, what to do), the
    Failed tab filtered by category, an alert banner that comes live, and the sending
    number's health from Meta's account and template webhooks."""
    config = make_config(tmp_path, **{"alerts": [{
        "name": "bad numbers", "metric": "category_share", "category": "not_on_whatsapp",
        "threshold": 20, "window": 0, "min_volume": 10}]})
    srv = Server(config)
    await srv.start()
    try:
        await _failures_page(srv, page)
    finally:
        await srv.stop()
        await srv.http.close()


def _cloud_failed(wamid: str, code: int, title: str) -> dict[str, Any]:
    doc = fixture_json("cloud_status_failed.json")
    status = doc["entry"][0]["changes"][0]["value"]["statuses"][0]
    status["id"] = wamid
    status["errors"] = [{"code": code, "title": title, "message": title,
                         "error_data": {"details": title}}]
    return doc


async def _failures_page(srv: Server, page: Any) -> None:
    uuid = "page-failures"
    status, body = await srv.post("/api/campaigns", {"workspace_id": 1, "uuid": uuid,
                                                     "name": "Failure breakdown"})
    assert status == 201, body
    status, body = await srv.post(f"/api/campaigns/{uuid}/messages", {"messages": [
        {"recipient": f"62811{i:07d}", "message_id": f"wamid.PAGE{i:04d}"} for i in range(20)]})
    assert status == 201, body
    await page.goto(srv.url(f"/#/campaigns/{uuid}"))
    await expect(page, lambda p: _is(p, "connected"))
    await expect(page, lambda p: _cards_are(p, total=20, sent=20, delivered=0, read=0,
                                            failed=0))
    assert await dom(page, "() => document.getElementById('failure-breakdown').hidden")
    assert await dom(page, "() => document.getElementById('alert-banner').hidden")

    failures = [(131026, "Message undeliverable")] * 5 + [
        (131049, "This message was not delivered to maintain healthy ecosystem engagement."),
        (131049, "This message was not delivered to maintain healthy ecosystem engagement."),
        (130429, "Rate limit hit"), (131047, "Re-engagement message"),
        (132015, "Template is paused")]
    for i, (code, title) in enumerate(failures):
        status, body = await srv.post("/webhooks/cloud", _cloud_failed(f"wamid.PAGE{i:04d}",
                                                                       code, title))
        assert status == 200, body
    for doc in (
        {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
         "time": 1748454394, "changes": [{"field": "phone_number_quality_update", "value": {
             "display_phone_number": "15550783881", "event": "THROUGHPUT_UPGRADE",
             "current_limit": "TIER_UNLIMITED"}}]}]},
        {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
         "time": 1751247548, "changes": [{"field": "message_template_status_update", "value": {
             "event": "PAUSED", "message_template_id": 1689556908129832,
             "message_template_name": "promo_ramadan", "message_template_language": "id",
             "reason": "NONE", "other_info": {"title": "FIRST_PAUSE"}}}]}]}):
        status, body = await srv.post("/webhooks/cloud", doc)
        assert status == 200, body

    await expect(page, lambda p: _cards_are(p, total=20, sent=10, delivered=0, read=0,
                                            failed=10))
    items = "() => [...document.querySelectorAll('#failure-breakdown .breakdown-item')]"
    await expect(page, lambda p: _eq(p, f"{items}.map(e => [e.dataset.category, "
                                        "+e.dataset.count])",
                                     [["not_on_whatsapp", 5], ["limited_by_meta", 2],
                                      ["throttled", 1], ["template", 1],
                                      ["window_closed", 1]]))
    first = await dom(page, f"{items}[0].innerText")
    assert "Not on WhatsApp / bad number" in first and "131026" in first
    assert "Check the country code and digits" in first  # what to do
    assert "24 hours" in await dom(page, f"{items}[1].innerText")
    # the alert came live: 5 of 20 messages (25 %) are bad numbers
    await expect(page, lambda p: dom(p, "() => !document.getElementById('alert-banner')"
                                        ".hidden"))
    banner = await dom(page, "() => document.getElementById('alert-banner').innerText")
    assert "bad numbers" in banner and "25.0%" in banner, banner
    # the sending number's health is read when the view opens (it is not pushed live); the
    # alert banner comes back with the campaign
    await page.reload()
    await expect(page, lambda p: _is(p, "connected"))
    await expect(page, lambda p: dom(p, "() => !document.getElementById('alert-banner')"
                                        ".hidden"))
    await expect(page, lambda p: dom(p, "() => !document.getElementById('number-health')"
                                        ".hidden"))
    health = await dom(page, "() => document.getElementById('number-health').innerText")
    assert "15550783881" in health and "TIER_UNLIMITED" in health
    assert "promo_ramadan" in health and "PAUSED" in health
    await shot(page, "6-failure-breakdown-and-alert")

    # a reason opens the Failed tab filtered to it
    await page.click("#failure-breakdown .breakdown-item[data-category=limited_by_meta]")
    await expect(page, lambda p: _visible_rows(p, ["628110000005", "628110000006"]))
    assert await dom(page, "() => document.querySelector('.tab.active').dataset.tab") == \
        "failed"
    assert await dom(page, "() => document.querySelector('#failure-filter .chip.active')"
                           ".dataset.category") == "limited_by_meta"
    await page.click("#failure-filter .chip[data-category=all]")
    await expect(page, lambda p: _row_count(p, 10))
    await shot(page, "7-failed-tab-by-category")
    assert page.errors == []


async def _eq(page: Any, script: str, expected: Any) -> bool:
    return await dom(page, script) == expected
