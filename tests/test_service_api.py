"""Service surface of a running daemon: tokens and workspaces, export.csv, /metrics,
/readyz and the OpenAPI document against the app's real routes."""

from __future__ import annotations

import csv
import io
from typing import Any

from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Daemon, eventually
from web.openapi import UNDOCUMENTED, document

ADMIN = "admin-token-0123456789"
ONE = "workspace-one-0123456789"
TWO = "workspace-two-0123456789"
TOKENS = [{"token": ADMIN, "workspace": "*"}, {"token": ONE, "workspace": 1},
          {"token": TWO, "workspace": 2}]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def webjs_ack(message_id: str, ack: int) -> dict[str, Any]:
    return {"event": "message_status_updated",
            "data": {"message_id": message_id, "ack_level": ack, "workspace_id": 1,
                     "session_id": "s1", "timestamp": 1763600000}}


# --- auth and workspaces --------------------------------------------------------------


async def test_a_workspace_token_sees_only_its_workspace(daemon_factory: Any) -> None:
    daemon: Daemon = await daemon_factory(**{"api.tokens": TOKENS})
    made = {}
    for ws in (1, 2):
        status, body = await daemon.post_json(
            "/api/campaigns", {"workspace_id": ws, "name": f"ws{ws}", "uuid": f"camp-{ws}"},
            headers=bearer(ADMIN))
        assert status == 201, body
        made[ws] = body["campaign"]["uuid"]
        status, body = await daemon.post_json(
            f"/api/campaigns/camp-{ws}/messages",
            {"messages": [{"recipient": f"62{ws}", "message_id": f"MSG-{ws}"}]},
            headers=bearer(ADMIN))
        assert status == 201, body

    status, body = await daemon.request("GET", "/api/campaigns", headers=bearer(ONE))
    assert status == 200
    assert [c["uuid"] for c in body["campaigns"]] == ["camp-1"]
    status, body = await daemon.request("GET", "/api/campaigns?workspace_id=2",
                                        headers=bearer(ONE))
    assert status == 200 and body["campaigns"] == []
    status, body = await daemon.request("GET", "/api/campaigns", headers=bearer(ADMIN))
    assert sorted(c["uuid"] for c in body["campaigns"]) == ["camp-1", "camp-2"]

    # Another workspace's campaign does not exist for this token: 404 everywhere.
    for method, path in [("GET", "/api/campaigns/camp-2"),
                         ("GET", "/api/campaigns/camp-2/messages"),
                         ("GET", "/api/campaigns/camp-2/timeline"),
                         ("GET", "/api/campaigns/camp-2/export.csv")]:
        status, body = await daemon.request(method, path, headers=bearer(ONE))
        assert status == 404, (path, body)
        assert body["error"]["code"] == "campaign_not_found"
        assert "MSG-2" not in str(body)
    status, body = await daemon.post_json(
        "/api/campaigns/camp-2/messages",
        {"messages": [{"recipient": "629", "message_id": "INTRUDER"}]}, headers=bearer(ONE))
    assert status == 404
    status, body = await daemon.post_json("/api/campaigns", {"workspace_id": 2, "name": "x"},
                                          headers=bearer(ONE))
    assert status == 403 and body["error"]["field"] == "workspace_id"

    # Its own campaign works, export included; the other token sees the other one.
    status, body = await daemon.request("GET", "/api/campaigns/camp-1", headers=bearer(ONE))
    assert status == 200 and body["campaign"]["workspace_id"] == 1
    status, text = await daemon.request("GET", "/api/campaigns/camp-2/export.csv",
                                        headers=bearer(TWO))
    assert status == 200 and "MSG-2" in text and "MSG-1" not in text


