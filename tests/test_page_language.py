"""The page in Bahasa Indonesia, in real headless Chromium whose languages are id-ID.

A walk through every view (the list, a campaign with live numbers, the New campaign
form, a campaign sending, paused, the cancel dialog) finds no English word left in what
the reader sees: text, tooltips, placeholders, the tab title. Two checks per view:
  - no word of the English catalogue is visible unless Indonesian uses it too (the
    short ALLOWED list: names, formats, and words that are Indonesian as well);
  - every visible word comes from the Indonesian catalogue, from the browser's own Intl
    (month names, "3 menit yang lalu"), or from ALLOWED, so a string that skipped the
    catalogue shows up even when it is not in en.js.
Data (campaign names, numbers, the gateway's failure reasons, Meta's words about the
number, the API's detail) is marked translate="no" on the page and is not the page's
words; as in HTML, the nearest translate attribute decides (a label inside a data element
says translate="yes"). An element in another language says so with its lang attribute
(the EN button).

Then the EN / ID switch: it re-renders without a reload, sets <html lang>, is
remembered across a reload. Screenshots go to test-output/page/id-*.png.

To add a view: write `async def view_x(walk)` that brings the page there and waits
until it shows its data, and append ("x", view_x) to VIEWS (Insights is there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.chromium import SharedChromium, open_page
from tests.conftest import eventually, fixture_bytes, fixture_json, make_config
from tests.page_catalogue import WORD, load, words
from tests.test_page_browser import (
    NAMED,
    SIMULATOR,
    TOKEN,
    Server,
    _cloud_failed,
    cards,
    dom,
    expect,
    live_state,
    shot,
)

# What an Indonesian desktop browser reports: navigator.languages, Intl's default locale
# and Accept-Language all id-ID (a browser context's locale sets all three, as the
# --lang=id-ID --accept-lang=id-ID flags of a browser of its own did).
INDONESIAN = {"locale": "id-ID"}

# Words both catalogues use, on purpose: names (campaignd, WhatsApp), formats, protocols
# and unit symbols (ms), and words that are Indonesian too (KBBI: status, token, valid,
# internal, per; and the operators' own browser, gateway, simulator). A test keeps this
# list equal to what en.js and id.js really share, so it cannot grow unnoticed. Meta and
# its products (Meta Business Manager, WhatsApp Manager) are names; "template" is the word
# Indonesian WhatsApp marketers use for a message template.
ALLOWED = {"campaignd", "whatsapp", "csv", "api", "http", "id", "ms", "browser", "gateway",
           "simulator", "status", "token", "valid", "internal", "per", "relay", "webhook",
           "get", "meta", "business", "manager", "template", "node",
           # the relay's call to send set-aside requests again: POST /api/relay/.../requeue
           "post", "requeue",
           "proxy",
           # names and borrowed words in failure codes: "(STOP)", "Twilio", "spam"
           "stop", "twilio", "spam",
           # the Insights view: "n = 40" (a sample's size), "data" (Indonesian too), and
           # "min" (the minute's symbol; in Indonesian also Minggu, Sunday, abbreviated)
           "n", "data", "min"}

TRACKED = "promo-ramadan"
# An operator's alert rule (its name is the operator's data): bad numbers over 7 % of
# the campaign. view_failures brings the tracked campaign's share to 5 of 60 (8.3 %; 4 of
# 60 is under the limit, so the alert fires with exactly that value).
BAD_NUMBERS_ALERT = {"name": "nomor tidak valid", "metric": "category_share",
                     "category": "not_on_whatsapp", "threshold": 7, "window": 0,
                     "min_volume": 10}
# Failures of the tracked campaign's filler messages (ISI0000...), one category or more
# each, so the breakdown shows all nine (limited_by_meta: with the walk's first failure).
WALK_FAILURES = [(131026, "Message undeliverable")] * 5 + [
    (131050, "User has stopped marketing messages"),
    (131049, "This message was not delivered to maintain healthy ecosystem engagement."),
    (130429, "Rate limit hit"), (132015, "Template is paused"),
    (131047, "Re-engagement message"), (131042, "Business eligibility payment issue"),
    (131000, "Something went wrong"),
    (130497, "Business account restricted from messaging users in this country")]
# What Meta's account and template webhooks say about the sending number.
ACCOUNT_WEBHOOKS = [
    {"field": "phone_number_quality_update", "value": {
        "display_phone_number": "15550783881", "event": "THROUGHPUT_UPGRADE",
        "current_limit": "TIER_UNLIMITED"}},
    {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}},
    {"field": "message_template_status_update", "value": {
        "event": "PAUSED", "message_template_id": 1689556908129832,
        "message_template_name": "promo_ramadan", "message_template_language": "id",
        "reason": "NONE", "other_info": {"title": "FIRST_PAUSE"}}},
]
CATEGORIES = ["opted_out", "not_on_whatsapp", "limited_by_meta", "throttled", "template",
              "window_closed", "account", "temporary", "other"]  # the failure table's order
SENT_NAME = "Diskon Lebaran"
PASTED = "\n".join([
    "nomor,nama",
    *(f"+62 812-5555-{i:04d},Pelanggan {i}" for i in range(30)),
    "0812345678,Nomor lokal",
    "bukan nomor,Salah",
    "6281255550003,Ganda",
])

# What the reader sees: visible text nodes, tooltips, placeholders, labels, the tab title;
# without data (translate="no") and without parts in another language (lang="…").
VISIBLE_TEXT = """() => {
  const lang = document.documentElement.lang;
  const shown = (el) => el.checkVisibility({ visibilityProperty: true, checkVisibilityCSS: true });
  const skipped = (el) => el.closest('[translate]')?.getAttribute('translate') === 'no'
    || el.closest('[lang]').getAttribute('lang') !== lang
    || el.closest('script, style, noscript, template');
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || skipped(el)) continue;
    const inSvg = el.closest('svg');
    if (!shown(inSvg || el)) continue;
    if (node.nodeValue.trim()) out.push(node.nodeValue);
  }
  for (const el of document.querySelectorAll('[title], [placeholder], [aria-label]')) {
    if (skipped(el) || !shown(el)) continue;
    for (const attr of ['title', 'placeholder', 'aria-label']) {
      if (el.hasAttribute(attr)) out.push(el.getAttribute(attr));
    }
  }
  const name = document.querySelector('h1[translate="no"]');
  out.push(name ? document.title.replace(name.textContent, '') : document.title);
  return out;
}"""

# Words the browser's Intl writes in this locale (dates, relative times): not ours to list.
INTL_WORDS = """(locale) => {
  const out = [];
  for (let m = 0; m < 12; m += 1) {
    const d = new Date(2024, m, 15, 14, 3, 12);
    for (const month of ['short', 'long']) {
      out.push(d.toLocaleString(locale, { month, day: 'numeric' }));
    }
    out.push(d.toLocaleString(locale), d.toLocaleDateString(locale), d.toLocaleTimeString(locale));
  }
  const relative = new Intl.RelativeTimeFormat(locale, { numeric: 'auto' });
  for (const unit of ['second', 'minute', 'hour', 'day']) {
    for (const n of [-2, -1, 0, 1, 2]) out.push(relative.format(n, unit));
  }
  return out;
}"""


@dataclass
class Walk:
    """What the views share: the daemon, the browser page, and what the walk has seen."""

    server: Server
    page: Any
    seen: dict[str, list[str]] = field(default_factory=dict)  # the words of each view


@pytest.fixture
async def indonesian_page(chromium: SharedChromium) -> AsyncIterator[Any]:
    """A fresh browser context whose user prefers Bahasa Indonesia (nothing stored yet),
    in the worker's Chromium (tests/chromium.py)."""
    async with open_page(chromium, **INDONESIAN) as page:
        yield page


