"""The cluster's pure rules (domain/cluster.py) and its configuration keys (issue 14).

Node names are what nginx routes on, so every way to get one wrong is refused at start
with the key named; the uuid scheme always yields a uuid whose prefix is its node; the
merged campaign list is newest first across nodes and pages without losing or repeating
a campaign, whatever the page size.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from core.config import ConfigError
from daemon.config import load_config
from domain.cluster import (
    END,
    NodePage,
    NotThisNode,
    UuidTooLong,
    campaign_uuid,
    merge_pages,
    node_of,
    parse_cursor,
)


def test_the_embedded_default_is_a_single_node() -> None:
    config = load_config(Path(__file__).resolve().parents[1] / "daemon.toml", environ={})
    assert config["cluster.node"] == "" and config["cluster.redis_url"] == ""
    assert config["cluster.peers"] == {}


def test_a_cluster_node_needs_a_good_name_redis_and_good_peers() -> None:
    env = {"CAMPAIGND_CLUSTER__NODE": "Node-1",
           "CAMPAIGND_CLUSTER__PEERS": '{n2 = "ftp://x", "bad-name" = "http://10.0.0.3:8080",'
                                       ' "Node-1" = "http://10.0.0.4:8080"}'}
    with pytest.raises(ConfigError) as raised:
        load_config(None, environ=env)
    problems = "\n".join(raised.value.problems)
    assert "cluster.node = 'Node-1': must be 1-16 lowercase letters and digits" in problems
    assert "cluster.redis_url: required when cluster.node is set" in problems
    assert "cluster.peers.n2 = 'ftp://x': must be the node's base URL" in problems
    assert "cluster.peers.bad-name: a node name must be" in problems
    with pytest.raises(ConfigError) as raised:
        load_config(None, environ={"CAMPAIGND_CLUSTER__REDIS_URL": "redis://127.0.0.1:6379"})
    assert "cluster.redis_url: set cluster.node too" in "\n".join(raised.value.problems)
    with pytest.raises(ConfigError) as raised:
        load_config(None, environ={"CAMPAIGND_CLUSTER__NODE": "n1",
                                   "CAMPAIGND_CLUSTER__REDIS_URL": "redis://127.0.0.1:6379",
                                   "CAMPAIGND_CLUSTER__PEERS": '{n1 = "http://10.0.0.1:80"}'})
    assert "cluster.peers.n1: this node itself" in "\n".join(raised.value.problems)
    config = load_config(None, environ={
        "CAMPAIGND_CLUSTER__NODE": "n1",
        "CAMPAIGND_CLUSTER__REDIS_URL": "redis://:pw@127.0.0.1:6379/0",
        "CAMPAIGND_CLUSTER__PEERS": '{n2 = "http://10.0.0.2:8080"}'})
    assert config["cluster.peers"] == {"n2": "http://10.0.0.2:8080"}
    assert config.masked()["cluster.redis_url"] == "***"  # a password may be in it


def test_uuids_carry_their_node() -> None:
    peers = ["n2", "n10"]
    assert campaign_uuid("n1", None, peers, "3f2c") == "n1-3f2c"
    assert campaign_uuid("n1", "n1-promo", peers, "x") == "n1-promo"  # already ours
    assert campaign_uuid("n1", "promo-1", peers, "x") == "n1-promo-1"  # prefixed
    assert campaign_uuid("n1", "n3-x", peers, "x") == "n1-n3-x"  # n3 is no node we know
    with pytest.raises(NotThisNode) as raised:
        campaign_uuid("n1", "n2-promo", peers, "x")
    assert raised.value.node == "n2"
    with pytest.raises(UuidTooLong):
        campaign_uuid("n1", "a" * 62, peers, "x")
    assert len(campaign_uuid("n1", "a" * 61, peers, "x")) == 64
    for uuid, node in [("n1-3f2c", "n1"), ("n12-a-b", "n12"), ("promo", None),
                       ("Promo-1", None), ("-x", None), ("1n-x", None)]:
        assert node_of(uuid) == node, uuid


def _node_lists(seed: int) -> dict[str, list[dict[str, Any]]]:
    """Three nodes' campaigns, each node's newest first (ids descending, like the API)."""
    rng = random.Random(seed)
    lists: dict[str, list[dict[str, Any]]] = {}
    for node in ("n1", "n2", "n3"):
        count = rng.randint(0, 12)
        times = sorted((rng.randint(0, 40) for _ in range(count)), reverse=True)
        lists[node] = [{"id": count - i, "uuid": f"{node}-{count - i}",
                        "created_at": f"2026-01-01T00:00:{t:02d}.000Z"}
                       for i, t in enumerate(times)]
    return lists


def _answer(lists: dict[str, list[dict[str, Any]]], node: str, position: str, limit: int
            ) -> NodePage:
    """What a node's GET /api/campaigns answers at this position."""
    items = lists[node]
    if position != "-":
        items = [c for c in items if c["id"] < int(position)]
    page = items[:limit]
    more = len(items) > limit
    return NodePage(node, page, str(page[-1]["id"]) if more else None)


@pytest.mark.parametrize("seed", range(30))
def test_the_merged_list_pages_through_every_campaign_once_newest_first(seed: int) -> None:
    lists = _node_lists(seed)
    limit = random.Random(seed).randint(1, 7)
    positions = parse_cursor(None, list(lists))
    seen: list[dict[str, Any]] = []
    for _ in range(100):
        assert positions is not None
        pages = [_answer(lists, node, positions[node], limit) for node in lists
                 if positions[node] != END]
        items, cursor = merge_pages(pages, positions, limit)
        assert len(items) <= limit
        seen.extend(items)
        if cursor is None:
            break
        positions = parse_cursor(cursor, list(lists))
    expected = sorted((c for node in lists for c in lists[node]),
                      key=lambda c: (c["created_at"], c["uuid"].split("-")[0], c["id"]),
                      reverse=True)
    assert [c["uuid"] for c in seen] == [c["uuid"] for c in expected]
    assert all(c["node"] == c["uuid"].split("-")[0] for c in seen)


def test_a_node_that_does_not_answer_is_asked_again_and_does_not_keep_the_list_open() -> None:
    positions = parse_cursor(None, ["n1", "n2"])
    assert positions is not None
    up = NodePage("n1", [{"id": 2, "created_at": "b"}, {"id": 1, "created_at": "a"}], None)
    down = NodePage("n2", None, error="connection refused")
    items, cursor = merge_pages([up, down], positions, 1)
    assert [i["id"] for i in items] == [2] and cursor == "n1:2,n2:-"
    items, cursor = merge_pages([up, down], positions, 5)
    assert len(items) == 2 and cursor is None  # n2 is reported missing, not paged
    assert parse_cursor("n1:x", ["n1"]) is None and parse_cursor("n9:1", ["n1"]) is None
    assert parse_cursor("n1:.", ["n1", "n2"]) == {"n1": ".", "n2": "-"}  # n2 added since
