"""The page's relay indicator in real headless Chromium (issue 16 item 3).

What an operator would see: with the Laravel app behind campaignd down, the top bar says
the relay is failing and how many requests wait, with the app's error in its title; once
the app is back and has taken them, it says the relay is fine; a request the app refuses
as malformed is said to be set aside. Nothing relayed: no indicator at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import eventually
from tests.fakes.seed import FakeLaravel, seed_headers
from tests.test_page_browser import page, shot  # noqa: F401 - the Chromium fixture

SECRET = "seed-hmac-secret-0123456789"


@pytest.fixture
async def laravel() -> AsyncIterator[FakeLaravel]:
    app = await FakeLaravel(secret="laravel-side-secret").start()
    yield app
    await app.stop()


async def relay_chip(pg: Any) -> dict[str, Any]:
    return await pg.evaluate("""() => { const el = document.getElementById('relay');
        return {hidden: el.hidden, state: el.dataset.state || null,
                text: el.querySelector('.live-text').textContent, title: el.title}; }""")


async def test_the_relay_indicator_shows_failures_and_the_backlog(
        daemon_factory: Any, laravel: FakeLaravel, page: Any) -> None:  # noqa: F811
    await laravel.stop()  # the app behind is down
    d = await daemon_factory(**{
        "webhooks.webjs.secret": SECRET, "webhooks.webjs.forward_to": laravel.webhook_url,
        "webhooks.webjs.forward_secret": laravel.secret, "webhooks.forward_retry_max": 0.2,
        "webhooks.forward_set_aside_after": 2})
    for i in range(3):
        body = b'{"event": "session_ready", "data": {"session_id": "s%d"}}' % i
        status, _ = await d.request("POST", "/webhooks/webjs", data=body,
                                    headers=seed_headers(SECRET, body))
        assert status == 200
    await page.goto(d.url("/"))

    async def failing(pg: Any) -> Any:
        await pg.evaluate("() => window.campaigndRelay && window.campaigndRelay.refresh()")
        chip = await relay_chip(pg)
        return chip["state"] == "failing" and chip

    chip = await eventually(lambda: failing(page), timeout=20, interval=0.2)
    assert not chip["hidden"]
    assert chip["text"] == "Relay failing: 3 waiting"
    assert "Cannot connect" in chip["title"] or "Connect" in chip["title"], chip
    await shot(page, "relay-failing")

    await laravel.start()

    async def fine(pg: Any) -> Any:
        await pg.evaluate("() => window.campaigndRelay.refresh()")
        chip = await relay_chip(pg)
        return chip["state"] == "ok" and chip

    chip = await eventually(lambda: fine(page), timeout=30, interval=0.2)
    assert chip["text"] == "Relay ✓" and "3 accepted webhooks relayed" in chip["title"]
    assert len(laravel.received) == 3

    laravel.refuse_containing = b"s-bad"  # the app's validation refuses this one (422)
    body = b'{"event": "session_ready", "data": {"session_id": "s-bad"}}'
    status, _ = await d.request("POST", "/webhooks/webjs", data=body,
                                headers=seed_headers(SECRET, body))
    assert status == 200

    async def set_aside(pg: Any) -> Any:
        await pg.evaluate("() => window.campaigndRelay.refresh()")
        chip = await relay_chip(pg)
        return chip["state"] == "set-aside" and chip

    chip = await eventually(lambda: set_aside(page), timeout=30, interval=0.2)
    assert chip["text"] == "Relay: 1 set aside"
    assert "HTTP 422" in chip["title"] and "/api/relay/webjs/requeue" in chip["title"]
    assert page.errors == []


async def test_no_relay_no_indicator(daemon_factory: Any, page: Any) -> None:  # noqa: F811
    d = await daemon_factory()
    await page.goto(d.url("/"))
    await eventually(lambda: _live(page), timeout=20, interval=0.2)
    await page.evaluate("() => window.campaigndRelay.refresh()")
    assert (await relay_chip(page))["hidden"] is True
    assert page.errors == []


async def _live(pg: Any) -> bool:
    return await pg.evaluate("() => document.getElementById('live').dataset.state") == \
        "connected"