@pytest.fixture
async def walk(tmp_path: Path, indonesian_page: Any) -> AsyncIterator[Walk]:
    # A rate on the simulator's account, so the sending views show it (SPEC 9).
    server = Server(make_config(tmp_path, **SIMULATOR, alerts=[BAD_NUMBERS_ALERT],
                                **{"gateways.simulator.rate": 50}))
    await server.start()
    try:
        status, body = await server.post("/api/campaigns", {
            "workspace_id": 1, "uuid": TRACKED, "name": "Promo Ramadan"})
        assert status == 201, body
        messages = [{"recipient": r, "message_id": m} for r, m in NAMED]
        messages += [{"recipient": f"62899{i:07d}", "message_id": f"ISI{i:04d}"}
                     for i in range(54)]
        status, body = await server.post(f"/api/campaigns/{TRACKED}/messages",
                                         {"messages": messages})
        assert status == 201, body
        yield Walk(server, indonesian_page)
    finally:
        await server.stop()
        await server.http.close()


# --- the views --------------------------------------------------------------------


async def view_list(walk: Walk) -> None:
    await walk.page.goto(walk.server.url("/#/"))
    await expect(walk.page, lambda p: _has(p, f'.camp[data-uuid="{TRACKED}"]'))
    await expect(walk.page, lambda p: _is_live(p))


