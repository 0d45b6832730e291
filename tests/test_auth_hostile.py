"""Authentication under attack (SPEC 3.1, 3.2, 3.3, 5; issue 7.4).

Signatures on every webhook source, replays, API tokens on every /api route, and a
token of workspace 1 going after workspace 2's campaign through every door: the JSON
API, export, lifecycle actions, registration, /broadcasting/auth and the WebSocket's
private channels. Every refusal must change nothing and leak nothing (no name, no id,
no count of the other workspace's campaign in the answer).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import Daemon, eventually, fixture_bytes
from tests.test_pusher_protocol import Client
from tests.test_webhooks import CASES, SECRETS, signed_headers

ADMIN = "admin-token-hostile-0123456789"
ONE = "workspace-one-hostile-0123456789"
TWO = "workspace-two-hostile-0123456789"
TOKENS = [{"token": ADMIN, "workspace": "*"}, {"token": ONE, "workspace": 1},
          {"token": TWO, "workspace": 2}]
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# Workspace 2's secrets: none of these may appear in an answer to workspace 1.
SECRET_NAME = "Ramadan secret offer"
SECRET_ID = "wamid.SECRET-MESSAGE-ID"
SECRET_RECIPIENT = "6289999999999"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def raw_request(daemon: Daemon, head: bytes, body: bytes = b"",
                      answers: list[bytes] | None = None) -> tuple[int, Any]:
    """One HTTP/1.1 request written byte for byte (headers aiohttp's client won't send);
    the whole answer (status line, headers, body) is appended to `answers` if given."""
    reader, writer = await asyncio.open_connection(daemon.server.host, daemon.server.port)
    try:
        writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                     + body)
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    if answers is not None:
        answers.append(data)
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1])


# --- webhook signatures ------------------------------------------------------------------

FIRST_CASE = {route: (fixture, mid) for fixture, route, mid, _ in reversed(CASES)}


def forged_headers(route: str, body: bytes) -> list[dict[str, str]]:
    """Headers an attacker might try: other sources' signatures, wrong algorithms,
    empty or truncated values, a signature of the right secret over another body."""
    good = signed_headers(route, body)
    other = signed_headers(route, body + b"\n")
    name, value = next(iter(good.items()))
    forged = [{}, {name: ""}, {name: value[:-1]}, {name: value.upper() + "0"},
              {name: value + value}]
    if route != "evolution":  # a token, not a signature over the body
        forged.append(other)
    forged += [h for r in ("webjs", "waha", "cloud") if r != route
               for h in [signed_headers(r, body)]]
    if route in ("webjs", "cloud"):
        forged += [{name: "sha1=" + value[7:]}, {name: value[7:]}]
    if route == "webjs":
        forged += [{"Authorization": "Bearer "}, {"Authorization": "Basic webjs-secret"},
                   {"Authorization": "Bearer webjs-secret-and-more"}]
    if route == "evolution":
        forged += [{"apikey": "EVO-SECRET"}, {"apikey": "evo-secre"}]
    return forged


def secrets_in(answer: bytes, route: str, body: bytes) -> list[str]:
    """Which configured secrets, or the right signature for `body`, appear in an answer."""
    text = answer.decode("utf-8", "replace").lower()
    wanted = [str(v) for k, v in SECRETS.items() if not k.endswith("public_url")]
    for value in signed_headers(route, body).values():  # "sha256=<hex>", hex, base64
        wanted += [value, value.removeprefix("sha256=").rstrip("=")]
    return [w for w in wanted if w and w.lower() in text]


@pytest.mark.parametrize("route", ["webjs", "waha", "evolution", "cloud", "twilio"])
async def test_forged_signatures_are_refused_and_change_nothing(daemon_factory: Any,
                                                                route: str) -> None:
    daemon = await daemon_factory(**SECRETS)
    fixture, message_id = FIRST_CASE[route]
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [{"recipient": "1", "message_id": message_id}])
    body = fixture_bytes(fixture)
    if route == "evolution":  # the fixture carries its own (wrong) apikey
        doc = json.loads(body)
        doc.pop("apikey")
        body = json.dumps(doc).encode()
    before = await daemon.stats(campaign["uuid"])
    seq = daemon.runtime.journal.next_seq
    ctype = FORM if route == "twilio" else JSON
    answers: list[bytes] = []  # every answer's headers and body, as received
    for headers in forged_headers(route, body):
        async with daemon.session.post(daemon.url(f"/webhooks/{route}"), data=body,
                                       headers={**ctype, **headers}) as resp:
            raw = await resp.read()
            answers.append(b"".join(k + b": " + v + b"\r\n" for k, v in resp.raw_headers)
                           + b"\r\n" + raw)
            status, answer = resp.status, json.loads(raw)
        assert status == 401, (headers, status, answer)
        assert answer["error"]["code"] == "bad_signature"
    # bytes that are not UTF-8 in the signature header: still a 401, not a 500
    header = {"webjs": b"X-Signature: sha256=\xff\xfe", "waha": b"X-Webhook-Hmac: \xff",
              "evolution": b"apikey: \xff\xfe", "cloud": b"X-Hub-Signature-256: sha256=\xe9",
              "twilio": b"X-Twilio-Signature: \xff"}[route]
    status, answer = await raw_request(daemon, (
        f"POST /webhooks/{route} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: {ctype['Content-Type']}\r\n").encode() + header + b"\r\n", body,
        answers)
    assert (status, answer["error"]["code"]) == (401, "bad_signature")
    # No answer gives away a secret or the signature that would have been right (in
    # any header or body, hex or as given), and nothing was applied.
    assert len(answers) == len(forged_headers(route, body)) + 1
    for raw in answers:
        assert not secrets_in(raw, route, body), (secrets_in(raw, route, body), raw)
    assert daemon.runtime.journal.next_seq == seq
    assert await daemon.stats(campaign["uuid"]) == before
    status, _ = await daemon.request("POST", f"/webhooks/{route}", data=body,
                                     headers={**ctype, **signed_headers(route, body)})
    assert status == 200


async def test_replayed_signed_requests_are_harmless(daemon_factory: Any) -> None:
    """A captured, validly signed request posted again (and again, out of order) is
    accepted, since providers retry, and changes nothing: a status only moves up the
    ladder and each message counts once."""
    daemon = await daemon_factory(**SECRETS)
    campaign = await daemon.create_campaign()
    uuid = campaign["uuid"]
    await daemon.register(uuid, [{"recipient": "6281", "message_id": "3EB0REPLAY"}])

    def signed(ack: int) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"event": "message_status_updated", "data": {
            "message_id": "3EB0REPLAY", "ack_level": ack, "workspace_id": 1}}).encode()
        return body, {**JSON, **signed_headers("webjs", body)}

    delivered, read = signed(2), signed(3)
    for body, headers in (delivered, read):
        status, _ = await daemon.request("POST", "/webhooks/webjs", data=body, headers=headers)
        assert status == 200
    async def read_once() -> Any:
        stats = await daemon.stats(uuid)
        return stats if (stats["total_delivered_count"], stats["total_read_count"]) == (
            1, 1) else None

    stats = await eventually(read_once)
    _, rows = await daemon.request("GET", f"/api/campaigns/{uuid}/messages")
    for _ in range(5):  # the attacker replays both, the older one last
        for body, headers in (read, delivered):
            status, _ = await daemon.request("POST", "/webhooks/webjs", data=body,
                                             headers=headers)
            assert status == 200
    assert await daemon.stats(uuid) == stats
    assert (await daemon.request("GET", f"/api/campaigns/{uuid}/messages"))[1] == rows


# --- API tokens on every route -----------------------------------------------------------

def api_routes(daemon: Daemon) -> list[tuple[str, str]]:
    """(method, path) of every /api route of the running app, uuids filled in."""
    out = []
    for route in daemon.server.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or not path.startswith("/api/") or path == "/api/openapi.json":
            continue
        if route.method in ("HEAD", "*"):
            continue
        path = path.replace("{uuid}", "camp-2").replace("{action:[a-z-]+}", "{action}")
        path = path.replace("{workspace_id}", "2")  # workspace routes: workspace 2's
        path = path.replace("{source}", "webjs")  # the relay's routes of one source
        actions = ("start", "pause", "resume", "cancel", "retry-failed", "retry-unknown")
        for p in ([path.replace("{action}", a) for a in actions] if "{action}" in path
                  else [path]):
            out.append((route.method, p))
    return out


async def two_workspaces(daemon: Daemon) -> None:
    """Workspace 2 has a sending campaign and a tracked one, with a read message."""
    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 2, "name": SECRET_NAME, "uuid": "camp-2", "message": "Halo",
        "recipients": [SECRET_RECIPIENT, "6289999999998"]}, headers=bearer(ADMIN))
    assert status == 201, body
    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 2, "name": SECRET_NAME + " (tracked)", "uuid": "camp-2t"},
        headers=bearer(ADMIN))
    assert status == 201, body
    status, body = await daemon.post_json("/api/campaigns/camp-2t/messages", {"messages": [
        {"recipient": SECRET_RECIPIENT, "message_id": SECRET_ID}]}, headers=bearer(ADMIN))
    assert status == 201, body
    status, _ = await daemon.post_json("/webhooks/cloud", {"entry": [{"changes": [{"value": {
        "statuses": [{"id": SECRET_ID, "status": "read", "timestamp": "1750000000"}]}}]}]})
    assert status == 200
    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "mine", "uuid": "camp-1"}, headers=bearer(ONE))
    assert status == 201, body

    async def applied() -> bool:  # the ACK reaches the counters asynchronously
        _, body = await daemon.request("GET", "/api/campaigns/camp-2t", headers=bearer(ADMIN))
        return body["campaign"]["statistics"]["total_read_count"] == 1

    await eventually(applied)


async def everything(daemon: Daemon) -> Any:
    """What an administrator sees: every campaign, its statistics and rows."""
    _, listed = await daemon.request("GET", "/api/campaigns", headers=bearer(ADMIN))
    out = {}
    for c in listed["campaigns"]:
        _, rows = await daemon.request("GET", f"/api/campaigns/{c['uuid']}/messages",
                                       headers=bearer(ADMIN))
        stats = {k: v for k, v in c["statistics"].items() if k != "updated_at"}
        out[c["uuid"]] = (c["name"], c["status"], stats, rows["messages"])
    return out


def leaks(text: Any) -> list[str]:
    text = json.dumps(text) if not isinstance(text, str) else text
    return [s for s in (SECRET_NAME, SECRET_ID, SECRET_RECIPIENT) if s in text]


async def test_missing_or_wrong_tokens_on_every_api_route(daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"api.tokens": TOKENS})
    await two_workspaces(daemon)
    before = await everything(daemon)
    routes = api_routes(daemon)
    assert len(routes) >= 14, routes  # every documented /api route is here
    seq = daemon.runtime.journal.next_seq
    wrong = [{}, bearer("nope"), bearer(ADMIN[:-1]), bearer(ADMIN + "x"),
             {"Authorization": ADMIN}, {"Authorization": f"bearer {ADMIN}"},
             {"Authorization": f"Basic {ADMIN}"}, {"Authorization": "Bearer"},
             {"Authorization": f"Token {ADMIN}"}, {"X-Api-Key": ADMIN}]
    for method, path in routes:
        for headers in wrong:
            status, body = await daemon.request(method, path, headers=headers,
                                                json={"workspace_id": 2, "name": "x"})
            assert status == 401, (method, path, headers, body)
            assert body["error"]["code"] == "unauthorized" and not leaks(body)
        status, body = await raw_request(
            daemon, f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
            + b"Authorization: Bearer \xff\xfe" + ADMIN.encode() + b"\r\n")
        assert status == 401, (method, path, body)
    assert daemon.runtime.journal.next_seq == seq
    assert await everything(daemon) == before


async def test_a_workspace_token_cannot_reach_another_workspaces_campaign(
        daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"api.tokens": TOKENS,
                                     "gateways.simulator.sent_after": 3600,
                                     "gateways.simulator.reject_ratio": 0.0})
    await two_workspaces(daemon)
    before = await everything(daemon)
    seq = daemon.runtime.journal.next_seq
    for uuid in ("camp-2", "camp-2t"):
        for method, path in api_routes(daemon):
            if "camp-2" not in path:  # not a campaign's route (/api/campaigns, /api/relay, ...)
                continue
            path = path.replace("camp-2", uuid)
            doc = {"messages": [{"recipient": "6281", "message_id": "INTRUDER"}]}
            status, body = await daemon.request(method, path, headers=bearer(ONE), json=doc)
            # exactly what a campaign (or workspace) that does not exist answers
            missing = await daemon.request(
                method, path.replace(uuid, "no-such-campaign").replace(
                    "/workspaces/2/", "/workspaces/999999/"), headers=bearer(ONE), json=doc)
            assert status == 404, (method, path, status, body)
            code = "workspace_not_found" if "/workspaces/" in path else "campaign_not_found"
            assert body["error"]["code"] == missing[1]["error"]["code"] == code
            assert not leaks(body), (path, body)
    # the list, filtered or not, holds only the token's own workspace
    for query in ("", "?workspace_id=2", "?status=processing", "?workspace_id=2&limit=1"):
        status, body = await daemon.request("GET", f"/api/campaigns{query}",
                                            headers=bearer(ONE))
        assert status == 200 and all(c["workspace_id"] == 1 for c in body["campaigns"])
        assert not leaks(body)
    # creating in workspace 2, or taking its uuid
    for doc in ({"workspace_id": 2, "name": "x"},
                {"workspace_id": 2, "name": "x", "message": "hi", "recipients": ["62811"]}):
        status, body = await daemon.post_json("/api/campaigns", doc, headers=bearer(ONE))
        assert status == 403 and body["error"]["field"] == "workspace_id", body
    status, body = await daemon.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "squatter", "uuid": "camp-2t"}, headers=bearer(ONE))
    assert status == 409 and not leaks(body), body  # a uuid is unique; nothing else is said
    # the export of workspace 2 reaches workspace 2's token only
    status, text = await daemon.request("GET", "/api/campaigns/camp-2t/export.csv",
                                        headers=bearer(TWO))
    assert status == 200 and SECRET_ID in text
    assert daemon.runtime.journal.next_seq == seq
    assert await everything(daemon) == before


async def test_private_channels_of_another_workspace_are_refused(daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"api.tokens": TOKENS,
                                     "pusher.allow_public_channels": False})
    await two_workspaces(daemon)
    client = await Client.connect(daemon)
    theirs = ["private-workspace.2", "private-campaign.camp-2", "private-campaign.camp-2t"]
    missing = await daemon.post_json("/broadcasting/auth", {
        "socket_id": client.socket_id, "channel_name": "private-campaign.no-such"},
        headers=bearer(ONE))
    assert missing[0] == 403
    for channel in theirs:
        for body, headers in (
                (json.dumps({"socket_id": client.socket_id, "channel_name": channel}), JSON),
                (f"socket_id={client.socket_id}&channel_name={channel}", FORM)):
            status, answer = await daemon.request("POST", "/broadcasting/auth", data=body,
                                                  headers={**headers, **bearer(ONE)})
            assert status == 403, (channel, answer)
            # the same words as for a campaign that does not exist, the channel aside
            assert answer["error"]["message"].replace(channel, "C") == \
                missing[1]["error"]["message"].replace("private-campaign.no-such", "C")
            assert not leaks(answer["error"]["message"].replace(channel, ""))
        for token in (None, "nope"):
            status, answer = await daemon.post_json(
                "/broadcasting/auth", {"socket_id": client.socket_id, "channel_name": channel},
                headers=bearer(token) if token else {})
            assert status == 401
    # signatures that are real but not for this (socket, channel) pair
    _, own = await daemon.post_json("/broadcasting/auth", {
        "socket_id": client.socket_id, "channel_name": "private-workspace.1"},
        headers=bearer(ONE))
    other = await Client.connect(daemon)
    _, foreign = await daemon.post_json("/broadcasting/auth", {
        "socket_id": other.socket_id, "channel_name": "private-workspace.2"},
        headers=bearer(TWO))
    attempts = [(channel, sig) for channel in theirs
                for sig in (None, "", own["auth"], foreign["auth"],
                            own["auth"].split(":")[1], "campaignd-key:" + "0" * 64)]
    attempts += [("workspace.2", None), ("campaign.camp-2", None)]  # public ones are off
    for channel, sig in attempts:
        refused = await client.refused(channel, sig)
        assert refused["status"] == 403 and not leaks(refused["message"].replace(channel, ""))
    # refused subscriptions get nothing: a change in workspace 2 reaches only its owner
    owner = await Client.connect(daemon)
    _, sig = await daemon.post_json("/broadcasting/auth", {
        "socket_id": owner.socket_id, "channel_name": "private-campaign.camp-2t"},
        headers=bearer(TWO))
    ok = await owner.subscribe("private-campaign.camp-2t", sig["auth"])
    assert ok["event"] == "pusher_internal:subscription_succeeded"
    assert (await client.subscribe("private-workspace.1", own["auth"]))["event"] == \
        "pusher_internal:subscription_succeeded"
    await daemon.post_json("/api/campaigns/camp-2t/messages", {"messages": [
        {"recipient": "6289999999997", "message_id": "wamid.NEW"}]}, headers=bearer(TWO))
    await owner.until(lambda f: f["event"] == "campaign.statistics.updated"
                      and f["data"]["statistics"]["total_message_count"] == 2)
    seen: list[dict[str, Any]] = []
    while True:  # what the intruder got meanwhile: only its own workspace's frames
        try:
            seen.append(await client.next(timeout=0.3))
        except TimeoutError:
            break
    assert all(f.get("channel") in (None, "private-workspace.1") for f in seen), seen
    assert not leaks(seen)
    for c in (client, other, owner):
        await c.ws.close()


async def test_frames_of_a_closed_unauthorised_socket_are_not_answered(
        daemon_factory: Any) -> None:
    """A wrong app key is closed with 4001 before any channel can be asked for."""
    daemon = await daemon_factory(**{"api.tokens": TOKENS})
    for key in ("wrong-key", "campaignd-key ", "CAMPAIGND-KEY", "%00"):
        async with daemon.session.ws_connect(daemon.url(f"/app/{key}?protocol=7")) as ws:
            await ws.send_str(json.dumps({"event": "pusher:subscribe",
                                          "data": {"channel": "workspace.2"}}))
            frames = []
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    frames.append(json.loads(msg.data))
            assert ws.close_code == 4001, key
            assert [f["event"] for f in frames] == ["pusher:error"], frames
