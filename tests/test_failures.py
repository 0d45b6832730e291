"""SPEC 7.1: every code family, sent through a real webhook of its source, lands in the
failure breakdown, the rows API (failure object, category filter) and the CSV export.

One daemon, one tracked campaign, one registered message per case; each case posts the
failure exactly as its gateway does, and the campaign's `statistics.failures` must then
name the category and code the table (domain/failures.py) gives it."""

from __future__ import annotations

import csv
import io
import time
from typing import Any
from urllib.parse import urlencode

import orjson

from domain.failures import CATEGORY_NAMES, lookup
from tests.conftest import Daemon, eventually, webjs_ack


def cloud_failure(wamid: str, code: int, title: str, details: str | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "title": title, "message": title,
                             "href": "https://developers.facebook.com/docs/whatsapp/"
                                     "cloud-api/support/error-codes/"}
    if details:
        error["error_data"] = {"details": details}
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
            "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881",
                             "phone_number_id": "106540352242922"},
                "statuses": [{"id": wamid, "status": "failed",
                              "timestamp": str(int(time.time())),
                              "recipient_id": "6281234567890", "errors": [error]}]}}]}]}


def twilio_failure(sid: str, status: str, code: str, message: str) -> bytes:
    return urlencode({"MessageSid": sid, "MessageStatus": status, "ErrorCode": code,
                      "ErrorMessage": message, "ChannelToAddress": "+6281234567890",
                      "AccountSid": "AC00000000000000000000000000000000"}).encode()


# (message id, how to post it, expected category, expected code in the breakdown)
def cases() -> list[tuple[str, tuple[str, Any], str, str]]:
    out: list[tuple[str, tuple[str, Any], str, str]] = []
    meta = [  # one code per category, and the families the table covers by pattern
        (131050, "User has stopped marketing messages", "opted_out"),
        (131026, "Message undeliverable", "not_on_whatsapp"),
        (131009, "Parameter value is not valid", "not_on_whatsapp"),
        (131049, "This message was not delivered to maintain healthy ecosystem "
                 "engagement.", "limited_by_meta"),
        (130472, "User's number is part of an experiment", "limited_by_meta"),
        (130429, "Rate limit hit", "throttled"),
        (131056, "(Business, Consumer) pair rate limit hit", "throttled"),
        (132015, "Template is paused", "template"),
        (132999, "A template error the table does not list", "template"),  # 132xxx
        (131008, "Required parameter is missing", "template"),
        (131047, "Re-engagement message", "window_closed"),
        (131042, "Business eligibility payment issue", "account"),
        (133005, "Two step verification PIN mismatch", "account"),  # 133xxx
        (131000, "Something went wrong", "temporary"),
        (131016, "Service unavailable", "temporary"),
        (135000, "Generic user error", "other"),  # unknown code
    ]
    for code, title, category in meta:
        wamid = f"wamid.CASE{code}"
        out.append((wamid, ("cloud", cloud_failure(wamid, code, title, title + ".")),
                    category, str(code)))
    twilio = [("63014", "undelivered", "opted_out"), ("21610", "failed", "opted_out"),
              ("63024", "undelivered", "not_on_whatsapp"),
              ("63049", "undelivered", "limited_by_meta"), ("63018", "failed", "throttled"),
              ("63016", "failed", "window_closed"), ("63021", "failed", "template"),
              ("30007", "undelivered", "other")]
    for code, status, category in twilio:
        sid = f"SM{code}0000000000000000000000000"
        out.append((sid, ("twilio", twilio_failure(sid, status, code, f"error {code}")),
                    category, code))
    out.append(("WEBJSACKERR1", ("webjs", webjs_ack("WEBJSACKERR1", -1)), "other",
                "ack_error"))
    webjs_coded = webjs_ack("WEBJSCODED01", -1)
    webjs_coded["data"]["error"] = {"code": 131049, "message": "Meta chose not to deliver"}
    out.append(("WEBJSCODED01", ("webjs", webjs_coded), "limited_by_meta", "131049"))
    webjs_text = webjs_ack("WEBJSTEXT001", -1)
    webjs_text["data"]["error"] = "63016: Outside messaging window"
    out.append(("WEBJSTEXT001", ("webjs", webjs_text), "window_closed", "63016"))
    out.append(("WAHAACKERR01", ("waha", {
        "event": "message.ack", "session": "default", "payload": {
            "id": "true_6281234567890@c.us_WAHAACKERR01", "fromMe": True, "ack": -1,
            "ackName": "ERROR"}}), "other", "ack_error"))
    out.append(("EVOERROR0001", ("evolution", {
        "event": "messages.update", "instance": "main", "data": {
            "keyId": "EVOERROR0001", "remoteJid": "6281234567890@s.whatsapp.net",
            "fromMe": True, "status": "ERROR"}}), "other", "ack_error"))
    return out


