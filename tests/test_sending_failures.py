"""SPEC 7.1: the sender follows the failure table, against a fake Cloud API that answers
with Meta's Graph errors. Throttled and temporary refusals are retried until they go
through; a bad number or a template problem fails at once (one call); Limited by Meta
is retried after sender.marketing_cap_retry_after only when sender.retry_limited_by_meta
is on; an account problem pauses the campaign with its reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Daemon, eventually
from tests.fakes.gateways import FakeGateway


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway().start()
    yield gw
    await gw.close()


def cloud_config(fake: FakeGateway, **extra: Any) -> dict[str, Any]:
    return {"gateways.cloud.base_url": fake.url, "gateways.cloud.phone_number_id": "1055",
            "gateways.cloud.access_token": "cloud-token", "sender.backoff_base": 0.02,
            "sender.backoff_max": 0.05, "sender.failure_min_sample": 1000, **extra}


async def send(d: Daemon, recipients: list[str]) -> str:
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Promo", "message": "Halo", "gateway": "cloud",
        "recipients": recipients, "rate": 100, "start": True})
    assert status == 201, body
    return body["campaign"]["uuid"]


async def settled(d: Daemon, uuid: str, status: str) -> dict[str, Any]:
    async def check() -> Any:
        _, body = await d.request("GET", f"/api/campaigns/{uuid}")
        return body["campaign"]["status"] == status and body["campaign"]
    return await eventually(check, timeout=15)


async def rows(d: Daemon, uuid: str) -> dict[str, dict[str, Any]]:
    _, body = await d.request("GET", f"/api/campaigns/{uuid}/messages?limit=100")
    return {r["recipient"]: r for r in body["messages"]}


async def test_retry_or_fail_by_category(daemon_factory: Any, fake: FakeGateway) -> None:
    fake.script = {
        "6281200000001": [("graph", 130429, 400), ("graph", 130429, 400)],  # throttled
        "6281200000002": [("graph", 131000, 500)],  # temporary
        "6281200000003": [("graph", 131026, 400)],  # not on WhatsApp: never retried
        "6281200000004": [("graph", 132001, 400)],  # template: never retried
        "6281200000005": [("graph", 131049, 400)],  # Limited by Meta, retry off
        "6281200000006": [("graph", 131000, 500)] * 9,  # temporary, beyond max_attempts
    }
    d = await daemon_factory(**cloud_config(fake, **{"sender.max_attempts": 3}))
    uuid = await send(d, [f"628120000000{i}" for i in range(1, 7)])
    campaign = await settled(d, uuid, "completed")
    calls = fake.per_recipient()
    assert calls["6281200000001"] == 3 and calls["6281200000002"] == 2  # retried, then sent
    assert calls["6281200000003"] == calls["6281200000004"] == calls["6281200000005"] == 1
    assert calls["6281200000006"] == 3  # max_attempts
    by = await rows(d, uuid)
    assert by["6281200000001"]["status"] == by["6281200000002"]["status"] == "pending"
    assert by["6281200000003"]["failure"]["category"] == "not_on_whatsapp"
    assert by["6281200000003"]["failure"]["source"] == "cloud"
    assert by["6281200000004"]["failure"]["code"] == "132001"
    assert by["6281200000005"]["failure"]["category"] == "limited_by_meta"
    assert by["6281200000006"]["failure"]["category"] == "temporary"
    assert by["6281200000006"]["failure_reason"].startswith("gave up after 3 attempts")
    assert {e["category"]: e["count"] for e in campaign["statistics"]["failures"]} == {
        "not_on_whatsapp": 1, "limited_by_meta": 1, "template": 1, "temporary": 1}


async def test_limited_by_meta_is_retried_after_the_cap_when_enabled(
        daemon_factory: Any, fake: FakeGateway, tmp_path: Any) -> None:
    # A cap of an hour: the message waits, shown as Limited by Meta, and is not re-sent.
    fake.script = {"6281200000001": [("graph", 131049, 400)]}
    d = await daemon_factory(**cloud_config(fake, **{
        "sender.retry_limited_by_meta": True, "sender.marketing_cap_retry_after": 3600}))
    uuid = await send(d, ["6281200000001", "6281200000002"])

    async def waiting() -> Any:
        _, body = await d.request("GET", f"/api/campaigns/{uuid}/sending")
        progress = body["sending"]["progress"]
        return progress["retrying_count"] == 1 and len(fake.accepted()) == 1 and body
    body = await eventually(waiting)
    assert body["sending"]["status"] == "processing"
    assert (await rows(d, uuid))["6281200000001"]["failure"]["category"] == "limited_by_meta"
    assert fake.per_recipient()["6281200000001"] == 1
    await d.post_json(f"/api/campaigns/{uuid}/cancel", {})
    # A cap this short: the retry goes out and is accepted.
    fake.script = {"6281200000003": [("graph", 131049, 400)]}
    d = await daemon_factory(**cloud_config(fake, **{
        "store.path": str(tmp_path / "second.sqlite3"),
        "sender.retry_limited_by_meta": True, "sender.marketing_cap_retry_after": 0.2}))
    uuid = await send(d, ["6281200000003"])
    await settled(d, uuid, "completed")
    assert fake.per_recipient()["6281200000003"] == 2
    row = (await rows(d, uuid))["6281200000003"]  # the retry is attempt 2 (SPEC 9)
    assert row["send_state"] == "accepted" and row["attempt"] == 2
    assert [a["outcome"] for a in row["previous_attempts"]] == ["failed"]


async def test_an_account_problem_pauses_the_campaign_with_its_reason(
        daemon_factory: Any, fake: FakeGateway) -> None:
    fake.script = {"6281200000002": [("graph", 131042, 400)]}
    d = await daemon_factory(**cloud_config(fake, **{"sender.max_in_flight": 1}))
    uuid = await send(d, [f"628120000000{i}" for i in range(1, 6)])
    campaign = await settled(d, uuid, "paused")
    _, body = await d.request("GET", f"/api/campaigns/{uuid}/sending")
    assert "131042" in body["sending"]["status_reason"]
    assert campaign["statistics"]["total_failed_count"] == 0  # refused, not sent: requeued
    assert body["sending"]["send_states"].get("queued", 0) >= 3
    # resuming sends the rest (the fake has nothing more scripted)
    status, _ = await d.post_json(f"/api/campaigns/{uuid}/resume", {})
    assert status == 200
    await settled(d, uuid, "completed")
    assert len(fake.accepted()) == 5


async def test_an_expired_token_pauses_too(daemon_factory: Any, fake: FakeGateway) -> None:
    fake.token = "another-token"  # the fake answers Graph 190 with HTTP 401
    d = await daemon_factory(**cloud_config(fake))
    uuid = await send(d, ["6281200000001", "6281200000002"])
    await settled(d, uuid, "paused")
    _, body = await d.request("GET", f"/api/campaigns/{uuid}/sending")
    assert "190" in body["sending"]["status_reason"]


@pytest.mark.parametrize("restart", [False, True])
async def test_limited_by_meta_reported_after_acceptance_is_re_sent_once(
        daemon_factory: Any, fake: FakeGateway, restart: bool) -> None:
    """Cloud reports 131049 in a status webhook after accepting the send: with the retry
    on, the message goes out once more after the cap, and its campaign completes again;
    the wait is read from the rows, so it survives a restart."""
    cap = 3600 if restart else 0.3
    d = await daemon_factory(**cloud_config(fake, **{
        "sender.retry_limited_by_meta": True, "sender.marketing_cap_retry_after": cap}))
    uuid = await send(d, ["6281200000001", "6281200000002"])
    await settled(d, uuid, "completed")
    wamid = (await rows(d, uuid))["6281200000001"]["message_id"]
    status, _ = await d.post_json("/webhooks/cloud", {"object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {"statuses": [{
            "id": wamid, "status": "failed", "timestamp": "1751247548",
            "recipient_id": "6281200000001", "errors": [{
                "code": 131049, "title": "This message was not delivered to maintain "
                "healthy ecosystem engagement."}]}]}}]}]})
    assert status == 200
    if restart:
        await eventually(lambda: _limited(d, uuid))
        await d.runtime.checkpoint()
        await d.server.close()
        assert fake.per_recipient()["6281200000001"] == 1
        d = await daemon_factory(**cloud_config(fake, **{
            "sender.retry_limited_by_meta": True, "sender.marketing_cap_retry_after": 0.3}))

    async def re_sent() -> Any:
        by = await rows(d, uuid)
        row = by["6281200000001"]  # the retry is attempt 2 (SPEC 9), the first failed
        return (fake.per_recipient()["6281200000001"] == 2 and row["attempt"] == 2
                and row["send_state"] == "accepted"
                and [a["outcome"] for a in row["previous_attempts"]] == ["failed"] and by)
    by = await eventually(re_sent, timeout=15)
    await settled(d, uuid, "completed")
    assert fake.per_recipient()["6281200000002"] == 1  # only the limited one
    # Once: Meta limits the retry too; it counts as failed again and waits for nobody.
    status, _ = await d.post_json("/webhooks/cloud", {"object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {"statuses": [{
            "id": by["6281200000001"]["message_id"], "status": "failed",
            "timestamp": "1751247600", "recipient_id": "6281200000001",
            "errors": [{"code": 131049, "title": "Not delivered"}]}]}}]}]})
    assert status == 200
    assert (await d.stats(uuid))["total_failed_count"] == 1
    await d.runtime.checkpoint()
    assert await d.runtime.campaigns.limited_waiting() == []


async def _limited(d: Daemon, uuid: str) -> bool:
    stats = await d.stats(uuid)
    return any(e["category"] == "limited_by_meta" for e in stats["failures"])
