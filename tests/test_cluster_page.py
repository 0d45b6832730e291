"""The page on a cluster node, in real headless Chromium (issue 14): the campaign list
holds every node's campaigns with their node and moves live for another node's
campaign; a node that is down is named above the list (English and Bahasa Indonesia);
the New campaign form posts the campaign to the node chosen."""

from __future__ import annotations

from typing import Any

from tests.cluster_helpers import RedisServer
from tests.conftest import close_server
from tests.test_cluster_push import ack, linked, nodes, redis, tracked_campaign
from tests.test_page_browser import dom, expect, page, shot

__all__ = ["nodes", "page", "redis"]  # fixtures used here

ROWS = """() => Object.fromEntries([...document.querySelectorAll('#campaign-list .camp')].map(
    c => [c.dataset.uuid, [c.querySelector('.camp-meta').textContent,
                          +c.querySelector('.n-delivered b').textContent.replace(/\\D/g, '')]]))"""
MISSING = "() => [...document.querySelectorAll('#nodes-missing [data-node]')].map(e => " \
          "[e.dataset.node, e.textContent])"


async def test_the_list_spans_the_nodes_and_the_form_posts_to_the_chosen_node(
        nodes: Any, redis: RedisServer, page: Any) -> None:
    cluster = await nodes(["n1", "n2"])
    n1, n2 = cluster["n1"], cluster["n2"]
    await linked(n1, n2)
    await tracked_campaign(n1, "n1", "mine", 3)
    await tracked_campaign(n2, "n2", "theirs", 3)

    await page.goto(n1.url("/"))

    async def listed(p: Any) -> Any:
        rows = await dom(p, ROWS)
        return rows if {"n1-mine", "n2-theirs"} <= set(rows) else None

    rows = await expect(page, listed)
    assert "node n2" in rows["n2-theirs"][0] and "node n1" in rows["n1-mine"][0]
    for n in range(3):  # n2's receipts move n2's row on n1's page, live
        await ack(n2, "n2", n, 2)

    async def delivered(p: Any) -> bool:
        return (await dom(p, ROWS)).get("n2-theirs", ["", 0])[1] == 3

    await expect(page, delivered)
    await shot(page, "cluster-list")

    # The form offers the nodes; the campaign is made on the one chosen.
    await page.goto(n1.url("/#/new"))
    await expect(page, lambda p: dom(p, "() => document.querySelectorAll('#f-node option')"
                                        ".length === 2 && !document.querySelector('#f-node')"
                                        ".closest('[hidden]')"))
    await page.fill("#f-name", "Made on n2")
    await page.fill("#f-message", "Halo")
    await page.fill("#f-recipients", "6281234567001\n6281234567002")
    await page.select_option("#f-node", "n2")
    # The form posts to n2's node path, which nginx routes to n2 (tests/test_cluster_nginx.py
    # runs that routing); this page talks to n1 directly, so n1 refuses it, changing
    # nothing, and the page says why in the reader's words.
    async with page.expect_request(lambda r: r.method == "POST") as posted:
        await page.click("button[type=submit]")
    assert (await posted.value).url == n1.url("/n/n2/api/campaigns")
    await expect(page, lambda p: dom(p, "() => document.querySelector('#form-error')"
                                        ".textContent.includes('does not hold it')"))
    for daemon in (n1, n2):
        status, body = await daemon.request("GET", "/api/campaigns")
        assert all(c["name"] != "Made on n2" for c in body["campaigns"])

    # n2 goes away: the list says so, in English and in Bahasa Indonesia.
    await n2.session.close()
    await close_server(n2.server)
    for lang, words in (("en", "is not answering"), ("id", "tidak menjawab")):
        await page.evaluate(f"() => localStorage.setItem('campaignd.lang', '{lang}')")
        await page.goto(n1.url("/#/"))
        await page.reload()

        async def noted(p: Any, words: str = words) -> bool:
            missing = await dom(p, MISSING)
            return len(missing) == 1 and missing[0][0] == "n2" and words in missing[0][1]

        await expect(page, noted)
    rows = await dom(page, ROWS)
    assert "n1-mine" in rows and "n2-theirs" not in rows
    await shot(page, "cluster-list-node-down")
    assert page.errors == []