async def post(d: Daemon, source: str, doc: Any) -> None:
    if source == "twilio":
        status, body = await d.request(
            "POST", "/webhooks/twilio", data=doc,
            headers={"Content-Type": "application/x-www-form-urlencoded"})
    else:
        status, body = await d.post_json(f"/webhooks/{source}", doc)
    assert status == 200, (source, body)


async def test_every_code_family_reaches_the_breakdown_rows_and_csv(daemon: Daemon) -> None:
    all_cases = cases()
    await daemon.create_campaign(uuid="families")
    await daemon.register("families", [
        {"recipient": f"62812{i:07d}", "message_id": mid} for i, (mid, *_)
        in enumerate(all_cases)])
    # ...plus one registered as failed with only a text reason (a gateway's own words)
    await daemon.register("families", [{"recipient": "6281299999999",
                                        "message_id": "REGISTERED01",
                                        "error": "131026: Message undeliverable"}])
    for _mid, (source, doc), _category, _code in all_cases:
        await post(daemon, source, doc)

    expected: dict[str, dict[str, int]] = {}
    for *_, category, code in [*all_cases, ("", None, "not_on_whatsapp", "131026")]:
        codes = expected.setdefault(category, {})
        codes[code] = codes.get(code, 0) + 1

    async def breakdown() -> Any:
        stats = await daemon.stats("families")
        got = {e["category"]: e["codes"] for e in stats["failures"]}
        return got == expected and stats
    stats = await eventually(breakdown)
    assert stats["total_failed_count"] == len(all_cases) + 1
    assert sum(e["count"] for e in stats["failures"]) == stats["total_failed_count"]
    # in the table's order, each with its plain label
    assert [e["category"] for e in stats["failures"]] == [
        c for c in CATEGORY_NAMES if c in expected]
    assert {e["category"]: e["label"] for e in stats["failures"]}["limited_by_meta"] == \
        "Limited by Meta"

    # the rows API: a failure object per failed row, and the category filter
    status, body = await daemon.request("GET", "/api/campaigns/families/messages?limit=100")
    assert status == 200
    by_id = {r["message_id"]: r for r in body["messages"]}
    cloud = by_id["wamid.CASE131026"]["failure"]
    assert cloud == {"source": "cloud", "code": "131026", "title": "Message undeliverable",
                     "details": "Message undeliverable.", "category": "not_on_whatsapp",
                     "label": lookup("131026").label, "at": cloud["at"]}
    assert by_id["wamid.CASE131026"]["failure_reason"].startswith("131026: Message")
    assert by_id["SM63016" + "0" * 25]["failure"]["source"] == "twilio"
    assert by_id["REGISTERED01"]["failure"]["code"] == "131026"
    for category, codes in expected.items():
        for query in (f"status=failed&category={category}", f"category={category}"):
            status, body = await daemon.request(
                "GET", f"/api/campaigns/families/messages?{query}&limit=100")
            assert status == 200, body
            assert {r["failure"]["category"] for r in body["messages"]} == {category}
            assert len(body["messages"]) == sum(codes.values()), (category, query)
    status, body = await daemon.request(
        "GET", "/api/campaigns/families/messages?status=read&category=other")
    assert status == 400 and body["error"]["field"] == "category"
    status, body = await daemon.request(
        "GET", "/api/campaigns/families/messages?category=nonsense")
    assert status == 400 and body["error"]["field"] == "category"

    # the CSV: failure_code and failure_category beside the reason
    async with daemon.session.get(daemon.url("/api/campaigns/families/export.csv")) as resp:
        text = await resp.text()
    rows = {r["message_id"]: r for r in csv.DictReader(io.StringIO(text))}
    assert rows["wamid.CASE132999"]["failure_code"] == "132999"
    assert rows["wamid.CASE132999"]["failure_category"] == "template"
    assert rows["WEBJSACKERR1"]["failure_code"] == "ack_error"
    assert rows["WEBJSACKERR1"]["failure_category"] == "other"


