"""Replies on the page (SPEC 6.3), in real headless Chromium against a real daemon: the
Replied card and its rate, the button breakdown, time to reply, a reply mark and time
and the tapped button per recipient, an opt-out mark, the Replied tab; all moving live
as inbound webhooks arrive, without a reload; and the same in Bahasa Indonesia.
Screenshots go to test-output/page-engagement/.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from tests.chromium import screenshot
from tests.test_inbound_sources import inbound_bytes
from tests.test_page_browser import (  # noqa: F401 - page and server are fixtures
    JSON,
    Server,
    cards,
    dom,
    expect,
    page,
    server,
)

OUTPUT = Path(__file__).resolve().parents[1] / "test-output" / "page-engagement"
UUID = "page-replies"
BUTTON_TARGET = "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="


async def shot(pg: Any, name: str) -> None:
    await screenshot(pg, OUTPUT, name)


def reply(name: str, at: float) -> bytes:
    doc = json.loads(inbound_bytes(name))
    if name.startswith("webjs"):
        doc["data"]["message"]["timestamp"] = int(at)
    else:
        for item in doc["entry"][0]["changes"][0]["value"]["messages"]:
            item["timestamp"] = str(int(at))
    return json.dumps(doc).encode()


async def engaged_cell(pg: Any, recipient: str) -> dict[str, Any] | None:
    return await dom(pg, f"""() => {{
        const tr = [...document.querySelectorAll('#recipients tbody tr')]
            .find(r => r.querySelector('.recipient')?.textContent.includes('{recipient}'));
        if (!tr) return null;
        const td = tr.querySelector('td.engaged');
        return {{replied: td.dataset.replied, opted: td.dataset.opted,
                 text: td.textContent, chip: td.querySelector('.chip')?.textContent || null,
                 time: td.querySelector('time')?.getAttribute('datetime') || null}}; }}""")


async def test_replies_move_live_on_the_page(server: Server, page: Any) -> None:  # noqa: F811
    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    status, body = await server.post("/api/campaigns", {"workspace_id": 1, "uuid": UUID,
                                                        "name": "Ramadan promo"})
    assert status == 201, body
    messages = [{"recipient": "16505551234", "message_id": BUTTON_TARGET},
                {"recipient": "+62 812-3456-7890", "message_id": "WEBJS-TARGET"},
                {"recipient": "6281234567891", "message_id": "STOP-TARGET"},
                {"recipient": "6281299999999", "message_id": "SILENT"}]
    status, body = await server.post(f"/api/campaigns/{UUID}/messages", {"messages": messages})
    assert status == 201, body
    # delivered, so the reply rate has a denominator
    statuses = [{"id": m["message_id"], "status": "delivered",
                 "timestamp": str(int(time.time())), "recipient_id": "1"} for m in messages]
    status, _ = await server.post("/webhooks/cloud", {"entry": [{"changes": [
        {"value": {"statuses": statuses}}]}]})
    assert status == 200

    await page.goto(server.url(f"/#/campaigns/{UUID}"))
    await expect(page, lambda p: _card(p, "delivered", 4))
    assert (await cards(page))["replied"] == 0
    assert await dom(page, "() => document.getElementById('buttons').hidden") is True
    await dom(page, "() => { window.__noReload = 'still here'; }")
    await shot(page, "1-no-replies-yet")

    # A quick-reply tap (Cloud API), a plain reply (the seed's service), a STOP.
    now = time.time() + 1
    for route, body in (("/webhooks/cloud", reply("cloud_message_button_quick_reply.json", now)),
                        ("/webhooks/webjs", reply("webjs_message_received.json", now)),
                        ("/webhooks/webjs", reply("webjs_message_received_stop.json", now))):
        status, answer = await server.post(route, body, JSON)
        assert status == 200, answer
    await expect(page, lambda p: _card(p, "replied", 2))
    # the STOP may be credited after the two replies: wait for it, not for a time
    await expect(page, lambda p: _text(p, "#card-replied .card-note",
                                       "50.0% of delivered · 1 opted out"))
    await expect(page, lambda p: _engaged(p, "16505551234", chip="Yes, send me the offer"))
    await expect(page, lambda p: _engaged(p, "+62 812-3456-7890", replied="1"))
    await expect(page, lambda p: _engaged(p, "6281234567891", opted="1"))
    silent = await engaged_cell(page, "6281299999999")
    assert silent is not None and silent["replied"] == "" and silent["text"] == "—"
    buttons = await dom(page, """() => [...document.querySelectorAll('#buttons .button-row')]
        .map(r => [r.querySelector('.button-title').textContent, +r.dataset.count])""")
    assert buttons == [["Yes, send me the offer", 1]]
    reply_time = await dom(page, """() => [...document.querySelectorAll('.lat')]
        .find(b => b.textContent.includes('Time to reply'))
        .querySelector('.lat-num').textContent""")
    assert reply_time and reply_time != "\u2013"  # a duration, not the dash of "none yet"
    assert await dom(page, "() => window.__noReload") == "still here"
    await shot(page, "2-replies-arrived")

    # The Replied tab lists who replied (the STOP is an opt-out, not a reply).
    await page.click("[data-tab=replied]")
    await expect(page, lambda p: _shown(p, ["16505551234", "+62 812-3456-7890"]))
    count = await dom(page, "() => document.querySelector('[data-tab=replied] .tab-count')"
                      ".textContent")
    assert count == "2"
    await shot(page, "3-replied-tab")

    # In Bahasa Indonesia, the same view.
    await page.click(".lang-switch .lang:not(.active)")
    await expect(page, lambda p: _text(p, "#card-replied .card-label", "Dibalas"))
    # the view is built again in the new language: its labels come first, the card's
    # note once the statistics are painted (wait for it, not for a time)
    await expect(page, lambda p: _note_has(p, "dari yang sampai ke perangkat",
                                           "berhenti langganan"))
    await page.click("[data-tab=all]")
    await expect(page, lambda p: _engaged_text(p, "6281234567891", "berhenti langganan"))
    await shot(page, "4-bahasa-indonesia")
    assert page.errors == []


async def _card(pg: Any, key: str, value: int) -> bool:
    return (await cards(pg)).get(key) == value


async def _engaged(pg: Any, recipient: str, **want: str) -> bool:
    cell = await engaged_cell(pg, recipient)
    return cell is not None and all(cell.get(k) == v for k, v in want.items())


async def _engaged_text(pg: Any, recipient: str, text: str) -> bool:
    cell = await engaged_cell(pg, recipient)
    return cell is not None and text in cell["text"]


async def _shown(pg: Any, recipients: list[str]) -> bool:
    shown = await dom(pg, """() => [...document.querySelectorAll('#recipients tbody tr')]
        .map(r => r.querySelector('.recipient')?.textContent.trim()).filter(Boolean)""")
    return sorted(shown) == sorted(recipients)


async def _note_has(pg: Any, *parts: str) -> bool:
    note = await dom(pg, "() => document.querySelector('#card-replied .card-note')"
                     "?.textContent") or ""
    return all(part in note for part in parts)


async def _text(pg: Any, selector: str, text: str) -> bool:
    return await dom(pg, f"() => document.querySelector('{selector}')?.textContent") == text
