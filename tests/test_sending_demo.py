"""`campaignd demo` as a user runs it: a sample campaign sends through the simulator."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp

from tests.conftest import eventually
from tests.proc import REPO


async def test_demo_prints_the_page_url_and_the_campaign_completes(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text('[store]\npath = "demo.sqlite3"\n[gateways.simulator]\n'
                      'sent_after = 0.05\ndelivered_after = 0.1\nread_after = 0.2\n'
                      'reply_ratio = 0.9\nreply_after = 0.1\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "--config", str(config), "demo", "--port", "0",
        "--recipients", "12", "--rate", "50", cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        page = None
        while page is None:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, "demo exited before printing the page URL"
            match = re.search(r"(http://127\.0\.0\.1:\d+)/#/campaigns/([\w-]+)", line)
            if match:
                page = match
        base, uuid = page.group(1), page.group(2)
        async with aiohttp.ClientSession() as s:
            async def done() -> bool:
                async with s.get(f"{base}/api/campaigns/{uuid}") as resp:
                    c = (await resp.json())["campaign"]
                st = c["statistics"]
                # ...and recipients answer (SPEC 6): replies or stops move too
                return (c["status"] == "completed" and st["total_message_count"] == 12
                        and st["total_delivered_count"] > 0
                        and st["total_replied_count"] + st["total_opted_out_count"] > 0)
            await eventually(done, timeout=30)
            async with s.get(f"{base}/") as resp:
                assert resp.status == 200  # the page the URL points at
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
    assert proc.returncode == 0