async def view_list_empty_filter(walk: Walk) -> None:
    await walk.page.click('[data-filter="paused"]')
    await expect(walk.page, lambda p: _has(p, "#campaign-list .empty"))


async def view_campaign_live(walk: Walk) -> None:
    page = walk.page
    await page.goto(walk.server.url(f"/#/campaigns/{TRACKED}"))
    await expect(page, lambda p: _is_live(p))
    await expect(page, lambda p: _cards(p, total=60, sent=60, delivered=0, failed=0))
    for route, payload in [("/webhooks/webjs", "webjs_message_status_updated.json"),
                           ("/webhooks/cloud", "cloud_status_failed.json")]:
        status, body = await walk.server.post(route, fixture_bytes(payload))
        assert status == 200, body
    # The numbers move live, written the Indonesian way (decimal comma).
    await expect(page, lambda p: _cards(p, total=60, sent=59, delivered=1, failed=1))
    summary = await page.inner_text("#spread-summary")
    assert summary == "1,7% terkirim ke perangkat · 0% dibaca", summary
    await expect(page, lambda p: _has(p, '#recipients tbody tr[data-status="failed"]'))


async def view_campaign_table(walk: Walk) -> None:
    page = walk.page
    await page.click("[data-tab=failed]")
    await expect(page, lambda p: _row_count(p, 1))
    await page.fill("input.search", "999999")
    await expect(page, lambda p: _has(p, "#recipients .empty-row"))


async def view_failures(walk: Walk) -> None:
    """Failures of every category arrive live: the breakdown in Indonesian (the category's
    label, what to do, a config key as code), and the alert banner comes live."""
    page = walk.page
    await page.goto(walk.server.url(f"/#/campaigns/{TRACKED}"))
    await expect(page, lambda p: _is_live(p))
    await expect(page, lambda p: _has(p, '#failure-breakdown:not([hidden])'))
    for i, (code, title) in enumerate(WALK_FAILURES):
        status, body = await walk.server.post("/webhooks/cloud",
                                              _cloud_failed(f"ISI{i:04d}", code, title))
        assert status == 200, body
    for change in ACCOUNT_WEBHOOKS:
        status, body = await walk.server.post("/webhooks/cloud", {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "time": 1751247548, "changes": [change]}]})
        assert status == 200, body
    counts = {"not_on_whatsapp": 5, "limited_by_meta": 2}
    await expect(page, lambda p: _breakdown_is(p, [[c, counts.get(c, 1)] for c in CATEGORIES]))
    first = await _item_text(page, "not_on_whatsapp")
    assert "Tidak ada di WhatsApp / nomor salah" in first, first
    assert "5 pesan · 35,7% dari yang gagal" in first, first
    assert "Periksa kode negara" in first and "131026" in first, first
    limited = await _item_text(page, "limited_by_meta")
    assert "Dibatasi Meta" in limited and "Tunggu minimal 24 jam" in limited, limited
    assert await dom(page, "() => document.querySelector('#failure-breakdown "
                           "code[translate=no]').textContent") == "sender.retry_limited_by_meta"
    await expect(page, lambda p: _has(p, "#alert-banner:not([hidden])"))
    assert await page.inner_text("#alert-banner strong") == "⚠ Peringatan:"
    said = await page.inner_text("#alert-banner .alert-message")
    assert said == ("nomor tidak valid: porsi Tidak ada di WhatsApp / nomor salah sebesar "
                    "8,3% selama seluruh kampanye (batas: di atas 7,0%, 60 pesan)"), said
    # the daemon's own sentence (English, for logs) stays on hover of the rule's name
    assert "not_on_whatsapp share is 8.3%" in await dom(
        page, "() => document.querySelector('#alert-banner .alert-rule').title")


