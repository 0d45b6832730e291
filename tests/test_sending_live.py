"""A sending campaign as a pusher-js client sees it: status changes pushed live."""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def test_status_changes_are_pushed_to_the_campaign_channel(daemon_factory: Any) -> None:
    d = await daemon_factory(**{"gateways.simulator.sent_after": 0.02,
                                "gateways.simulator.reject_ratio": 0.0})
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Live", "message": "Hi",
        "recipients": [str(6281600000000 + i) for i in range(5)], "rate": 100})
    assert status == 201, body
    uuid = body["campaign"]["uuid"]
    async with d.session.ws_connect(d.url("/app/campaignd-key?protocol=7&client=js")) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["event"] == "pusher:connection_established"
        await ws.send_json({"event": "pusher:subscribe", "data": {"channel": f"campaign.{uuid}"}})
        while (await ws.receive_json(timeout=5))["event"] != \
                "pusher_internal:subscription_succeeded":
            pass
        status, _ = await d.post_json(f"/api/campaigns/{uuid}/start", {})
        assert status == 200
        seen: list[tuple[str, str]] = []

        async def until_completed() -> dict[str, Any]:
            while True:
                frame = await ws.receive_json()
                if frame["event"] == "campaign.status.changed":
                    data = json.loads(frame["data"])
                    seen.append((data["previous"], data["status"]))
                    if data["status"] == "completed":
                        return data
        final = await asyncio.wait_for(until_completed(), 20)
    assert seen == [("pending", "processing"), ("processing", "completed")]
    assert final["campaign_uuid"] == uuid
    assert final["statistics"]["total_sent_count"] == 5
    assert final["statistics"]["total_remaining_count"] == 0
