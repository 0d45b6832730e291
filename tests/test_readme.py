"""README.md's "Track messages your gateway sends" block, run as a script (issue 22).

The shell block is taken from README.md as it is, its API= line pointed at a real daemon
process on a port chosen at run time (instead of `make run`'s 8080), and run with bash
from the repository's folder, as a reader pastes it. Its output must be what the README
says; if the README or the daemon changes, this fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.proc import REPO, DaemonProcess, write_config

SECTION = "## Track messages your gateway sends"



@pytest.fixture(autouse=True)
def _curl_is_installed() -> None:
    """The walkthrough is run as written, with curl: without it the test fails (never
    skips), so the README's promise cannot go unchecked (scripts/test-deps.sh installs it)."""
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed: the README's walkthrough uses it; run "
                    "scripts/test-deps.sh (make test does) as root to install it")


def readme_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", len(SECTION))]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section should hold one shell block"
    return blocks[0]


def json_documents(text: str) -> list[Any]:
    """Every JSON document printed one after another (compact lines, then indented)."""
    decoder, docs, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return docs
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)


@pytest.fixture
def daemon(tmp_path: Path) -> Any:
    proc = DaemonProcess(write_config(tmp_path))
    yield proc
    if proc.proc.poll() is None:
        assert proc.terminate() == 0


def test_the_readme_walkthrough_runs_as_written(daemon: DaemonProcess) -> None:
    block = readme_block()
    assert block.startswith("API=http://127.0.0.1:8080\n")
    assert "/readyz" in block.splitlines()[1]  # it waits for the daemon first
    script = block.replace("API=http://127.0.0.1:8080", f"API={daemon.url}", 1)
    done = subprocess.run(["bash", "-e", "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    created, registered, webjs, cloud, shown = json_documents(done.stdout)

    assert created["campaign"]["uuid"] == "promo-1"
    assert created["campaign"]["status"] == "tracking"
    assert registered == {"registered": 2, "duplicates": 0}
    assert webjs == {"ok": True, "events": 1} and cloud == {"ok": True, "events": 1}
    campaign = shown["campaign"]
    assert campaign["status"] == "tracking"
    stats = campaign["statistics"]
    # What the README's comment on step 4 promises.
    assert stats["total_message_count"] == 2
    assert stats["total_delivered_count"] == 1
    assert stats["total_failed_count"] == 1
    assert stats["total_sent_count"] == 1  # the failed one is not counted as sent
    # The Cloud fixture's 2025 timestamp does not drag the campaign's times back a year.
    assert stats["time_to_deliver"]["median"] is not None
    assert stats["time_to_deliver"]["median"] < 60

    # Pasted a second time, step 1 answers 409 as the README says.
    again = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True,
                           timeout=60)
    assert json_documents(again.stdout)[0]["error"]["code"] == "campaign_exists"
