"""Live push across the nodes of a cluster over Redis pub/sub (SPEC 11, docs/cluster.md).

Every node publishes what its broadcaster pushes to its own subscribers (after it has
delivered them locally, so Redis never delays a local client) on one Redis channel,
and delivers what the other nodes publish to its subscribers, through the same Hub
outboxes (coalescing, slow readers, ...). Nothing received is published again, and a
node drops its own messages: no echo, with two nodes or twenty.

Messages are JSON, `{"v": 1, "type", "node", "instance", ...}`:
- `push`: `pushes`, each `{channels, event, subject, payload, rows}`: the Pusher events
  (statistics, status, alert, rows) as the broadcaster built them;
- `hello`: a node's link to Redis is up (started, or back after an outage);
- `state`: "whoever owns these, push their current state": `campaigns` (uuids) and
  `workspaces` (ids), `resync` (also tell live tables to reload their rows).

State on subscribe: a client on node A subscribing to a campaign of node B gets no
state from A (A has none); A publishes `state`, and B pushes the campaign's current
statistics through its own broadcaster, so they are ordered with B's live pushes and
travel the same path (one publishing connection, one reading connection, both FIFO):
a client never sees numbers go back. Nothing is kept in Redis.

Pub/sub is at most once. What a node missed while its link (or another's) was down is
asked for again: each node says `hello` whenever its link is up, and on its own link
coming up and on every other node's hello it asks for the state of everything its
subscribers watch that lives elsewhere (with rows resync). Whichever of two nodes
reconnects last, one of the two messages reaches the other.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson
import structlog
from aiohttp import web

from actors.broadcaster import STATS_EVENT, Push, Refresh, SnapshotReply
from actors.messages import GetStatistics
from actors.redis_link import LinkMetrics, RedisLink
from actors.runtime import Runtime
from domain.records import CampaignInfo
from web.common import UUID_RE, present_campaign
from web.pusher import CHANNEL_RE, HUB, WORKSPACE_SNAPSHOT_CAMPAIGNS, Hub

log = structlog.get_logger(__name__)

VERSION = 1
# Seconds a campaign's state request counts as on its way (its answer reaches every
# subscriber of the channel, so another subscriber meanwhile needs no request of its own).
ASK_AGAIN = 2.0
EVENTS = ("campaign.statistics.updated", "campaign.status.changed",
          "campaign.messages.updated", "campaign.alert")


def encode_push(push: Push) -> dict[str, Any]:
    return {"channels": list(push.channels), "event": push.event, "subject": push.subject,
            "payload": push.payload, "rows": push.rows is not None}


def decode_push(item: Any) -> Push | None:
    """A Push from another node, or None when it is not one we can deliver."""
    if not isinstance(item, dict):
        return None
    channels, event, subject, payload = (item.get("channels"), item.get("event"),
                                         item.get("subject"), item.get("payload"))
    if not (isinstance(channels, list) and channels and event in EVENTS
            and isinstance(subject, str) and isinstance(payload, dict)
            and all(isinstance(c, str) and CHANNEL_RE.match(c) for c in channels)):
        return None
    rows = None
    if item.get("rows"):
        listed = payload.get("rows")
        if not isinstance(listed, list):
            return None
        rows = {r["row"]: r for r in listed if isinstance(r, dict) and isinstance(
            r.get("row"), int)}
    return Push(tuple(channels), event, subject, payload, rows)


class ClusterFanout:
    """The Hub's link to the other nodes; a runtime extension (starts the Redis link)."""

    def __init__(self, hub: Hub, rt: Runtime) -> None:
        config = rt.config
        self.hub = hub
        self.rt = rt
        self.node: str = config["cluster.node"]
        self.instance = secrets.token_hex(8)  # tells a restarted node from its old self
        self.link = RedisLink(config["cluster.redis_url"], config["cluster.channel"],
                              LinkMetrics(rt.metrics), self.received, self.link_up,
                              config["cluster.reconnect_max"])
        # Campaigns subscribed to here that are not ours: asked for again after outages.
        self.remote: set[str] = set()
        self._asked: dict[str, float] = {}  # uuid -> when its state was last asked for
        self._duplicates: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await self.link.start()

    async def stop(self) -> None:
        await self.link.stop()
        for task in list(self._tasks):
            task.cancel()

    # --- out ------------------------------------------------------------------------

    def _send(self, kind: str, body: dict[str, Any]) -> bool:
        doc = {"v": VERSION, "type": kind, "node": self.node, "instance": self.instance,
               **body}
        return self.link.publish(orjson.dumps(doc), kind)

    def published(self, pushes: list[Push]) -> None:
        """This node's pushes (already delivered here) to every other node."""
        items = [encode_push(p) for p in pushes if p.target is None]
        if items:
            self._send("push", {"pushes": items})

    def want_campaign(self, uuid: str) -> None:
        """A subscriber here wants a campaign this node does not have."""
        self.remote.add(uuid)
        now = asyncio.get_running_loop().time()
        asked = self._asked.get(uuid)
        if asked is not None and now - asked < ASK_AGAIN:
            return  # its answer is on the way, to every subscriber of the channel
        self._asked[uuid] = now
        self._send("state", {"campaigns": [uuid], "workspaces": [], "resync": False})

    def want_workspace(self, workspace: int) -> None:
        self._send("state", {"campaigns": [], "workspaces": [workspace], "resync": False})

    def ask_all(self) -> None:
        """After an outage: the state of everything watched here that lives elsewhere."""
        campaigns: set[str] = set()
        workspaces: set[int] = set()
        for channel in self.hub.subscribers:
            match = CHANNEL_RE.match(channel)
            if match is None:
                continue
            if match.group("uuid"):
                if match.group("uuid") in self.remote:
                    campaigns.add(match.group("uuid"))
            else:
                workspaces.add(int(match.group("ws")))
        self.remote &= campaigns  # forget campaigns nobody here watches any more
        self._asked.clear()
        if campaigns or workspaces:
            self._send("state", {"campaigns": sorted(campaigns),
                                 "workspaces": sorted(workspaces), "resync": True})

    def link_up(self) -> None:
        self._send("hello", {})
        self.ask_all()

    # --- in -------------------------------------------------------------------------

    def received(self, data: bytes) -> None:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("cluster.bad_message", size=len(data))
            return
        if not isinstance(doc, dict) or doc.get("v") != VERSION:
            log.warning("cluster.bad_message", version=doc.get("v") if isinstance(
                doc, dict) else None)
            return
        instance, node, kind = doc.get("instance"), doc.get("node"), doc.get("type")
        if instance == self.instance:
            return  # our own message: Redis sends it back to every subscriber
        if node == self.node:
            if instance not in self._duplicates:
                self._duplicates.add(str(instance))
                log.error("cluster.duplicate_node_name", node=node,
                          problem="another process uses this cluster.node name: uuids and "
                                  "routes of the two clash; give each node its own name")
            return
        self.link.metrics.messages.labels("received", str(kind)[:16]).inc()
        if kind == "push":
            subscribed = self.hub.subscribers
            items = [item for item in doc.get("pushes") or () if isinstance(item, dict)
                     and any(c in subscribed for c in item.get("channels") or ()
                             if isinstance(c, str))]  # nobody here watches the rest
            pushes = [p for p in map(decode_push, items) if p is not None]
            if pushes:
                self.hub.deliver(pushes)
            for push in pushes:  # a state arrived: the next subscriber asks anew
                if push.event == STATS_EVENT:
                    self._asked.pop(push.subject, None)
        elif kind == "hello":
            self.ask_all()
        elif kind == "state":
            campaigns = [u for u in doc.get("campaigns") or () if isinstance(u, str)
                         and UUID_RE.match(u)]
            workspaces = [w for w in doc.get("workspaces") or () if isinstance(w, int)
                          and not isinstance(w, bool)]
            if campaigns or workspaces:
                self._spawn(self._answer(campaigns, workspaces, bool(doc.get("resync"))))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, campaigns: list[str], workspaces: list[int], resync: bool
                      ) -> None:
        """Push the current state of what was asked for, when it is ours."""
        rt, tell = self.rt, self.hub.broadcaster.tell
        try:
            for uuid in campaigns:
                campaign = await rt.campaigns.get(uuid)
                if campaign is None:
                    continue  # another node's, or none
                info = CampaignInfo(campaign["no"], uuid, campaign["workspace_id"],
                                    campaign["name"])

                def forward(stats: dict[str, Any], info: CampaignInfo = info) -> None:
                    tell(Refresh(info, stats, resync))  # in the campaign actor's thread

                # Through the campaign actor: the state follows every change it published.
                await rt.ask(lambda r, no=info.no, fwd=forward: GetStatistics(
                    no, SnapshotReply(r.loop, r.future, fwd)))
            for workspace in workspaces:
                rows = await rt.campaigns.list(workspace, None, None,
                                               WORKSPACE_SNAPSHOT_CAMPAIGNS)
                for row in reversed(rows):
                    info = CampaignInfo(row["no"], row["uuid"], row["workspace_id"],
                                        row["name"])
                    stats = present_campaign(row, rt.board.get(row["no"]))["statistics"]
                    tell(Refresh(info, stats, False))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # storage failing, a campaign slow to answer: asked again
            log.warning("cluster.state_failed", campaigns=campaigns, workspaces=workspaces,
                        error=repr(exc))


def setup(app: web.Application, rt: Runtime) -> ClusterFanout:
    """On a cluster node: connect the Hub to the other nodes (after pusher.setup)."""
    hub = app[HUB]
    fanout = ClusterFanout(hub, rt)
    hub.cluster = fanout
    rt.extensions.append(fanout)  # after the broadcaster: started after it, stopped before
    return fanout