async def test_a_later_delivery_leaves_the_breakdown_and_the_table_route(
        daemon: Daemon) -> None:
    await daemon.create_campaign(uuid="later")
    await daemon.register("later", [{"recipient": "6281234567890",
                                     "message_id": "wamid.LATER"}])
    await post(daemon, "cloud", cloud_failure("wamid.LATER", 131049, "Meta chose not to "
                                              "deliver"))
    await eventually(lambda: _failed(daemon, "later", 1))
    delivered = cloud_failure("wamid.LATER", 0, "")
    delivered["entry"][0]["changes"][0]["value"]["statuses"][0].update(
        status="delivered", errors=None)
    delivered["entry"][0]["changes"][0]["value"]["statuses"][0].pop("errors")
    await post(daemon, "cloud", delivered)
    stats = await eventually(lambda: _failed(daemon, "later", 0))
    assert stats["failures"] == []  # delivery evidence wins; the reason is still kept
    status, body = await daemon.request("GET", "/api/campaigns/later/messages")
    assert body["messages"][0]["failure"]["code"] == "131049"

    status, body = await daemon.request("GET", "/api/failures")
    assert status == 200
    table = body["failures"]
    assert [c["category"] for c in table["categories"]] == list(CATEGORY_NAMES)
    limited = next(c for c in table["categories"] if c["category"] == "limited_by_meta")
    assert limited["retry"] == "later" and "24 hours" in limited["action"]
    assert {"code": "132xxx", "category": "template"}.items() <= next(
        c for c in table["codes"] if c["code"] == "132xxx").items()


async def _failed(d: Daemon, uuid: str, n: int) -> Any:
    stats = await d.stats(uuid)
    return stats["total_failed_count"] == n and stats


async def test_a_journal_row_of_release_0_1_replays_with_its_code(daemon_factory: Any,
                                                                   tmp_path: Any) -> None:
    """0.1 journaled failures as text only: after a restart their code comes from it."""
    d = await daemon_factory(**{"store.checkpoint_interval": 3600})
    await d.create_campaign(uuid="old")
    await d.register("old", [{"recipient": "6281234567890", "message_id": "wamid.OLD1"},
                             {"recipient": "6281234567891", "message_id": "wamid.OLD2"}])
    await d.runtime.checkpoint()
    now = time.time()
    rows = [["cloud", [["wamid.OLD1", 0, True, now, "131049: This message was not "
                        "delivered to maintain healthy ecosystem engagement.",
                        "6281234567890"],
                       ["wamid.OLD2", 0, True, now, "failed (no error given)", None]]]]
    seq = d.runtime.journal.next_seq + 10
    await d.runtime.store.transaction([(
        "INSERT INTO journal (seq, source, received_at, events) VALUES (?,?,?,?)",
        (seq, "cloud", now, orjson.dumps(rows)), False)])
    await d.server.close()
    d2 = await daemon_factory(**{"store.checkpoint_interval": 3600})
    stats = await eventually(lambda: _failed(d2, "old", 2))
    assert {e["category"]: e["codes"] for e in stats["failures"]} == {
        "limited_by_meta": {"131049": 1}, "other": {"none": 1}}


async def test_the_breakdown_is_pushed_live_with_the_statistics(daemon: Daemon) -> None:
    from tests.test_pusher_protocol import Client

    await daemon.create_campaign(uuid="pushed")
    await daemon.register("pushed", [{"recipient": "6281234567890",
                                      "message_id": "wamid.PUSHED"}])
    client = await Client.connect(daemon)
    await client.subscribe("campaign.pushed")
    await post(daemon, "cloud", cloud_failure("wamid.PUSHED", 131047,
                                              "Re-engagement message"))
    frame = await client.until(lambda f: f["event"] == "campaign.statistics.updated"
                               and f["data"]["statistics"]["total_failed_count"] == 1)
    assert frame["data"]["statistics"]["failures"] == [{
        "category": "window_closed", "label": "Window closed", "count": 1,
        "codes": {"131047": 1}}]
    rows = await client.until(lambda f: f["event"] == "campaign.messages.updated")
    assert rows["data"]["rows"][0]["failure"]["category"] == "window_closed"


async def test_account_health_is_the_daemons(daemon_factory: Any) -> None:
    admin, one = "a" * 32, "b" * 32
    d = await daemon_factory(**{"api.tokens": [{"token": admin, "workspace": "*"},
                                               {"token": one, "workspace": 1}]})
    status, body = await d.request("GET", "/api/account/health",
                                   headers={"Authorization": f"Bearer {one}"})
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await d.request("GET", "/api/account/health",
                                   headers={"Authorization": f"Bearer {admin}"})
    assert status == 200 and body["health"] == {"numbers": [], "accounts": [],
                                                "templates": []}
    status, body = await d.request("GET", "/api/failures",
                                   headers={"Authorization": f"Bearer {one}"})
    assert status == 200 and body["failures"]["categories"]
