"""SPEC 9 skips on the page, in real headless Chromium against a real daemon and a fake
gateway: the New campaign form's "Skip unreachable recipients" (its default from
sender.skip_unreachable) reaches the campaign; the campaign view says how many were
skipped, its Skipped tab lists them with the reason (the suppression's own words and
source), in English and in Bahasa Indonesia. Screenshots go to test-output/page-skips/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import eventually, make_config
from tests.fakes.gateways import FakeGateway
from tests.test_page_browser import Server, dom, expect, page, shot  # noqa: F401 - page

A, B = "6281300000001", "6281300000002"


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway().start()
    yield gw
    await gw.close()


@pytest.fixture
async def srv(tmp_path: Path, fake: FakeGateway) -> AsyncIterator[Server]:
    server = Server(make_config(tmp_path, **{
        "gateways.http.url": fake.url + "/api/messages/send",
        "sender.default_gateway": "http", "sender.skip_unreachable": True}))
    await server.start()
    yield server
    await server.stop()
    await server.http.close()


async def text(pg: Any, selector: str) -> str | None:
    return await dom(pg, f"() => document.querySelector('{selector}')?.textContent ?? null")


async def test_skipped_recipients_on_the_page(srv: Server, fake: FakeGateway,
                                              page: Any) -> None:  # noqa: F811
    pg = page
    status, _ = await srv.post("/api/workspaces/1/suppressions",
                               {"number": B, "reason": "asked by phone"})
    assert status == 201

    await pg.goto(srv.url("/#/new"))
    await expect(pg, lambda p: dom(p, "() => !!document.querySelector('#f-skip-unreachable')"))
    # sender.skip_unreachable = true: the box starts checked; the reader unchecks it
    await expect(pg, lambda p: dom(p, "() => document.querySelector('#f-skip-unreachable')"
                                      ".checked"))
    await pg.fill("#f-name", "Skips")
    await pg.fill("#f-message", "Halo")
    await pg.fill("#f-recipients", f"{A}\n{B}")
    await pg.uncheck("#f-skip-unreachable")
    await expect(pg, lambda p: dom(p, "() => !document.querySelector('#new-campaign "
                                      "button[type=submit]').disabled"))
    await pg.click("#new-campaign button[type=submit]")

    async def opened() -> str | None:
        url = pg.url
        return url.split("#/campaigns/")[1] if "#/campaigns/" in url else None
    uuid = await eventually(opened, timeout=15)
    async with srv.http.get(srv.url(f"/api/campaigns/{uuid}/sending")) as resp:
        assert (await resp.json())["sending"]["skip_unreachable"] is False

    skipped_tab = "#recipients [data-tab=skipped] .tab-count"
    await expect(pg, lambda p: _is(p, skipped_tab, "1"))
    await expect(pg, lambda p: _contains(p, "#card-total .card-note", "1 skipped"))
    assert B not in fake.per_recipient() and A in fake.per_recipient()
    assert await dom(pg, "() => document.querySelector('.seg-skipped')?.dataset.count") == "1"
    await pg.click("[data-tab=skipped]")
    await expect(pg, lambda p: _rows(p, [B]))
    note = await text(pg, "#recipients tbody tr .note")
    assert "Skipped: on the suppression list" in note and "asked by phone" in note, note
    assert "from api" in note, note
    assert await text(pg, "#recipients tbody tr .tick-label") == "Skipped"
    await shot(pg, "skips-en")

    await pg.click(".lang-switch .lang:not(.active)")
    await expect(pg, lambda p: _contains(p, '#recipients tbody tr[data-row="1"] .note',
                                         "Dilewati: ada dalam daftar berhenti berlangganan"))
    assert await text(pg, "[data-tab=skipped]") == "Dilewati1"
    await expect(pg, lambda p: _contains(p, "#card-total .card-note", "1 dilewati"))
    await shot(pg, "skips-id")
    assert pg.errors == []


async def _is(pg: Any, selector: str, value: str) -> bool:
    return await text(pg, selector) == value


async def _contains(pg: Any, selector: str, value: str) -> bool:
    return value in (await text(pg, selector) or "")


async def _rows(pg: Any, recipients: list[str]) -> bool:
    shown = await dom(pg, """() => [...document.querySelectorAll('#recipients tbody tr')]
        .map(r => r.querySelector('.recipient')?.textContent.trim()).filter(Boolean)""")
    return shown == recipients