async def test_missing_or_wrong_token_is_401(daemon_factory: Any) -> None:
    daemon: Daemon = await daemon_factory(**{"api.tokens": TOKENS})
    for headers in ({}, bearer("wrong-token-0123456789"), {"Authorization": ONE},
                    {"Authorization": f"Basic {ONE}"}):
        for path in ("/api/campaigns", "/api/campaigns/x/export.csv"):
            status, body = await daemon.request("GET", path, headers=headers)
            assert status == 401, (headers, path)
            assert body["error"]["code"] == "unauthorized"
    # The public parts stay reachable without a token.
    for path in ("/healthz", "/readyz", "/metrics", "/api/openapi.json"):
        status, _ = await daemon.request("GET", path)
        assert status == 200, path


# --- export.csv -----------------------------------------------------------------------


async def test_export_streams_every_row_with_status_reason_and_timestamps(
        daemon: Daemon) -> None:
    from web.export import CHUNK_ROWS, CSV_COLUMNS

    campaign = await daemon.create_campaign(uuid="big-export")
    total = 2 * CHUNK_ROWS + 17  # crosses chunk boundaries
    ids = [f"ID-{i:06d}" for i in range(total)]
    for start in range(0, total, 10_000):
        await daemon.register("big-export", [
            {"recipient": f"62800{i:06d}", "message_id": mid, "contact_id": i}
            for i, mid in enumerate(ids[start:start + 10_000], start)])
    await daemon.register("big-export", [
        {"recipient": "=HYPERLINK(1)", "message_id": "BAD-ONE",
         "error": "Recipient is not on WhatsApp"}])
    status, _ = await daemon.post_json("/webhooks/webjs", webjs_ack(ids[1], 3))
    assert status == 200

    async with daemon.session.get(daemon.url("/api/campaigns/big-export/export.csv")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/csv")
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        assert "big-export.csv" in resp.headers["Content-Disposition"]
        chunks = 0
        data = b""
        async for chunk in resp.content.iter_any():
            chunks += 1
            data += chunk
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert len(rows) == total + 1
    assert [r["message_id"] for r in rows[:total]] == ids
    assert rows[0]["status"] == "pending" and rows[0]["sent_at"] == ""
    read = rows[1]
    assert (read["status"], read["level"], read["failed"]) == ("read", "read", "false")
    assert read["read_at"] and read["delivered_at"] and read["queued_at"].endswith("Z")
    bad = rows[-1]
    assert bad["status"] == "failed"
    assert bad["failure_reason"] == "Recipient is not on WhatsApp"
    assert bad["failed_at"]
    assert bad["recipient"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert campaign["uuid"] == "big-export"


async def test_export_of_an_unknown_campaign_is_a_json_404(daemon: Daemon) -> None:
    status, body = await daemon.request("GET", "/api/campaigns/nope/export.csv")
    assert status == 404 and body["error"]["code"] == "campaign_not_found"


# --- /metrics and /readyz -------------------------------------------------------------


async def scrape(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = await daemon.request("GET", "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_parse_and_move_when_webhooks_arrive(daemon_factory: Any) -> None:
    daemon: Daemon = await daemon_factory(**{"server.max_body_bytes": 4096})
    before = await scrape(daemon)
    assert ("campaignd_orphans_pending", ()) in before
    for source in ("webjs", "waha", "evolution", "cloud", "twilio"):  # present from the start
        assert ("campaignd_events_ingested_total",
                (("outcome", "rejected"), ("source", source))) in before
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [{"recipient": "621", "message_id": "M-1"}])

    assert (await daemon.post_json("/webhooks/webjs", webjs_ack("M-1", 2)))[0] == 200
    assert (await daemon.post_json("/webhooks/webjs", webjs_ack("M-1", 2)))[0] == 200
    assert (await daemon.post_json("/webhooks/webjs", webjs_ack("NOBODY", 2)))[0] == 200
    status, _ = await daemon.post_json("/webhooks/webjs", {"event": "message_read"})
    assert 400 <= status < 500
    limit = daemon.runtime.config["server.max_body_bytes"]
    status, _ = await daemon.request("POST", "/webhooks/webjs", data=b"[" + b" " * limit + b"]",
                                     headers={"Content-Type": "application/json"})
    assert status == 413

    async def moved() -> Any:
        now = await scrape(daemon)
        wanted = {
            ("applied", 1.0), ("duplicate", 1.0), ("orphaned", 1.0), ("rejected", 2.0)}
        got = {(o, sample(now, "campaignd_events_ingested_total", source="webjs", outcome=o)
                - sample(before, "campaignd_events_ingested_total", source="webjs",
                         outcome=o)) for o, _ in wanted}
        snapshots = sample(now, "campaignd_snapshot_seconds_count")  # every 0.2 s here
        return now if got == wanted and snapshots >= 1 else None

    now = await eventually(moved)
    assert sample(now, "campaignd_webhook_seconds_count", source="webjs") >= 3
    assert sample(now, "campaignd_journal_commit_seconds_count") >= 3
    assert sample(now, "campaignd_orphans_pending") == 1
    assert sample(now, "campaignd_active_campaign_actors") >= 1


async def test_readyz_says_why_it_is_not_ready(daemon: Daemon) -> None:
    status, body = await daemon.request("GET", "/readyz")
    assert (status, body["status"]) == (200, "ready")
    daemon.runtime.store.last_error = "disk I/O error"
    try:
        status, body = await daemon.request("GET", "/readyz")
    finally:
        daemon.runtime.store.last_error = None
    assert status == 503
    assert any("disk I/O error" in p for p in body["problems"])
    status, body = await daemon.request("GET", "/healthz")
    assert status == 200


# --- OpenAPI --------------------------------------------------------------------------


async def test_openapi_document_matches_the_app_routes(daemon: Daemon) -> None:
    status, doc = await daemon.request("GET", "/api/openapi.json")
    assert status == 200
    assert doc == document()
    validate(doc)  # a valid OpenAPI 3.1 document, as client generators need
    documented = {(method.upper(), path) for path, item in doc["paths"].items()
                  for method in item}
    routes = set()
    for route in daemon.server.app.router.routes():
        if route.method in ("HEAD", "OPTIONS", "*"):
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or (
            info.get("prefix", "").rstrip("/") + "/{filename}")
        routes.add((route.method, path))
    routes -= set(UNDOCUMENTED)
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented paths the app does not serve"
    from actors.sender_service import TRANSITIONS
    from web.openapi import ACTIONS

    assert {*ACTIONS, "schedule"} == set(TRANSITIONS)  # schedule has its own path
    # Every $ref points at a schema that exists.
    import re

    for name in re.findall(r"#/components/schemas/(\w+)", str(doc)):
        assert name in doc["components"]["schemas"], name


async def test_a_workspace_token_never_gets_another_workspaces_channel(
        daemon_factory: Any, tmp_path: Any) -> None:
    import json

    from daemon.config import load_config

    # With tokens configured, public channels are off unless asked for explicitly.
    toml = tmp_path / "tokens.toml"
    toml.write_text(f'[api]\ntokens = [{{ token = "{ONE}", workspace = 1 }}]\n')
    assert load_config(toml, environ={})["pusher.allow_public_channels"] is False
    daemon: Daemon = await daemon_factory(**{"api.tokens": TOKENS,
                                             "pusher.allow_public_channels": False})
    status, _ = await daemon.post_json("/api/campaigns", {"workspace_id": 2, "name": "two",
                                                          "uuid": "camp-2"},
                                       headers=bearer(ADMIN))
    assert status == 201
    key = daemon.runtime.config["pusher.app_key"]
    async with daemon.session.ws_connect(daemon.url(f"/app/{key}?protocol=7")) as ws:
        hello = json.loads((await ws.receive_json(timeout=5))["data"])
        socket_id = hello["socket_id"]

        async def auth(channel: str, token: str | None) -> tuple[int, Any]:
            headers = bearer(token) if token else {}
            return await daemon.post_json("/broadcasting/auth", {
                "socket_id": socket_id, "channel_name": channel}, headers=headers)

        assert (await auth("private-workspace.1", None))[0] == 401
        for channel in ("private-workspace.2", "private-campaign.camp-2"):
            status, body = await auth(channel, ONE)
            assert status == 403, (channel, body)
        status, own = await auth("private-workspace.1", ONE)
        assert status == 200

        async def subscribe(channel: str, signature: str | None) -> dict[str, Any]:
            data: dict[str, Any] = {"channel": channel}
            if signature:
                data["auth"] = signature
            await ws.send_json({"event": "pusher:subscribe", "data": data})
            while True:
                msg = await ws.receive_json(timeout=5)
                if msg["event"] in ("pusher:error",
                                    "pusher_internal:subscription_succeeded"):
                    return msg

        refused = await subscribe("workspace.2", None)
        assert refused["event"] == "pusher:error"
        refused = await subscribe("private-workspace.2", own["auth"])
        assert refused["event"] == "pusher:error"
        granted = await subscribe("private-workspace.1", own["auth"])
        assert granted["event"] == "pusher_internal:subscription_succeeded"
        assert granted["channel"] == "private-workspace.1"


async def test_real_responses_match_the_documented_schemas(daemon: Daemon) -> None:
    from jsonschema import Draft202012Validator

    doc = document()

    def check(schema_name: str, value: Any) -> None:
        root = {**doc, "$ref": f"#/components/schemas/{schema_name}"}
        errors = list(Draft202012Validator(root).iter_errors(value))
        assert not errors, (schema_name, [e.message for e in errors])

    status, body = await daemon.post_json("/api/campaigns",
                                          {"workspace_id": 3, "name": "Doc", "uuid": "doc-1"})
    assert status == 201
    check("CreatedCampaign", body)
    status, body = await daemon.post_json("/api/campaigns/doc-1/messages", {"messages": [
        {"recipient": "621", "message_id": "DOC-1"},
        {"recipient": "622", "message_id": "DOC-2", "error": "blocked"}]})
    check("RegistrationResult", body)
    assert (await daemon.post_json("/webhooks/webjs", webjs_ack("DOC-1", 3)))[0] == 200
    status, body = await daemon.post_json("/webhooks/webjs", webjs_ack("DOC-1", 3))
    check("WebhookResult", body)
    check("CampaignEnvelope", (await daemon.request("GET", "/api/campaigns/doc-1"))[1])
    check("CampaignList", (await daemon.request("GET", "/api/campaigns?limit=5"))[1])
    check("MessageList", (await daemon.request("GET", "/api/campaigns/doc-1/messages"))[1])
    check("Timeline", (await daemon.request("GET", "/api/campaigns/doc-1/timeline"))[1])
    for path in ("/api/campaigns/nope", "/api/campaigns?limit=0"):
        status, body = await daemon.request("GET", path)
        assert status in (400, 404)
        check("Error", body)
    status, body = await daemon.post_json("/api/campaigns", {"workspace_id": "x"})
    assert status == 422
    check("Error", body)


async def test_websocket_connections_gauge_follows_clients(daemon: Daemon) -> None:
    key = daemon.runtime.config["pusher.app_key"]

    async def connections(expected: float) -> Any:
        value = sample(await scrape(daemon), "campaignd_websocket_connections")
        return value == expected or None

    async with daemon.session.ws_connect(daemon.url(f"/app/{key}?protocol=7")) as ws:
        await ws.receive_json(timeout=5)  # connection_established
        await eventually(lambda: connections(1.0))
    await eventually(lambda: connections(0.0))


async def test_export_head_sends_headers_only(daemon) -> None:
    """A HEAD must not carry the CSV: a body there corrupts a kept-alive connection."""
    import asyncio

    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [{"recipient": "1", "message_id": "H1"}])
    host, port = daemon.server.host, daemon.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"HEAD /api/campaigns/{campaign['uuid']}/export.csv HTTP/1.1\r\n"
                 f"Host: {host}\r\nConnection: close\r\n\r\n".encode())
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"text/csv" in head
    assert body == b""