async def view_failures_health(walk: Walk) -> None:
    """The campaign opened again: the alert banner comes back with it, and the sending
    number's health (read when the view opens) shows Meta's words as they are."""
    page = walk.page
    await page.reload()
    await expect(page, lambda p: _is_live(p))
    await expect(page, lambda p: _has(p, "#number-health:not([hidden])"))
    await expect(page, lambda p: _has(p, "#alert-banner:not([hidden])"))
    await expect(page, lambda p: _has(p, "#failure-breakdown:not([hidden]) .breakdown-item"))
    health = await page.inner_text("#number-health")
    assert health.startswith("Kondisi nomor pengirim"), health
    for said in ("Nomor 15550783881", "batas pengiriman pesan: TIER_UNLIMITED",
                 "masalah: tidak ada masalah yang dilaporkan",
                 "Template promo_ramadan (id)", "status: PAUSED"):
        assert said in health, (said, health)


async def view_failed_by_category(walk: Walk) -> None:
    """A reason opens the Failed tab filtered to it: chips and the rows' labels."""
    page = walk.page
    await page.click("#failure-breakdown .breakdown-item[data-category=not_on_whatsapp]")
    await expect(page, lambda p: _row_count(p, 5))
    assert await dom(page, "() => document.querySelector('#failure-filter .chip.active')"
                           ".dataset.category") == "not_on_whatsapp"
    chips = await dom(page, "() => Object.fromEntries([...document.querySelectorAll("
                            "'#failure-filter .chip')].map(c => [c.dataset.category, "
                            "c.firstChild.textContent]))")
    assert chips["all"] == "Semua kegagalan", chips
    assert chips["not_on_whatsapp"] == "Tidak ada di WhatsApp / nomor salah", chips
    assert chips["other"] == "Lainnya", chips
    reasons = await dom(page, "() => [...document.querySelectorAll('#recipients .reason')]"
                              ".map(r => [r.textContent, r.title])")
    # the code's own label, in Indonesian (domain/failures.py: "Not on WhatsApp or app
    # outdated"), not only its category's
    assert {text for text, _ in reasons} == {
        "Tidak memakai WhatsApp atau aplikasinya usang (131026)"}
    assert {title for _, title in reasons} == {"131026: Message undeliverable"}  # Meta's words


async def view_new_form(walk: Walk) -> None:
    page = walk.page
    await page.goto(walk.server.url("/#/new"))
    await page.fill("#f-name", SENT_NAME)
    await page.fill("#f-message", "Halo! Diskon Lebaran mulai hari ini.")
    await page.fill("#f-recipients", PASTED)
    report = await page.inner_text("#recipient-report")
    assert "30 penerima" in report and "1 nomor ganda" in report, report
    assert "2 nomor tidak valid" in report and "isi kode negara" in report, report


async def view_new_form_refused(walk: Walk) -> None:
    page = walk.page
    await page.fill("#f-rate", "100000")
    await page.click("button[type=submit]")
    await expect(page, lambda p: _has(p, "#form-error:not([hidden])"))
    error = await page.inner_text("#form-error")
    assert error.startswith("campaignd menolak kampanye ini: Kecepatan harus"), error
    # The API's own message stays available, in small print (for developers, in English).
    assert "rate must be" in await page.inner_text("#form-error small.detail")


async def view_sending(walk: Walk) -> None:
    page = walk.page
    await page.fill("#f-rate", "1")
    await page.click("button[type=submit]")
    await expect(page, lambda p: _has(p, "#sending:not([hidden]) .sending-label"))
    label = await page.inner_text(".sending-label")
    assert label.startswith("Sedang mengirim pesan\u2026 ") and label.endswith("/ 30)"), label
    assert await page.inner_text("#campaign-status") == "Mengirim"


async def view_paused(walk: Walk) -> None:
    page = walk.page
    await page.click("[data-action=pause]")
    await expect(page, lambda p: _text(p, "#campaign-status", "Dijeda"))
    await expect(page, lambda p: _has(p, ".toast-ok"))
    assert (await page.inner_text(".sending-label")).startswith("Dijeda ")


