"""The limits docs/reliability.md promises: each limit itself is accepted, one over it is
refused with the documented 4xx naming the field, and the refusal changes nothing (no
journal row, no registered message, no campaign)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Daemon

JSON = {"Content-Type": "application/json"}


def cloud_batch(count: int, prefix: str) -> dict[str, Any]:
    statuses = [{"id": f"{prefix}{i}", "status": "delivered", "timestamp": "1750000000",
                 "recipient_id": "6281200000000"} for i in range(count)]
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp",
                                        "statuses": statuses}}]}]}


def webjs_array(count: int, prefix: str) -> list[dict[str, Any]]:
    return [{"event": "message_status_updated", "data": {"message_id": f"{prefix}{i}",
                                                         "ack_level": 2}}
            for i in range(count)]


def nested(levels: int) -> str:
    """`levels` arrays, one inside the other."""
    return "[" * levels + "]" * levels


async def test_message_registrations_per_request(daemon: Daemon) -> None:
    campaign = await daemon.create_campaign()
    path = f"/api/campaigns/{campaign['uuid']}/messages"
    over = [{"recipient": "6281200000000", "message_id": f"OVER{i}"} for i in range(10_001)]
    status, body = await daemon.post_json(path, {"messages": over})
    assert status == 413, body
    assert (body["error"]["code"], body["error"]["field"]) == ("too_many_messages", "messages")
    assert (await daemon.stats(campaign["uuid"]))["total_message_count"] == 0

    status, body = await daemon.post_json(path, {"messages": over[:10_000]})
    assert status == 201, body
    assert (await daemon.stats(campaign["uuid"]))["total_message_count"] == 10_000


async def test_recipients_per_created_campaign(daemon: Daemon) -> None:
    numbers = [str(6281300000000 + i) for i in range(100_001)]
    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Too big", "message": "Hi", "recipients": numbers})
    assert status == 413, body
    assert (body["error"]["code"], body["error"]["field"]) == (
        "too_many_recipients", "recipients")
    _, listing = await daemon.request("GET", "/api/campaigns")
    assert listing["campaigns"] == []

    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Just fits", "message": "Hi", "recipients": numbers[:-1]})
    assert status == 201, body
    assert body["campaign"]["statistics"]["total_message_count"] == 100_000


async def test_recipients_limit_follows_its_key(daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"sender.max_recipients": 3})
    numbers = [str(6281300000000 + i) for i in range(4)]
    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Over", "message": "Hi", "recipients": numbers})
    assert (status, body["error"]["code"]) == (413, "too_many_recipients")
    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Fits", "message": "Hi", "recipients": numbers[:3]})
    assert status == 201, body


async def test_cloud_statuses_per_request(daemon: Daemon) -> None:
    seq = daemon.runtime.journal.next_seq
    status, body = await daemon.post_json("/webhooks/cloud", cloud_batch(5_001, "wamid.OVER"))
    assert status == 422, body
    assert (body["error"]["code"], body["error"]["field"]) == ("invalid_payload", "entry")
    assert daemon.runtime.journal.next_seq == seq  # nothing journaled

    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [
        {"recipient": "6281200000000", "message_id": f"wamid.FIT{i}"} for i in range(5_000)])
    status, body = await daemon.post_json("/webhooks/cloud", cloud_batch(5_000, "wamid.FIT"))
    assert status == 200, body
    assert (await daemon.stats(campaign["uuid"]))["total_delivered_count"] == 5_000


async def test_webjs_events_per_array(daemon: Daemon) -> None:
    seq = daemon.runtime.journal.next_seq
    status, body = await daemon.post_json("/webhooks/webjs", webjs_array(1_001, "OVER"))
    assert status == 400, body
    assert body["error"]["code"] == "invalid_payload"
    assert "1000 events" in body["error"]["message"]
    assert daemon.runtime.journal.next_seq == seq

    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [
        {"recipient": "6281200000000", "message_id": f"FIT{i}"} for i in range(1_000)])
    status, body = await daemon.post_json("/webhooks/webjs", webjs_array(1_000, "FIT"))
    assert status == 200, body
    assert (await daemon.stats(campaign["uuid"]))["total_delivered_count"] == 1_000


async def test_json_nesting_depth(daemon: Daemon) -> None:
    """A document 1,024 levels deep (its own object is the first) is read (the deep part
    sits in a field nobody reads), 1,025 are refused with 400, on a webhook and on an
    API route alike."""
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [{"recipient": "1", "message_id": "DEEP"}])

    def webjs(depth: int) -> bytes:
        return ('{"event": "message_status_updated", "data": {"message_id": "DEEP", '
                f'"ack_level": 3}}, "extra": {nested(depth - 1)}}}').encode()

    seq = daemon.runtime.journal.next_seq
    status, body = await daemon.request("POST", "/webhooks/webjs", data=webjs(1_025),
                                        headers=JSON)
    assert (status, body["error"]["code"]) == (400, "invalid_payload"), body
    assert daemon.runtime.journal.next_seq == seq
    status, body = await daemon.request("POST", "/webhooks/webjs", data=webjs(1_024),
                                        headers=JSON)
    assert status == 200, body
    assert (await daemon.stats(campaign["uuid"]))["total_read_count"] == 1

    def create(depth: int, name: str) -> bytes:
        return (f'{{"workspace_id": 1, "name": "{name}", "extra": {nested(depth - 1)}}}'
                ).encode()

    status, body = await daemon.request("POST", "/api/campaigns", data=create(1_025, "Deep"),
                                        headers=JSON)
    assert (status, body["error"]["code"]) == (400, "invalid_json"), body
    status, body = await daemon.request("POST", "/api/campaigns", data=create(1_024, "Deep"),
                                        headers=JSON)
    assert status == 201, body
    _, listing = await daemon.request("GET", "/api/campaigns")
    assert [c["name"] for c in listing["campaigns"]].count("Deep") == 1
