"""The ingest actor hands a campaign ONE message per journal batch (all the requests the
batch committed, per source), not one per request (actors/ingest.py `_route`). What a
user checks: many concurrent webhooks of several sources and campaigns give exactly the
counters their events imply, and an event of a later attempt keeps its attempt inside
a merged batch (its place among the batch's events is where it was in its request)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Daemon, eventually, webjs_ack
from tests.fakes.gateways import FakeGateway
from tests.test_sending_attempts import config
from tests.test_sending_http import numbers, rows, send, wait_status


def cloud_statuses(*items: tuple[str, str]) -> dict[str, Any]:
    stamp = str(int(time.time()))
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "statuses": [
            {"id": message_id, "status": status, "timestamp": stamp,
             "recipient_id": "16505551234"} for message_id, status in items]}}]}]}


async def test_concurrent_requests_of_two_sources_and_campaigns_count_exactly(
        daemon: Daemon) -> None:
    uuids = []
    for c in range(2):
        campaign = await daemon.create_campaign(name=f"C{c}")
        await daemon.register(campaign["uuid"], [
            {"recipient": f"6281{c}{i:07d}", "message_id": f"B{c}-{i}"} for i in range(60)])
        uuids.append(campaign["uuid"])

    async def post(path: str, doc: Any) -> None:
        status, body = await daemon.post_json(path, doc)
        assert status == 200, body

    posts = []
    for c in range(2):
        for i in range(60):
            if i % 2:  # webjs: delivered, then (for a third) read, one request each
                posts.append(post("/webhooks/webjs", webjs_ack(f"B{c}-{i}", 2)))
                if i % 3 == 0:
                    posts.append(post("/webhooks/webjs", webjs_ack(f"B{c}-{i}", 3)))
            else:  # Cloud: a batch of two statuses for the same message
                posts.append(post("/webhooks/cloud", cloud_statuses(
                    (f"B{c}-{i}", "delivered"), (f"B{c}-{i}", "read" if i % 4 == 0 else
                                                 "delivered"))))
    await asyncio.gather(*posts)
    read = sum(1 for i in range(60) if (i % 2 and i % 3 == 0) or i % 4 == 0)
    for uuid in uuids:
        stats = await daemon.stats(uuid)
        assert stats["total_delivered_count"] == 60, stats
        assert stats["total_read_count"] == read, stats
    # a provider's retry of any of them changes nothing
    await post("/webhooks/webjs", webjs_ack("B0-1", 2))
    assert (await daemon.stats(uuids[0]))["total_delivered_count"] == 60


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway().start()
    yield gw
    await gw.close()


async def test_a_later_attempts_event_keeps_its_attempt_in_a_merged_batch(
        daemon_factory: Any, fake: FakeGateway) -> None:
    d = await daemon_factory(**config(fake))
    recipients = numbers(30)
    a = recipients[0]
    uuid = await send(d, recipients)
    await wait_status(d, uuid, "completed")
    ids = {r: row["message_id"] for r, row in (await rows(d, uuid)).items()}
    status, body = await d.post_json("/webhooks/webjs", webjs_ack(ids[a], -1))
    assert status == 200, body
    status, body = await d.post_json(f"/api/campaigns/{uuid}/retry-failed", {})
    assert status == 200 and body["requeued"] == 1

    async def accepted_again() -> Any:
        row = (await rows(d, uuid))[a]
        return row["send_state"] == "accepted" and row["attempt"] == 2 and row
    second = (await eventually(accepted_again))["message_id"]

    async def post(doc: Any) -> None:
        status, body = await d.post_json("/webhooks/webjs", doc)
        assert status == 200, body

    # In one burst (batches that merge many requests): every other recipient delivered
    # and, among them, attempt 2 failed. Attempt 2 is the latest, so its failure counts;
    # had its event lost its attempt in the merge it would count as attempt 1's (not the
    # latest: ignored).
    failed = webjs_ack(second, -1)
    failed["data"]["error"] = "131049: not delivered"
    burst = [post(webjs_ack(ids[r], 2)) for r in recipients[1:15]]
    burst.append(post(failed))
    burst += [post(webjs_ack(ids[r], 2)) for r in recipients[15:]]
    await asyncio.gather(*burst)
    stats = await d.stats(uuid)
    assert stats["total_failed_count"] == 1, stats
    assert stats["total_delivered_count"] == 29, stats
    row = (await rows(d, uuid))[a]
    assert row["attempt"] == 2 and row["failure_reason"] == "131049: not delivered", row