async def view_cancel_dialog(walk: Walk) -> None:
    await walk.page.click("[data-action=cancel]")
    await expect(walk.page, lambda p: _has(p, "dialog[open]"))


async def view_cancelled(walk: Walk) -> None:
    page = walk.page
    await page.click("dialog[open] .btn-danger")
    await expect(page, lambda p: _text(p, "#campaign-status", "Dibatalkan"))


async def view_scheduled(walk: Walk) -> None:
    page = walk.page
    send_at = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    status, body = await walk.server.post("/api/campaigns", {
        "workspace_id": 1, "uuid": "nanti", "name": "Nanti", "message": "Halo",
        "recipients": ["6281277770001"], "send_at": send_at})
    assert status == 201, body
    await page.goto(walk.server.url("/#/campaigns/nanti"))
    await expect(page, lambda p: _has(p, "#scheduled-at"))
    assert (await page.inner_text("#scheduled-at")).startswith("Dijadwalkan: mulai ")
    assert await page.inner_text("#campaign-status") == "Dijadwalkan"


async def view_send_window(walk: Walk) -> None:
    page = walk.page
    now = datetime.now(UTC)
    window = {"from": f"{now + timedelta(hours=2):%H:%M}",
              "to": f"{now + timedelta(hours=3):%H:%M}", "timezone": "Asia/Jakarta"}
    status, body = await walk.server.post("/api/campaigns", {
        "workspace_id": 1, "uuid": "sopan", "name": "Sopan", "message": "Halo",
        "recipients": ["6281277770002"], "window": window, "start": True})
    assert status == 201, body
    await page.goto(walk.server.url("/#/campaigns/sopan"))
    await expect(page, lambda p: _has(p, "#window-wait"))
    wait = await page.inner_text("#window-wait")
    assert wait.startswith("Menunggu jendela pengiriman, dibuka ") and "WIB" in wait, wait
    assert await page.inner_text("#account-rate") == "batas akun 50 pesan/detik"


async def view_attempts(walk: Walk) -> None:
    """A recipient whose first attempt failed and whose retry went out: its history."""
    page, server = walk.page, walk.server
    status, body = await server.post("/api/campaigns", {
        "workspace_id": 1, "uuid": "ulang", "name": "Ulang", "message": "Halo",
        "recipients": ["6281277770003", "6281277770004"], "start": True})
    assert status == 201, body

    async def first_id() -> Any:
        async with server.http.get(server.url("/api/campaigns/ulang/messages")) as resp:
            row = (await resp.json())["messages"][0]
        return row["send_state"] == "accepted" and row["raw_message_id"]
    message_id = await eventually(first_id)
    failure = fixture_json("webjs_message_status_updated.json")
    failure["data"].update(message_id=message_id, ack_level=-1, error="131026 undeliverable")
    assert (await server.post("/webhooks/webjs", failure))[0] == 200
    status, body = await server.post("/api/campaigns/ulang/retry-failed", {})
    assert status == 200 and body["requeued"] == 1, body
    await page.goto(server.url("/#/campaigns/ulang"))
    row = '#recipients tr[data-row="0"]'
    await expect(page, lambda p: _has(p, f"{row} details.attempts"))
    assert await page.inner_text(f"{row} details.attempts summary") == "percobaan ke-2"
    await page.click(f"{row} details.attempts summary")
    line = await page.inner_text(f'{row} .attempt-list li[data-attempt="1"]')
    assert line.startswith("#1 gagal ") and "131026 undeliverable" in line, line


async def view_insights(walk: Walk) -> None:
    """The Insights view over what the walk sent: totals, rates chart, comparison, both
    heatmaps with their tooltips, and the contacts with their tiers."""
    page = walk.page
    await page.goto(walk.server.url("/#/insights"))
    await expect(page, lambda p: _has(p, "#insight-totals tbody tr"))
    await expect(page, lambda p: _has(p, "#trend-chart svg circle"))
    await expect(page, lambda p: _has(p, "#compare-table tbody tr"))
    await expect(page, lambda p: _has(p, "#heat-sent .hm-cell"))
    await expect(page, lambda p: _has(p, "#insight-contacts tbody tr[data-number]"))
    assert await page.inner_text("#insight-best-time h2") == "Waktu terbaik untuk mengirim"
    assert (await page.inner_text('#tier-filter [data-tier="engaged"]')).startswith("Aktif")


