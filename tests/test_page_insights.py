"""The Insights view (#/insights) in real headless Chromium, against a real daemon.
(Ranges of hours are written with an en dash, DASH, as the page writes them.)

What an operator would check there: the 7 / 30 / 90-day totals and their changes, each
campaign on the rates chart, two campaigns compared (a third added by its checkbox),
the two heatmaps with the advice line drawn from the data, the contacts with each
tier's count, a tier's filter and a search, and "use as audience" landing on the New
campaign form with the tiers set and the numbers each rule removes shown before
anything is sent. Nothing is fetched from outside 127.0.0.1. Screenshots go to
test-output/page/insights-*.png.

The history (a week of sends at two hours of the day) is written as a 0.1 database and
counted by the daemon's backfill (tests/test_insights_history.py); the contacts of
each tier arrive live through the API (tests/test_insights_api.py setup_tiers).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import Daemon, make_config
from tests.test_insights_api import OPT, UNR, setup_tiers
from tests.test_insights_history import Campaign, Sent, history
from tests.test_page_browser import (  # noqa: F401 - page is a fixture
    OUTPUT,
    Server,
    dom,
    expect,
    page,
    shot,
)

DAY = 86400.0
DASH = "\u2013"  # en dash: between hours, and alone where there is nothing to compare
JAKARTA = ZoneInfo("Asia/Jakarta")  # analytics.timezone's default


def sends_at(hour: int, days_ago: int) -> float:
    """An epoch time at hour:05 in Jakarta, so many days ago."""
    local = datetime.now(JAKARTA) - timedelta(days=days_ago)
    return local.replace(hour=hour, minute=5, second=0, microsecond=0).timestamp()


def week(now: float) -> list[Campaign]:
    """300 sent at 10:05 (70 % read) and 300 at 16:05 (20 % read), three days ago."""
    good = sends_at(10, 3)
    poor = sends_at(16, 3)
    return [Campaign("morning", 1, good - 60, [Sent(good, read=600.0 if i < 210 else None)
                                               for i in range(300)]),
            Campaign("afternoon", 1, poor - 60, [Sent(poor, read=600.0 if i < 60 else None)
                                                 for i in range(300)])]


async def _count(pg: Any, selector: str) -> int:
    return await dom(pg, f"() => document.querySelectorAll('{selector}').length")


async def _text(pg: Any, selector: str) -> str:
    return await dom(pg, f"() => document.querySelector('{selector}')?.textContent ?? ''")


async def test_the_insights_view(tmp_path: Path, page: Any) -> None:  # noqa: F811
    db = history(tmp_path, week(time.time()))
    server = Server(make_config(tmp_path, **{"store.path": str(db)}))
    await server.start()
    try:
        d = Daemon(server.server, server.http)
        await asyncio.wait_for(d.runtime.recounter.settle(), 30)
        await setup_tiers(d)  # campaigns "first" and "second": a contact of each tier
        status, trends = await d.request("GET", "/api/workspaces/1/insights/trends")
        assert status == 200
        status, listed = await d.request("GET", "/api/workspaces/1/contacts")
        tiers = listed["tiers"]
        assert tiers["unreachable"] == 1 and tiers["opted_out"] == 1

        await page.goto(server.url("/#/insights"))
        await expect(page, lambda p: _count(p, "#insight-totals tbody tr"))
        # The week (the history's 600, setup_tiers' 15 and the 0.1 fixture's campaign of
        # workspace 1 while it is recent): as the API counts it, with nothing the week
        # before to compare with.
        week_figures = trends["totals"]["7"]["current"]
        assert week_figures["sent"] >= 615
        sent = await _text(page, '#insight-totals tr[data-figure="sent"] td[data-period="7"] b')
        assert sent == f"{week_figures['sent']:,}", sent
        read = await _text(page, '#insight-totals tr[data-figure="read_rate"] '
                                 'td[data-period="7"] b')
        assert read == f"{week_figures['read_rate']:.1f}%", read
        assert await _text(page, '#insight-totals tr[data-figure="read_rate"] '
                                 'td[data-period="7"] .delta') == DASH
        # Every campaign is a point of each of the five rate lines.
        await expect(page, lambda p: _count(p, "#trend-chart svg circle"))
        assert await _count(page, "#trend-chart svg circle") == len(trends["campaigns"]) * 5
        assert await _count(page, "#trend-chart svg path.trend-read_rate") == 1
        # The two latest are compared; a third joins by its checkbox.
        await expect(page, lambda p: _count(p, "#compare-table tbody tr"))
        assert await _count(page, "#compare-table tbody tr") == 2
        await page.check('#compare-picker input[data-uuid="morning"]')
        await expect(page, lambda p: _rows_are(p, 3))
        assert await _count(page, "#compare-chart svg path.curve") == 3
        # The heatmaps, and the advice: the morning block, read far above the average.
        await expect(page, lambda p: _count(p, "#heat-sent .hm-cell"))
        assert await _count(page, "#heat-sent .hm-cell") == 168
        assert await _count(page, "#heat-read .hm-cell") == 168
        status, best = await d.request("GET", "/api/workspaces/1/insights/best-time")
        tip = best["advice"]
        morning = datetime.fromtimestamp(sends_at(10, 3), JAKARTA).weekday()
        assert (tip["weekday"], tip["from_hour"], tip["to_hour"]) == (morning, 10, 12)
        day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][morning]
        await expect(page, lambda p: _text(p, "#advice"))
        advice = await _text(page, "#advice")
        assert advice == (f"{day} 10{DASH}12 h: read {tip['rate']:.1f}% against "
                          f"{tip['average']:.1f}% on average, n = {tip['n']}"), advice
        afternoon = best["cells"][morning * 24 + 16]
        cell = await dom(page, "() => document.querySelector('#heat-sent .hm-cell[data-weekday="
                               f"\"{morning}\"][data-hour=\"16\"]').title")
        assert cell == (f"{day} 16{DASH}17: {afternoon['read_rate_shrunk']:.1f}% (without "
                        f"shrinking {afternoon['read_rate']:.1f}%), "
                        f"{afternoon['delivered']} delivered"), cell
        await shot(page, "insights-top")
        await page.locator("#insight-best-time").screenshot(
            path=str(OUTPUT / "insights-best-time.png"))

        # Contacts: the counts per tier, then one tier, then a search.
        await expect(page, lambda p: _count(p, "#insight-contacts tbody tr[data-number]"))
        chip = await _text(page, '#tier-filter [data-tier="unreachable"] .tab-count')
        assert chip == "1", chip
        await page.click('#tier-filter [data-tier="unreachable"]')
        await expect(page, lambda p: _numbers_are(p, [UNR]))
        await page.click('#tier-filter [data-tier=""]')
        await page.fill("#contact-search", "+62 811-0000-0006")
        await expect(page, lambda p: _numbers_are(p, [OPT]))
        assert await _text(page, f'tr[data-number="{OPT}"] .tier') == "Opted out"
        await shot(page, "insights-contacts")
        # The start of a number only; a national 0 read with the New campaign form's
        # remembered country code.
        await page.fill("#contact-search", "0000 0006")
        await expect(page, lambda p: _text_is(p, "#insight-contacts .empty-row",
                                              "No number starts with these digits."))
        await page.evaluate("() => localStorage.setItem('campaignd.country_code', '+62')")
        await page.fill("#contact-search", "0811-0000-0006")
        await expect(page, lambda p: _numbers_are(p, [OPT]))
        await page.fill("#contact-search", "")
        await expect(page, lambda p: _count_at_least(p, "#insight-contacts tbody tr", 50))

        # Use as audience: every contact, the unreachable and opted out left out.
        await page.click("#use-audience")
        await expect(page, lambda p: _has_value(p, "#f-recipients"))
        assert await dom(page, "() => [...document.querySelectorAll('#audience input:checked')]"
                               ".map(i => i.name + ':' + i.dataset.tier)") == [
            "exclude_tiers:unreachable", "exclude_tiers:opted_out"]
        total = sum(tiers.values())
        await expect(page, lambda p: _text_is(p, "#audience-kept",
                                              f"{total - 2:,} of {total:,} recipients will "
                                              "get the message."))
        removed = await dom(page, "() => [...document.querySelectorAll('.audience-removed li')]"
                                  ".map(li => li.textContent)")
        assert removed == ["1 removed: Opted out is left out",  # in the tiers' precedence
                           "1 removed: Unreachable is left out"], removed
        assert await _text(page, "#new-campaign button[type=submit]") == \
            f"Start sending to {total - 2:,}"
        await shot(page, "insights-audience")
        assert all(url.startswith(server.url("")) or url.startswith("ws://127.0.0.1")
                   for url in page.requested), page.requested
        assert page.errors == []
    finally:
        await server.stop()
        await server.http.close()


async def _rows_are(pg: Any, n: int) -> bool:
    return await _count(pg, "#compare-table tbody tr") == n


async def _numbers_are(pg: Any, numbers: list[str]) -> bool:
    shown = await dom(pg, "() => [...document.querySelectorAll('#insight-contacts tbody "
                            "tr[data-number]')].map(r => r.dataset.number)")
    return shown == numbers


async def _count_at_least(pg: Any, selector: str, n: int) -> bool:
    return await _count(pg, selector) >= n


async def _has_value(pg: Any, selector: str) -> bool:
    return bool(await dom(pg, f"() => document.querySelector('{selector}')?.value"))


async def _text_is(pg: Any, selector: str, text: str) -> bool:
    return await _text(pg, selector) == text
