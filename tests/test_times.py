"""Times outside a message's life (issue 22): a provider timestamp before the message was
registered (the README's Cloud fixture is from 2025, replayed fixtures, a gateway clock
behind ours) counts as the registration time; one after we received it (a clock ahead)
counts as the time we received it. The chart and time-to-X figures stay sane."""

from __future__ import annotations

import asyncio
import copy
import time
from datetime import datetime
from typing import Any

from tests.conftest import Daemon, eventually, fixture_json

WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA"


def seconds(iso: str | None) -> float:
    assert iso is not None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def cloud_status(status: str, timestamp: str, errors: bool = False) -> dict[str, Any]:
    doc = copy.deepcopy(fixture_json("cloud_status_failed.json"))
    entry = doc["entry"][0]["changes"][0]["value"]["statuses"][0]
    entry["status"], entry["timestamp"] = status, timestamp
    if not errors:
        entry.pop("errors", None)
    return doc


async def rows_by_id(d: Daemon, uuid: str) -> dict[str, Any]:
    status, body = await d.request("GET", f"/api/campaigns/{uuid}/messages")
    assert status == 200, body
    return {r["message_id"]: r for r in body["messages"]}


async def test_a_provider_time_before_registration_counts_as_registration(
        daemon: Daemon) -> None:
    started = time.time()
    await daemon.create_campaign(uuid="times-1")
    await daemon.register("times-1", [{"recipient": "16505551234", "message_id": WAMID}])
    fixture = fixture_json("cloud_status_failed.json")  # timestamp 1751142888: June 2025
    status, body = await daemon.post_json("/webhooks/cloud", fixture)
    assert status == 200 and body["events"] == 1

    async def failed() -> Any:
        row = (await rows_by_id(daemon, "times-1"))[WAMID]
        return row if row["status"] == "failed" else None

    row = await eventually(failed)
    stamps = row["timestamps"]
    assert stamps["failed"] == stamps["queued"]  # not a year before it
    assert started - 1 <= seconds(stamps["queued"]) <= time.time() + 1
    assert stamps["pending"] == stamps["queued"]  # registered with its id: never before

    status, body = await daemon.request("GET", "/api/campaigns/times-1/timeline")
    assert status == 200
    timeline = body["timeline"]
    assert timeline["resolution"] <= 2, timeline  # not 8929391 seconds per step
    for point in timeline["points"]:
        assert started - 2 <= seconds(point["t"]) <= time.time() + 2, point


async def test_a_provider_time_in_the_future_counts_as_received(daemon: Daemon) -> None:
    await daemon.create_campaign(uuid="times-2")
    await daemon.register("times-2", [{"recipient": "16505551234", "message_id": WAMID}])
    ahead = str(int(time.time()) + 86400)  # a gateway clock a day ahead
    status, _ = await daemon.post_json("/webhooks/cloud", cloud_status("delivered", ahead))
    assert status == 200
    after = time.time()

    async def delivered() -> Any:
        row = (await rows_by_id(daemon, "times-2"))[WAMID]
        return row if row["level"] == "delivered" else None

    row = await eventually(delivered)
    assert seconds(row["timestamps"]["delivered"]) <= after + 0.1
    stats = await daemon.stats("times-2")
    assert stats["time_to_deliver"]["median"] is not None
    assert stats["time_to_deliver"]["median"] < 60


async def test_provider_times_inside_the_life_are_kept(daemon: Daemon) -> None:
    await daemon.create_campaign(uuid="times-3")
    await daemon.register("times-3", [{"recipient": "16505551234", "message_id": WAMID}])
    sent_at = int(time.time()) + 1  # a second after registration, before "now" below
    while time.time() < sent_at + 0.2:
        await asyncio.sleep(0.05)
    status, _ = await daemon.post_json("/webhooks/cloud", cloud_status("sent", str(sent_at)))
    assert status == 200

    async def sent() -> Any:
        row = (await rows_by_id(daemon, "times-3"))[WAMID]
        return row if row["timestamps"]["sent"] else None

    row = await eventually(sent)
    assert seconds(row["timestamps"]["sent"]) == sent_at