async def view_insights_audience(walk: Walk) -> None:
    """"Jadikan audiens": the New campaign form with the tiers set and the preview."""
    page = walk.page
    await page.click("#use-audience")
    await expect(page, lambda p: _has(p, "#audience-kept"))
    kept = await page.inner_text("#audience-kept")
    assert kept.endswith("penerima akan menerima pesan ini."), kept


View = Callable[[Walk], Awaitable[None]]
VIEWS: list[tuple[str, View]] = [
    ("list", view_list),
    ("list-empty-filter", view_list_empty_filter),
    ("campaign-live", view_campaign_live),
    ("campaign-table", view_campaign_table),
    ("failures", view_failures),
    ("failures-health", view_failures_health),
    ("failed-by-category", view_failed_by_category),
    ("new-form", view_new_form),
    ("new-form-refused", view_new_form_refused),
    ("sending", view_sending),
    ("paused", view_paused),
    ("cancel-dialog", view_cancel_dialog),
    ("cancelled", view_cancelled),
    ("scheduled", view_scheduled),
    ("send-window", view_send_window),
    ("attempts", view_attempts),
    ("insights", view_insights),
    ("insights-audience", view_insights_audience),
]


# --- the tests --------------------------------------------------------------------


async def assert_indonesian(page: Any, name: str) -> list[str]:
    """Check what `page` shows now (see the module's docstring); screenshot it as id-<name>."""
    english_only = words(load("en")) - ALLOWED  # not minus id.js: an English word there counts
    intl = await dom(page, f"() => ({INTL_WORDS})('id-ID')")
    known = words(load("id")) | ALLOWED | {w.lower() for text in intl for w in WORD.findall(text)}
    known |= {"indonesia"}  # a proper noun: "Bahasa Indonesia", the ID button's name for itself
    assert await dom(page, "() => document.documentElement.lang") == "id"
    texts = await dom(page, VISIBLE_TEXT)
    seen = [word for text in texts for word in WORD.findall(text)]
    assert len(seen) > 10, (name, texts)  # the check looked at a page that shows something
    left = _where(texts, lambda w: w.lower() in english_only)
    unknown = _where(texts, lambda w: w.lower() not in known)
    await shot(page, f"id-{name}")
    assert left == {}, f"{name}: English left on the page"
    assert unknown == {}, f"{name}: words from no catalogue"
    return seen


async def test_every_view_speaks_bahasa_indonesia(walk: Walk) -> None:
    assert {"campaigns", "sent", "delivered", "failed", "sending"} <= words(load("en")) - ALLOWED
    for number, (name, view) in enumerate(VIEWS, 1):
        await view(walk)
        walk.seen[name] = await assert_indonesian(walk.page, f"{number:02d}-{name}")
    assert walk.page.errors == []


async def test_token_prompt_and_errors_in_bahasa_indonesia(tmp_path: Path,
                                                           indonesian_page: Any) -> None:
    """The token prompt, a refused token, a missing campaign, the daemon gone: the page's
    own Indonesian sentences, the API's English message only in small print."""
    page = indonesian_page
    server = Server(make_config(tmp_path, **{"api.tokens": [{"token": TOKEN, "workspace": 1}]}))
    await server.start()
    try:
        await page.goto(server.url("/#/"))
        await page.wait_for_selector("#token-dialog")
        assert await page.inner_text("#token-dialog h3") == "Perlu token API"
        await assert_indonesian(page, "token-prompt")
        await page.fill("#token-input", "token-yang-salah")
        await page.click("#token-dialog button[type=submit]")
        await expect(page, lambda p: _has(p, "#campaign-list .banner-error small.detail"))
        banner = await page.inner_text("#campaign-list .banner-error")
        assert banner.startswith("Daftar kampanye tidak dapat dimuat. Token API ditolak."), banner
        await assert_indonesian(page, "token-refused")
        # The next request asks again, saying the stored token was refused.
        await page.click('[data-filter="failed"]')
        await expect(page, lambda p: _text(p, "#token-dialog p",
                                           "Token itu ditolak. Masukkan token API yang valid."))
        await page.fill("#token-input", TOKEN)
        await page.click("#token-dialog button[type=submit]")
        await expect(page, lambda p: _has(p, "#campaign-list .empty"))

        await page.goto(server.url("/#/campaigns/tidak-ada"))
        await expect(page, lambda p: _has(p, ".banner-error:not([hidden]) small.detail"))
        banner = await page.inner_text(".banner-error")
        assert banner.startswith("Kampanye ini tidak ada, atau token ini tidak boleh"), banner
        assert "campaign_not_found" in await page.inner_text(".banner-error small.detail")
        await assert_indonesian(page, "not-found")

        await page.goto(server.url("/#/"))
        await expect(page, lambda p: _has(p, "#campaign-list .empty"))
        await server.stop()
        await page.click('[data-filter="failed"]')
        await expect(page, lambda p: _has(p, "#campaign-list .banner-error"))
        banner = await page.inner_text("#campaign-list .banner-error")
        assert banner.startswith("Daftar kampanye tidak dapat dimuat. campaignd tidak dapat "
                                 "dihubungi."), banner
        await assert_indonesian(page, "network-down")
    finally:
        await server.stop()
        await server.http.close()


