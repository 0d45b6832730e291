"""The HTTP side of a cluster (SPEC 11, docs/cluster.md): node paths, the campaign list
across nodes, and asking a peer about one of its campaigns.

- `/n/{node}/webhooks/{source}` and `/n/{node}/api/campaigns`: the same handlers as
  without the prefix, for the node named in the path. nginx routes them by the path
  alone (Meta's per-number webhook overrides point each number at its node's URL); a
  request that reaches another node is refused 421 and nothing is stored, so a wrong
  proxy map is loud instead of parking ACKs as orphans on the wrong node.
- `GET /api/cluster/campaigns`: this node's list and every peer's (`GET /api/campaigns`
  with the caller's token), merged newest first (domain/cluster.py), with a line per
  node saying whether it answered. Each node answers only for its own campaigns.
- `peer_sees`: whether the caller's token may see a peer's campaign (for signing its
  private channel here), asked of the peer itself.

On a single node the node paths answer 421 and the merged list is this node's list.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import structlog
from aiohttp import web

from actors.runtime import Runtime
from domain.cluster import END, START, NodePage, merge_pages, node_of, parse_cursor
from web import api, webhooks
from web.errors import ApiError, json_response
from web.keys import RUNTIME

log = structlog.get_logger(__name__)


class Peers:
    """HTTP calls to the other nodes (cluster.peers), each bounded by peer_timeout."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._session: aiohttp.ClientSession | None = None

    @property
    def urls(self) -> dict[str, str]:
        return dict(self.rt.config["cluster.peers"])

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.rt.config["cluster.peer_timeout"])
            self._session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, node: str, path: str, request: web.Request,
                  params: dict[str, str] | None = None) -> tuple[int, Any]:
        """GET a peer's route with the caller's Authorization; (status, JSON body)."""
        headers = {"Accept": "application/json"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        url = self.urls[node].rstrip("/") + path
        async with self.session().get(url, params=params, headers=headers) as resp:
            body = await resp.read()
            try:
                return resp.status, orjson.loads(body) if body else None
            except orjson.JSONDecodeError:
                return resp.status, None

    async def sees(self, request: web.Request, uuid: str) -> bool:
        """May the caller see this campaign of a peer? Its node answers (404: no)."""
        owner = node_of(uuid)
        if owner is None or owner not in self.urls:
            return False
        try:
            status, _ = await self.get(owner, f"/api/campaigns/{uuid}", request)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(503, "peer_unavailable", f"node {owner}, where campaign {uuid!r} "
                           f"lives, did not answer ({_reason(exc)}); retry",
                           headers={"Retry-After": "2"}) from None
        return status == 200


PEERS: web.AppKey[Peers] = web.AppKey("cluster_peers", Peers)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# --- the campaign list across nodes ----------------------------------------------------------


async def cluster_campaigns(request: web.Request) -> web.Response:
    rt: Runtime = request.app[RUNTIME]
    peers = request.app[PEERS]
    workspace_id, status, limit, nothing = api.list_query(request)
    node = rt.config["cluster.node"]
    nodes = [node or "", *peers.urls]
    positions = parse_cursor(request.query.get("cursor"), nodes)
    if positions is None:
        raise ApiError(400, "invalid_query", "cursor is not valid (pass the next_cursor of "
                       "the previous page as it is)", "cursor")
    if nothing:
        return json_response({"campaigns": [], "next_cursor": None,
                              "nodes": [{"node": n or None, "ok": True} for n in nodes]})

    async def own() -> NodePage:
        after = None if positions[nodes[0]] == START else int(positions[nodes[0]])
        items, cursor = await api.campaign_page(rt, workspace_id, status, limit, after)
        return NodePage(nodes[0], items, cursor)

    async def peer(name: str) -> NodePage:
        params = {"limit": str(limit)}
        if workspace_id is not None:
            params["workspace_id"] = str(workspace_id)
        if status is not None:
            params["status"] = status
        if positions[name] != START:
            params["cursor"] = positions[name]
        try:
            code, doc = await peers.get(name, "/api/campaigns", request, params)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return NodePage(name, None, error=f"did not answer ({_reason(exc)})")
        if code != 200 or not isinstance(doc, dict) or not isinstance(
                doc.get("campaigns"), list):
            message = (doc or {}).get("error", {}).get("message") if isinstance(
                doc, dict) else None
            return NodePage(name, None, error=f"answered HTTP {code}"
                            + (f": {message}" if message else ""))
        return NodePage(name, doc["campaigns"], doc.get("next_cursor"))

    asked = [n for n in nodes[1:] if positions[n] != END]
    pages = await asyncio.gather(own() if positions[nodes[0]] != END else _done(nodes[0]),
                                 *(peer(n) for n in asked))
    items, cursor = merge_pages(pages, positions, limit)
    for item in items:
        item["node"] = item["node"] or None
    answered = {page.node: page for page in pages}
    report = []
    for name in nodes:
        page = answered.get(name)
        line: dict[str, Any] = {"node": name or None, "ok": page is None or page.error is None}
        if page is not None and page.error is not None:
            line["error"] = page.error
        report.append(line)
    for line in report:
        if not line["ok"]:
            log.warning("cluster.peer_unavailable", node=line["node"], error=line["error"])
    return json_response({"campaigns": items, "next_cursor": cursor, "nodes": report})


async def _done(node: str) -> NodePage:
    return NodePage(node, [], None)


# --- setup ------------------------------------------------------------------------------


def add_routes(app: web.Application) -> None:
    rt = app[RUNTIME]
    peers = Peers(rt)
    app[PEERS] = peers
    r = app.router
    # The same handlers; each refuses a request for another node (web/common.py
    # check_node) once it has validated it, before anything is stored.
    for source in webhooks.PARSERS:
        r.add_post(f"/n/{{node}}/webhooks/{source}", webhooks.make_handler(source, node_route=True))
    r.add_get("/n/{node}/webhooks/cloud", webhooks.cloud_verify)
    r.add_post("/n/{node}/api/campaigns", api.create_campaign)
    r.add_get("/n/{node}/api/campaigns", api.list_campaigns)
    r.add_get("/api/cluster/campaigns", cluster_campaigns)

    async def close_peers(app: web.Application) -> AsyncIterator[None]:
        yield
        await peers.close()

    app.cleanup_ctx.append(close_peers)
