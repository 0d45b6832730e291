"""A new user's first hour (issue 22): the small things that did not match between the
API, the CSV, the CLI and the docs."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import main
from tests.conftest import Daemon

SERIALIZED = "true_6281234567890@c.us_3EB0C767D8B4D5E3F0A1"


@pytest.mark.parametrize("total", [5, 6, 7])
async def test_paging_never_ends_with_an_empty_page(daemon: Daemon, total: int) -> None:
    await daemon.create_campaign(uuid="pages")
    await daemon.register("pages", [{"recipient": f"628{i}", "message_id": f"PAGE-{i}"}
                                    for i in range(total)])
    for i in range(total - 1):
        await daemon.create_campaign(uuid=f"other-{i}")

    for path, key in (("/api/campaigns/pages/messages", "messages"),
                      ("/api/campaigns", "campaigns")):
        seen, cursor, pages = 0, None, 0
        while True:
            query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
            status, body = await daemon.request("GET", path + query)
            assert status == 200, body
            pages += 1
            assert body[key], f"page {pages} of {path} is empty"
            seen += len(body[key])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == total and pages == -(-total // 3)


async def test_a_tracked_campaign_says_tracking_everywhere(
        daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    campaign = await daemon.create_campaign(uuid="tracked-word")
    assert campaign["status"] == "tracking"
    await daemon.register("tracked-word", [{"recipient": "628", "message_id": "W-1"}])
    status, body = await daemon.request("GET", "/api/campaigns/tracked-word")
    assert body["campaign"]["status"] == "tracking"
    status, body = await daemon.request("GET", "/api/campaigns?status=tracking")
    assert status == 200 and [c["uuid"] for c in body["campaigns"]] == ["tracked-word"]
    status, body = await daemon.request("GET", "/api/campaigns?status=pending")
    assert body["campaigns"] == []
    assert daemon.runtime.checkpointer is not None
    await daemon.runtime.checkpointer.run()
    config = tmp_path / "cli.toml"
    config.write_text(f'[store]\npath = "{daemon.runtime.config.db_path}"\n')
    capsys.readouterr()
    assert main(["stats", "tracked-word", "--config", str(config)]) == 0
    table = capsys.readouterr().out
    assert "Status     tracking" in table
    # It cannot be started: campaignd does not send it.
    status, body = await daemon.post_json("/api/campaigns/tracked-word/start", {})
    assert status == 409 and body["error"]["code"] == "not_sendable"


async def test_rows_api_and_csv_show_the_message_id_in_the_same_named_forms(
        daemon: Daemon) -> None:
    await daemon.create_campaign(uuid="ids")
    await daemon.register("ids", [{"recipient": "6281234567890", "message_id": SERIALIZED},
                                  {"recipient": "628222", "message_id": "PLAIN-1"}])
    status, body = await daemon.request("GET", "/api/campaigns/ids/messages")
    assert status == 200
    api = {r["recipient"]: (r["message_id"], r["raw_message_id"]) for r in body["messages"]}
    assert api == {"6281234567890": ("3EB0C767D8B4D5E3F0A1", SERIALIZED),
                   "628222": ("PLAIN-1", "PLAIN-1")}
    async with daemon.session.get(daemon.url("/api/campaigns/ids/export.csv")) as resp:
        text = await resp.text()
    rows: list[dict[str, Any]] = list(csv.DictReader(io.StringIO(text)))
    assert {r["recipient"]: (r["message_id"], r["raw_message_id"]) for r in rows} == api