async def test_the_switch_changes_language_without_a_reload_and_is_remembered(
        walk: Walk) -> None:
    page = walk.page
    await view_campaign_live(walk)
    assert await page.inner_text("#card-delivered .card-label") == "Terkirim ke perangkat"
    assert await page.inner_text("#live .live-text") == "Terhubung"
    await dom(page, "() => { window.__noReload = 'still here'; }")
    for width in (360, 375, 640, 1280):  # the switch stays reachable on a phone
        await page.set_viewport_size({"width": width, "height": 800})
        fits = await dom(page, """() => {
            const bar = document.querySelector('.topbar');
            const en = document.querySelector('#lang-switch [data-lang=en]')
                .getBoundingClientRect();
            return bar.scrollWidth <= bar.clientWidth && en.width > 0
                && en.right <= innerWidth; }""")
        assert fits, f"the top bar overflows at {width} px"
    await page.set_viewport_size({"width": 1280, "height": 900})

    await page.click("#lang-switch [data-lang=en]")
    await expect(page, lambda p: _text(p, "#card-delivered .card-label", "Delivered"))
    assert await dom(page, "() => document.documentElement.lang") == "en"
    assert await page.inner_text("#live .live-text") == "Live"
    assert await page.inner_text("[data-nav=list]") == "Campaigns"
    assert (await page.inner_text("#spread-summary")).startswith("1.7% delivered")
    assert await dom(page, "() => window.__noReload") == "still here"
    await expect(page, lambda p: _cards(p, total=60, sent=59, delivered=1, failed=1))
    await shot(page, "id-switched-to-en")

    # Remembered: a reload (and a browser that prefers Indonesian) stays English.
    await page.reload()
    await expect(page, lambda p: _text(p, "#card-delivered .card-label", "Delivered"))
    assert await dom(page, "() => localStorage.getItem('campaignd.lang')") == "en"
    assert await dom(page, "() => document.documentElement.lang") == "en"
    pressed = await dom(page, """() => [...document.querySelectorAll('#lang-switch button')]
        .map(b => [b.dataset.lang, b.getAttribute('aria-pressed')])""")
    assert pressed == [["en", "true"], ["id", "false"]]

    # The New campaign form keeps what was typed when the language changes.
    await page.goto(walk.server.url("/#/new"))
    await page.fill("#f-name", SENT_NAME)
    await page.fill("#f-recipients", "6281255550001\n6281255550002")
    await page.click("#lang-switch [data-lang=id]")
    await expect(page, lambda p: _text(p, "#new-campaign button[type=submit]",
                                       "Kirim ke 2 penerima"))
    assert await page.input_value("#f-name") == SENT_NAME
    assert await dom(page, "() => localStorage.getItem('campaignd.lang')") == "id"
    assert page.errors == []


