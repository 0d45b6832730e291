"""The JSON API of SPEC 3.2 as a client uses it, and its refusals."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Daemon

JSON = {"Content-Type": "application/json"}


async def webjs(daemon: Daemon, message_id: str, ack: int) -> None:
    status, body = await daemon.post_json("/webhooks/webjs", {
        "event": "message_status_updated",
        "data": {"message_id": message_id, "ack_level": ack, "workspace_id": 1}})
    assert status == 200, body


async def test_create_get_list(daemon: Daemon):
    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 7, "name": "Promo Ramadan", "uuid": "promo-ramadan-2026"})
    assert status == 201
    campaign = body["campaign"]
    assert campaign["uuid"] == "promo-ramadan-2026" and campaign["status"] == "tracking"
    assert campaign["statistics"]["total_message_count"] == 0
    assert isinstance(campaign["id"], int) and campaign["workspace_id"] == 7
    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 7, "name": "again", "uuid": "promo-ramadan-2026"})
    assert status == 409 and body["error"]["field"] == "uuid"
    other = await daemon.create_campaign(workspace_id=8, name="Other")
    status, body = await daemon.request("GET", "/api/campaigns?workspace_id=7")
    assert [c["uuid"] for c in body["campaigns"]] == ["promo-ramadan-2026"]
    status, body = await daemon.request("GET", "/api/campaigns")
    assert [c["uuid"] for c in body["campaigns"]] == [other["uuid"], "promo-ramadan-2026"]
    status, body = await daemon.request("GET", "/api/campaigns?limit=1")
    assert len(body["campaigns"]) == 1 and body["next_cursor"]
    cursor = body["next_cursor"]
    status, body = await daemon.request("GET", f"/api/campaigns?limit=1&cursor={cursor}")
    assert [c["uuid"] for c in body["campaigns"]] == ["promo-ramadan-2026"]
    status, body = await daemon.request("GET", "/api/campaigns/promo-ramadan-2026")
    assert status == 200 and body["campaign"]["name"] == "Promo Ramadan"
    status, body = await daemon.request("GET", "/api/campaigns/nope")
    assert status == 404 and body["error"]["code"] == "campaign_not_found"


async def test_registration_is_idempotent_and_statistics_follow(daemon: Daemon):
    campaign = await daemon.create_campaign()
    uuid = campaign["uuid"]
    messages = [{"recipient": f"62811000{i:03d}", "message_id": f"true_62811000{i:03d}@c.us_ID{i}",
                 "contact_id": i} for i in range(10)]
    assert await daemon.register(uuid, messages) == {"registered": 10, "duplicates": 0}
    # the same request again, and the ids in bare form: nothing new
    assert await daemon.register(uuid, messages) == {"registered": 0, "duplicates": 10}
    bare = [{**m, "message_id": f"ID{i}"} for i, m in enumerate(messages)]
    assert await daemon.register(uuid, bare) == {"registered": 0, "duplicates": 10}
    await daemon.register(uuid, [{"recipient": "6281", "message_id": "F1", "status": "failed",
                                  "error": "number not on WhatsApp"}])
    for i in range(6):
        await webjs(daemon, f"ID{i}", 2)
    for i in range(3):
        await webjs(daemon, f"ID{i}", 3)
    stats = await daemon.stats(uuid)
    assert stats["total_message_count"] == 11
    assert stats["total_sent_count"] == 10
    assert stats["total_delivered_count"] == 6
    assert stats["total_read_count"] == 3
    assert stats["total_failed_count"] == 1
    assert stats["delivery_rate"] == 60.0 and stats["read_rate"] == 50.0
    assert stats["progress"] == 100.0
    assert stats["time_to_deliver"]["median"] is not None


async def test_message_id_of_another_campaign_is_a_conflict(daemon: Daemon):
    a = await daemon.create_campaign()
    b = await daemon.create_campaign()
    await daemon.register(a["uuid"], [{"recipient": "1", "message_id": "SHARED"}])
    status, body = await daemon.post_json(f"/api/campaigns/{b['uuid']}/messages", {"messages": [
        {"recipient": "2", "message_id": "FINE"}, {"recipient": "1", "message_id": "SHARED"}]})
    assert status == 409 and body["error"]["field"] == "messages[1].message_id"
    assert (await daemon.stats(b["uuid"]))["total_message_count"] == 0  # all or nothing


async def test_rows_filter_search_and_cursor(daemon: Daemon):
    campaign = await daemon.create_campaign()
    uuid = campaign["uuid"]
    await daemon.register(uuid, [{"recipient": f"628{i:04d}", "message_id": f"M{i}"}
                                 for i in range(25)])
    for i in range(10):
        await webjs(daemon, f"M{i}", 2)
    for i in range(4):
        await webjs(daemon, f"M{i}", 3)
    await webjs(daemon, "M20", -1)
    base = f"/api/campaigns/{uuid}/messages"
    status, body = await daemon.request("GET", f"{base}?status=delivered")
    assert [r["row"] for r in body["messages"]] == list(range(10))
    status, body = await daemon.request("GET", f"{base}?status=read")
    assert {r["status"] for r in body["messages"]} == {"read"} and len(body["messages"]) == 4
    row = body["messages"][0]
    assert row["timestamps"]["read"] and row["timestamps"]["delivered"]
    status, body = await daemon.request("GET", f"{base}?status=failed")
    assert [(r["recipient"], r["status"]) for r in body["messages"]] == [("6280020", "failed")]
    status, body = await daemon.request("GET", f"{base}?search=628001")
    assert [r["recipient"] for r in body["messages"]] == [f"628001{i}" for i in range(10)]
    seen, cursor = [], None
    while True:
        query = f"{base}?limit=7" + (f"&cursor={cursor}" if cursor else "")
        _status, body = await daemon.request("GET", query)
        seen += [r["row"] for r in body["messages"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == list(range(25))


async def test_timeline(daemon: Daemon):
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [{"recipient": "1", "message_id": "T1"},
                                             {"recipient": "2", "message_id": "T2"}])
    await webjs(daemon, "T1", 3)
    status, body = await daemon.request("GET", f"/api/campaigns/{campaign['uuid']}/timeline")
    assert status == 200
    last = body["timeline"]["points"][-1]
    assert (last["sent"], last["delivered"], last["read"], last["failed"]) == (2, 1, 1, 0)


BAD_CREATE = [
    ({}, "workspace_id"), ({"workspace_id": "x", "name": "a"}, "workspace_id"),
    ({"workspace_id": 0, "name": "a"}, "workspace_id"), ({"workspace_id": 1}, "name"),
    ({"workspace_id": 1, "name": ""}, "name"), ({"workspace_id": 1, "name": "a" * 500}, "name"),
    ({"workspace_id": 1, "name": "a", "uuid": "has space"}, "uuid"),
    ({"workspace_id": True, "name": "a"}, "workspace_id"),
    ({"workspace_id": 10**30, "name": "a"}, "workspace_id"),
]


@pytest.mark.parametrize(("doc", "field"), BAD_CREATE)
async def test_bad_create_names_the_field(daemon: Daemon, doc, field):
    status, body = await daemon.post_json("/api/campaigns", doc)
    assert 400 <= status < 500 and body["error"]["field"] == field
    status, body = await daemon.request("GET", "/api/campaigns")
    assert body["campaigns"] == []


BAD_REGISTER = [
    ({"messages": "x"}, "messages"), ({"messages": []}, "messages"),
    ({"messages": [1]}, "messages[0]"), ({"messages": [{"message_id": "A"}]},
                                         "messages[0].recipient"),
    ({"messages": [{"recipient": "1"}]}, "messages[0].message_id"),
    ({"messages": [{"recipient": "1", "message_id": "A"}, {"recipient": "1", "message_id": 5}]},
     "messages[1].message_id"),
    ({"messages": [{"recipient": "1", "message_id": "A", "status": "bounced"}]},
     "messages[0].status"),
    ({"messages": [{"recipient": "1", "message_id": "A", "contact_id": [1]}]},
     "messages[0].contact_id"),
]


@pytest.mark.parametrize(("doc", "field"), BAD_REGISTER)
async def test_bad_registration_names_the_field_and_applies_nothing(daemon: Daemon, doc, field):
    campaign = await daemon.create_campaign()
    status, body = await daemon.post_json(f"/api/campaigns/{campaign['uuid']}/messages", doc)
    assert 400 <= status < 500 and body["error"]["field"] == field
    assert (await daemon.stats(campaign["uuid"]))["total_message_count"] == 0


@pytest.mark.parametrize("body", [b"", b"{", b"[1]", b"\xff", b'"s"'])
async def test_bad_json_on_api(daemon: Daemon, body: bytes):
    status, err = await daemon.request("POST", "/api/campaigns", data=body, headers=JSON)
    assert status == 400 and err["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("query", ["status=bogus", "limit=0", "limit=x", "cursor=abc",
                                   "search=" + "x" * 200])
async def test_bad_query_on_rows(daemon: Daemon, query: str):
    campaign = await daemon.create_campaign()
    status, err = await daemon.request("GET", f"/api/campaigns/{campaign['uuid']}/messages?{query}")
    assert status == 400 and err["error"]["field"] == query.split("=")[0]


async def test_body_limit_on_api(daemon_factory):
    daemon = await daemon_factory(**{"server.max_body_bytes": 4096})
    campaign = await daemon.create_campaign()
    big = json.dumps({"messages": [{"recipient": "1" * 10, "message_id": f"M{i}"}
                                   for i in range(500)]})
    status, err = await daemon.request("POST", f"/api/campaigns/{campaign['uuid']}/messages",
                                       data=big, headers=JSON)
    assert status == 413 and err["error"]["code"] == "body_too_large"


async def test_tokens_guard_the_api(daemon_factory):
    daemon = await daemon_factory(**{"api.tokens": [
        {"token": "all-workspaces-token-0001", "workspace": "*"},
        {"token": "workspace-2-token-000001", "workspace": 2}]})
    admin = {"Authorization": "Bearer all-workspaces-token-0001"}
    ws2 = {"Authorization": "Bearer workspace-2-token-000001"}
    status, body = await daemon.request("GET", "/api/campaigns")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await daemon.request("GET", "/api/campaigns", headers={
        "Authorization": "Bearer wrong-token-wrong-token"})
    assert status == 401
    status, body = await daemon.post_json("/api/campaigns", {"workspace_id": 1, "name": "a"},
                                          headers=admin)
    one = body["campaign"]["uuid"]
    status, body = await daemon.post_json("/api/campaigns", {"workspace_id": 1, "name": "b"},
                                          headers=ws2)
    assert status == 403
    status, body = await daemon.request("GET", f"/api/campaigns/{one}", headers=ws2)
    assert status == 404  # another workspace's campaign does not exist for this token
    status, body = await daemon.request("GET", f"/api/campaigns/{one}/messages", headers=ws2)
    assert status == 404
    status, body = await daemon.request("GET", "/api/campaigns", headers=ws2)
    assert body["campaigns"] == []
    # webhooks do not need an API token
    status, _ = await daemon.post_json("/webhooks/webjs", {
        "event": "message_read", "data": {"message_id": "X"}})
    assert status == 200
