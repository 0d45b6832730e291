"""What the route modules share: reading JSON bodies and query values with errors that
name the field, the caller's workspace, finding a campaign the caller may see, and the
campaign's public shape (SPEC 3.2)."""

from __future__ import annotations

import re
import uuid as uuidlib
from typing import Any

import orjson
from aiohttp import web

from actors.messages import GetStatistics
from actors.runtime import Runtime
from domain.cluster import NODE_RE, NotThisNode, UuidTooLong, campaign_uuid, node_of
from domain.timefmt import iso_time
from web.auth import EVERYONE, Principal
from web.errors import ApiError
from web.keys import RUNTIME
from web.sources import digits, type_name

UUID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


# --- helpers ---------------------------------------------------------------------------


async def read_json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type not in ("application/json", "application/octet-stream") and \
            request.headers.get("Content-Type"):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    body = await request.read()
    try:
        doc = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "invalid_json", f"the body must be a JSON object, got {type_name(doc)}")
    return doc


def int_field(value: Any, field: str, minimum: int = 0) -> int:
    if isinstance(value, str) and digits(value.strip().removeprefix("-")):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(422, "invalid_field", f"{field} must be an integer", field)
    if value < minimum or value > 2**53:
        raise ApiError(422, "invalid_field", f"{field} must be between {minimum} and 2^53", field)
    return value


def str_field(value: Any, field: str, max_len: int = 200, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "invalid_field", f"{field} must be a non-empty string", field)
    if len(value) > max_len:
        raise ApiError(422, "invalid_field", f"{field} must be at most {max_len} characters",
                       field)
    return value.strip()


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not digits(raw) or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_query", f"{name} must be an integer from {low} to {high}",
                       name)
    return int(raw)


def query_cursor(request: web.Request) -> int | None:
    """The opaque `cursor` of a paged list (the last id of the previous page)."""
    cursor = request.query.get("cursor")
    if cursor is None:
        return None
    if not digits(cursor):
        raise ApiError(400, "invalid_query", "cursor is not valid", "cursor")
    return int(cursor)


def principal_of(request: web.Request) -> Principal:
    return request.get(PRINCIPAL, EVERYONE)


def require_every_workspace(request: web.Request, why: str) -> None:
    """403 for a token of one workspace: what the route shows or changes is the daemon's
    (the relay, the sending numbers' health), not a workspace's."""
    if principal_of(request).workspace is not None:
        raise ApiError(403, "forbidden", why)


async def visible_campaign(request: web.Request) -> dict[str, Any]:
    rt: Runtime = request.app[RUNTIME]
    uuid = request.match_info["uuid"]
    campaign = await rt.campaigns.get(uuid) if UUID_RE.match(uuid) else None
    if campaign is None or not principal_of(request).sees(campaign["workspace_id"]):
        owner = node_of(uuid) if campaign is None else None
        if owner is not None and owner in rt.config["cluster.peers"]:
            raise wrong_node(rt.config["cluster.node"], owner,
                             f"campaign {uuid!r} lives on node {owner}")
        raise ApiError(404, "campaign_not_found", f"no campaign {uuid!r}")
    return campaign


# --- the cluster (docs/cluster.md) -----------------------------------------------------


def wrong_node(node: str, owner: str, what: str) -> ApiError:
    """421 Misdirected Request: a proxy sent this to the wrong node (or none is set)."""
    here = f"this is node {node}" if node else "this campaignd is not in a cluster"
    return ApiError(421, "wrong_node", f"{what}, and {here}: route /n/{owner}/... and uuids "
                    f"starting with {owner}- to node {owner} (the proxy's map)")


def check_node(request: web.Request) -> None:
    """On a /n/{node}/ route: refuse, before anything is stored, a request for another
    node (421) or for a name that is no node's (404). Called by the handlers after they
    have validated the request, so bad input is still answered as bad input."""
    named = request.match_info.get("node")
    if named is None:
        return
    node = request.app[RUNTIME].config["cluster.node"]
    if not NODE_RE.match(named):
        raise ApiError(404, "unknown_node", f"no node is called {named[:20]!r} (a node name is "
                       "lowercase letters and digits)")
    if named != node:
        raise wrong_node(node, named, f"this request is for node {named!r}")


def cluster_uuid(rt: Runtime, given: str | None) -> str | None:
    """The uuid a new campaign gets: unchanged on a single node; on a cluster node it
    starts with the node's name (domain/cluster.py), so the proxy can route it."""
    node = rt.config["cluster.node"]
    if not node:
        return given
    try:
        return campaign_uuid(node, given, list(rt.config["cluster.peers"]),
                             str(uuidlib.uuid4()))
    except NotThisNode as exc:
        raise ApiError(421, "wrong_node", f"{exc}: create it there (POST "
                       f"/n/{exc.node}/api/campaigns), or give a uuid without a node's "
                       "prefix", "uuid") from None
    except UuidTooLong as exc:
        raise ApiError(422, "invalid_field", str(exc), "uuid") from None


async def live_statistics(rt: Runtime, campaign_no: int) -> dict[str, Any]:
    try:
        return await rt.ask(lambda reply: GetStatistics(campaign_no, reply))
    except TimeoutError:
        raise ApiError(503, "busy", "the campaign did not answer in time; retry",
                       headers={"Retry-After": "1"}) from None


def present_campaign(campaign: dict[str, Any], statistics: dict[str, Any] | None,
                     alerts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    stats = statistics
    if stats is None and campaign.get("statistics"):
        # as last checkpointed; a release without some fields stored none of them
        stats = {**empty_statistics(), **orjson.loads(campaign["statistics"])}
    return {
        "uuid": campaign["uuid"],
        "id": campaign["no"],
        "workspace_id": campaign["workspace_id"],
        "name": campaign["name"],
        "status": campaign["status"],
        "message": campaign.get("message"),
        "gateway": campaign.get("gateway"),
        "rate": campaign.get("rate"),
        "created_at": iso_time(campaign["created_at"]),
        "updated_at": iso_time(campaign["updated_at"]),
        "send_at": iso_time(campaign.get("send_at")),  # when a `scheduled` campaign starts
        "start_note": campaign.get("start_note"),  # why it started later than that
        "window": orjson.loads(campaign["send_window"]) if campaign.get("send_window")
        else None,
        # a fallback of progress fields only (its actor did not answer) still has every field
        "statistics": stats if stats and "total_message_count" in stats
        else {**empty_statistics(), **(stats or {})},
        "alerts": alerts or [],
    }


def empty_statistics() -> dict[str, Any]:
    from domain.engagement import empty_statistics as no_engagement
    from domain.ledger import Ledger

    stats = Ledger().statistics()
    stats.update(no_engagement())
    stats["updated_at"] = None
    return stats