async def test_language_from_the_browser_plurals_and_error_sentences(walk: Walk) -> None:
    page = walk.page
    await page.goto(walk.server.url("/#/"))
    await expect(page, lambda p: _has(p, ".camp"))
    assert await dom(page, "() => document.documentElement.lang") == "id"
    assert await dom(page, "() => localStorage.getItem('campaignd.lang')") is None
    result = await dom(page, """async () => {
        const i18n = await import('/static/i18n.js');
        const pick = i18n.browserLanguage;
        const before = i18n.language();
        const both = () => [1, 1234].map((count) => i18n.t('form.report.valid', { count }));
        const out = {
          detected: [pick(['id-ID', 'en']), pick(['en-US', 'id']), pick(['in']),
                     pick(['en-GB']), pick(['ms-MY', 'jv']), pick([])],
          id: both(),
        };
        i18n.setLanguage('en');
        out.en = both();
        i18n.setLanguage(before);
        return out;
    }""")
    assert result["detected"] == ["id", "id", "id", "en", "en", "en"]
    assert result["id"] == ["1 penerima", "1.234 penerima"]
    assert result["en"] == ["1 recipient", "1,234 recipients"]

    # The page's own sentence for each error code a user meets, in both languages.
    said = await dom(page, """async () => {
        const i18n = await import('/static/i18n.js');
        const { describeError } = await import('/static/api.js');
        const codes = ['network', 'unauthorized', 'forbidden', 'campaign_not_found',
          'invalid_field', 'busy', 'storage_unavailable', 'invalid_transition',
          'nothing_to_retry', 'campaign_exists', 'something_new'];
        const out = {};
        for (const lang of ['en', 'id']) {
          i18n.setLanguage(lang);
          out[lang] = codes.map((code) => describeError({ code, status: 503, message: 'm' }));
        }
        i18n.setLanguage('id');
        return out;
    }""")
    codes = ["network", "unauthorized", "forbidden", "campaign_not_found", "invalid_field",
             "busy", "storage_unavailable", "invalid_transition", "nothing_to_retry",
             "campaign_exists"]
    for language in ("en", "id"):
        catalogue = load(language)
        assert [e["text"] for e in said[language][:-1]] == [
            catalogue[f"error.{code}"] for code in codes]
    # An unknown code still gets a sentence, with the HTTP status; the server's words and
    # code stay available as the detail.
    assert said["en"][-1] == {"text": "The request failed (HTTP 503).",
                              "detail": "m (something_new)"}
    assert said["id"][-1]["text"] == "Permintaan gagal (HTTP 503)."
    assert said["id"][1]["text"] == "Token API ditolak."
    assert said["id"][5]["text"] == "campaignd sedang sibuk. Coba lagi sebentar lagi."


def test_allowed_words_are_exactly_what_the_catalogues_share() -> None:
    """ALLOWED is explicit: a new word both languages use must be added here on purpose."""
    assert words(load("en")) & words(load("id")) == ALLOWED


# --- checks -----------------------------------------------------------------------


def _where(texts: list[str], bad: Callable[[str], bool]) -> dict[str, list[str]]:
    """The offending words, each with the texts it was seen in (for a readable failure)."""
    found: dict[str, list[str]] = {}
    for text in texts:
        for word in WORD.findall(text):
            if bad(word):
                found.setdefault(word, []).append(text.strip()[:120])
    return found


async def _has(page: Any, selector: str) -> bool:
    return await page.query_selector(selector) is not None


async def _is_live(page: Any) -> bool:
    return await live_state(page) == "connected"


async def _text(page: Any, selector: str, text: str) -> bool:
    return await dom(page, f"() => document.querySelector('{selector}')?.textContent") == text


async def _cards(page: Any, **expected: int) -> bool:
    shown = await cards(page)
    return all(shown.get(key) == value for key, value in expected.items())


BREAKDOWN_ITEMS = "() => [...document.querySelectorAll('#failure-breakdown .breakdown-item')]"


async def _breakdown_is(page: Any, expected: list[list[Any]]) -> bool:
    """The breakdown's categories and counts, in the page's order."""
    shown = await dom(page, f"{BREAKDOWN_ITEMS}.map(e => [e.dataset.category, "
                            "+e.dataset.count])")
    return bool(shown == expected)


async def _item_text(page: Any, category: str) -> str:
    item = f"#failure-breakdown .breakdown-item[data-category={category}]"
    return str(await page.inner_text(item))


async def _row_count(page: Any, n: int) -> bool:
    return await dom(page, "() => document.querySelectorAll('#recipients tbody tr[data-row]')"
                     ".length") == n
