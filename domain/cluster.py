"""The rules of a cluster of campaignd nodes (SPEC 11), pure: node names, the campaign
uuid scheme, the cluster's configuration checks and the merged campaign list.

A campaign lives on one node, the node that owns the WhatsApp numbers its ACKs come
from. Its uuid starts with that node's name and a dash (`n1-3f2c…`), so a reverse
proxy routes `/api/campaigns/{uuid}/…` by the uuid's prefix without reading a body, the
same way it routes a number's webhooks by the node in their path (`/n/{node}/…`).
A node name is short and URL-safe and has no dash, so the first dash of a uuid always
ends the node's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NODE_PATTERN = r"[a-z][a-z0-9]{0,15}"
NODE_RE = re.compile(f"^{NODE_PATTERN}$")
NODE_RULE = "1-16 lowercase letters and digits, starting with a letter (no dash)"
UUID_MAX = 64  # web/common.py UUID_RE and the Pusher channel names allow 64 characters


class NotThisNode(Exception):
    """A campaign uuid that belongs to another node of the cluster."""

    def __init__(self, uuid: str, node: str) -> None:
        super().__init__(f"uuid {uuid!r} starts with {node}-: it belongs to node {node}")
        self.uuid = uuid
        self.node = node


class UuidTooLong(ValueError):
    pass


def node_problem(name: Any) -> str | None:
    """Why `name` cannot be a node name, or None."""
    if not isinstance(name, str) or not NODE_RE.match(name):
        return f"must be {NODE_RULE}"
    return None


def node_of(uuid: str) -> str | None:
    """The node a uuid names by its prefix (`n2-…` → "n2"), or None without one."""
    head, dash, _ = uuid.partition("-")
    return head if dash and NODE_RE.match(head) else None


def campaign_uuid(node: str, given: str | None, peers: Sequence[str], fresh: str) -> str:
    """The uuid a campaign gets on `node`.

    None: `node-<fresh>`. A uuid that already starts with `node-` is kept; one that
    starts with a peer's name and a dash is refused (NotThisNode: create it on that
    node); any other is prefixed (`promo-1` → `n1-promo-1`), so routing always works.
    """
    if given is None:
        return f"{node}-{fresh}"
    owner = node_of(given)
    if owner == node:
        return given
    if owner is not None and owner in peers:
        raise NotThisNode(given, owner)
    uuid = f"{node}-{given}"
    if len(uuid) > UUID_MAX:
        raise UuidTooLong(f"uuid is at most {UUID_MAX - len(node) - 1} characters on node "
                          f"{node} (campaignd puts {node}- in front of it)")
    return uuid


def config_problems(values: Mapping[str, Any]) -> list[str]:
    """The [cluster] keys checked together, each problem naming its key."""
    problems: list[str] = []
    node, url, peers = (values.get("cluster.node"), values.get("cluster.redis_url"),
                        values.get("cluster.peers"))
    if not isinstance(node, str) or not isinstance(url, str) or not isinstance(peers, dict):
        return problems  # a wrong type is already reported per key
    if node:
        problem = node_problem(node)
        if problem:
            problems.append(f"cluster.node = {node!r}: {problem}")
        if not url:
            problems.append("cluster.redis_url: required when cluster.node is set (live "
                            "push across nodes goes through Redis pub/sub), e.g. "
                            "\"redis://127.0.0.1:6379/0\"")
    elif url or peers:
        which = "cluster.redis_url" if url else "cluster.peers"
        problems.append(f"{which}: set cluster.node too (this node's name), or leave the "
                        "[cluster] section out for a single node")
    for name, base in peers.items():
        problem = node_problem(name)
        if problem:
            problems.append(f"cluster.peers.{name}: a node name {problem}")
        elif name == node:
            problems.append(f"cluster.peers.{name}: this node itself (cluster.node); list "
                            "only the other nodes")
        if not isinstance(base, str) or not base.startswith(("http://", "https://")) \
                or len(base) < 10:
            problems.append(f"cluster.peers.{name} = {base!r}: must be the node's base URL, "
                            "e.g. \"http://10.0.0.2:8080\"")
    return problems


# --- the campaign list across nodes ---------------------------------------------------

START = "-"  # this node's list was not read yet
END = "."  # this node has no more campaigns


@dataclass(slots=True)
class NodePage:
    """One node's answer to `GET /api/campaigns` (None when it did not answer)."""

    node: str
    campaigns: list[dict[str, Any]] | None
    next_cursor: str | None = None
    error: str | None = None


def parse_cursor(raw: str | None, nodes: Sequence[str]) -> dict[str, str] | None:
    """A merged list's cursor (`n1:41,n2:-`) → each node's own cursor; None if invalid.

    A node missing from the cursor starts at the beginning (a node added since)."""
    out = dict.fromkeys(nodes, START)
    if raw is None:
        return out
    for part in raw.split(","):
        name, colon, position = part.partition(":")
        if not colon or name not in out or not (
                position in (START, END) or (position.isascii() and position.isdigit())):
            return None
        out[name] = position
    return out


def format_cursor(positions: Mapping[str, str]) -> str:
    return ",".join(f"{name}:{position}" for name, position in positions.items())


def merge_pages(pages: Sequence[NodePage], positions: Mapping[str, str], limit: int
                ) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first across nodes (by created_at, then node, then id), at most `limit`.

    Each node's page is already newest first. The next cursor holds, per node, the id
    of the last campaign taken from it (its own cursor), END when it has no more, or its
    old position when it did not answer (so a later page asks it again). None when
    every node that answered is at its end: a node that is down does not keep the list
    open (the answer's `nodes` says it is missing).
    """
    # A k-way merge of the heads: each node's own order is kept even if its clock
    # stepped back, so "the last one taken" is always a valid cursor into its list.
    heads = {page.node: 0 for page in pages if page.campaigns}
    lists = {page.node: page.campaigns or [] for page in pages}
    taken: list[tuple[dict[str, Any], str]] = []
    while heads and len(taken) < limit:
        node = max(heads, key=lambda n: (lists[n][heads[n]].get("created_at") or "", n,
                                         lists[n][heads[n]].get("id") or 0))
        taken.append(({**lists[node][heads[node]], "node": node}, node))
        heads[node] += 1
        if heads[node] == len(lists[node]):
            del heads[node]
    items = [item for item, _ in taken]
    after = dict(positions)
    more = False
    for page in pages:
        if page.campaigns is None:
            continue
        mine = [item for item, node in taken if node == page.node]
        left = len(page.campaigns) - len(mine)
        if mine:
            after[page.node] = str(mine[-1]["id"])
        if left > 0 or page.next_cursor is not None:
            more = True
        else:
            after[page.node] = END
    return items, (format_cursor(after) if more else None)
