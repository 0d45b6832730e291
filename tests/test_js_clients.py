"""Real pusher-js and Laravel Echo clients (npm packages, run with node) against the daemon.

An existing Echo front end must work against campaignd unchanged: these run the seed
front end's exact calls (`Echo.channel('workspace.1').listen('.campaign.statistics.
updated', ...)`) and check the counters they receive after real webhooks.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon, webjs_ack

NODE = shutil.which("node")
JS_DIR = Path(__file__).resolve().parent / "js"
EVENT = "campaign.statistics.updated"
TOKEN_1 = "token-for-workspace-1-abcdef"
TOKEN_2 = "token-for-workspace-2-abcdef"



@pytest.fixture(autouse=True)
def _node_is_installed() -> None:
    """These are the only proof that Echo and pusher-js work unchanged: without node they
    fail (never skip), so a machine without it cannot pass the suite unnoticed."""
    if NODE is None:
        pytest.fail("node is not installed: the pusher-js and Laravel Echo clients need it; "
                    "run scripts/test-deps.sh (make test does) as root to install nodejs/npm")


def serialized(n: int) -> str:
    return f"true_62813000{n:05d}@c.us_3EB1{n:016X}"


class NodeClient:
    """tests/js/client.mjs as a subprocess; its JSON lines are what the client received."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, daemon: Daemon, **opts: Any) -> NodeClient:
        if not (JS_DIR / "node_modules" / "pusher-js").exists():
            pytest.fail("tests/js/node_modules is missing: run scripts/test-deps.sh (make test "
                        "does) to install pusher-js and laravel-echo")
        opts = {"port": daemon.server.port, "key": "campaignd-key", "event": EVENT, **opts}
        assert NODE is not None
        proc = await asyncio.create_subprocess_exec(
            NODE, str(JS_DIR / "client.mjs"), json.dumps(opts), cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def until(self, check: Any, timeout: float = 20.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await self.proc.stdout.readline()
                    if not raw:
                        raise AssertionError(f"the node client exited: {await self._stderr()}")
                    line = json.loads(raw)
                    self.lines.append(line)
                    if check(line):
                        return line
        except TimeoutError:
            raise AssertionError(f"not seen within {timeout}s; received: {self.lines}") from None

    async def subscribed(self, *channels: str) -> None:
        pending = set(channels)

        def check(line: dict[str, Any]) -> bool:
            assert line["type"] not in ("subscription_error", "connection_error"), line
            if line["type"] == "subscribed":
                pending.discard(line["channel"])
            return not pending

        await self.until(check)

    async def reach(self, channels: list[str], **expected: int) -> list[dict[str, Any]]:
        """Wait until every channel delivered statistics with these counters."""
        found: dict[str, dict[str, Any]] = {}

        def check(line: dict[str, Any]) -> bool:
            for channel in channels:
                if counters(channel, **expected)(line):
                    found[channel] = line
            return len(found) == len(channels)

        await self.until(check)
        return [found[c] for c in channels]

    async def _stderr(self) -> str:
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode(errors="replace")[-2000:]

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def counters(channel: str, **expected: int) -> Any:
    def check(line: dict[str, Any]) -> bool:
        return (line["type"] == "event" and line["channel"] == channel
                and line["event"] == EVENT
                and all(line["data"]["statistics"][k] == v for k, v in expected.items()))
    return check


async def setup_campaign(daemon: Daemon, count: int, headers: dict[str, str] | None = None
                         ) -> dict[str, Any]:
    status, body = await daemon.post_json("/api/campaigns", {"workspace_id": 1, "name": "JS"},
                                          headers=headers or {})
    assert status == 201, body
    campaign = body["campaign"]
    status, body = await daemon.post_json(
        f"/api/campaigns/{campaign['uuid']}/messages",
        {"messages": [{"recipient": f"62813000{n:05d}", "message_id": serialized(n)}
                      for n in range(count)]}, headers=headers or {})
    assert status == 201, body
    return campaign


async def post_acks(daemon: Daemon) -> None:
    """Of 5 messages: 2 delivered, 1 read, 1 failed, 1 left pending."""
    for n, ack in ((0, 2), (1, 2), (2, 3), (3, -1)):
        status, body = await daemon.post_json("/webhooks/webjs", webjs_ack(serialized(n), ack))
        assert status == 200, body


FINAL = {"total_message_count": 5, "total_sent_count": 4, "total_delivered_count": 3,
         "total_read_count": 1, "total_failed_count": 1}


async def test_pusher_js_receives_statistics(daemon: Daemon) -> None:
    campaign = await setup_campaign(daemon, 5)
    channels = [f"campaign.{campaign['uuid']}", "workspace.1"]
    client = await NodeClient.start(daemon, lib="pusher", channels=channels)
    try:
        await client.subscribed(*channels)
        await post_acks(daemon)
        for line in await client.reach(channels, **FINAL):
            assert line["data"]["campaign_uuid"] == campaign["uuid"]
            assert line["data"]["campaign_id"] == campaign["id"]
            assert line["data"]["statistics"]["delivery_rate"] == 75.0
    finally:
        await client.stop()


@pytest.mark.parametrize(("echo", "broadcaster"), [("1", "reverb"), ("2", "reverb"),
                                                    ("2", "pusher")])
async def test_laravel_echo_listens_like_the_seed_front_end(daemon: Daemon, echo: str,
                                                             broadcaster: str) -> None:
    campaign = await setup_campaign(daemon, 5)
    client = await NodeClient.start(daemon, lib="echo", echo=echo, broadcaster=broadcaster,
                                    channels=["workspace.1"])
    try:
        await client.subscribed("workspace.1")
        # The state on subscribe already came (the protocol has no replay).
        await client.until(counters("workspace.1", total_message_count=5))
        await post_acks(daemon)
        line = await client.until(counters("workspace.1", **FINAL))
        assert set(line["data"]) == {"campaign_id", "campaign_uuid", "statistics", "timestamp"}
        assert line["data"]["campaign_uuid"] == campaign["uuid"]
    finally:
        await client.stop()


async def test_laravel_echo_private_channel_through_broadcasting_auth(
        daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"api.tokens": [{"token": TOKEN_1, "workspace": 1},
                                                     {"token": TOKEN_2, "workspace": 2}]})
    campaign = await setup_campaign(daemon, 5, {"Authorization": f"Bearer {TOKEN_1}"})
    channels = ["private-workspace.1", f"private-campaign.{campaign['uuid']}"]
    client = await NodeClient.start(daemon, lib="echo", channels=channels, token=TOKEN_1)
    intruder = await NodeClient.start(daemon, lib="echo", channels=["private-workspace.1"],
                                      token=TOKEN_2)
    try:
        await client.subscribed(*channels)
        refused = await intruder.until(lambda line: line["type"] in (
            "subscribed", "subscription_error", "event"))
        assert refused["type"] == "subscription_error" and refused["status"] == 403
        await post_acks(daemon)
        await client.reach(channels, **FINAL)
    finally:
        await client.stop()
        await intruder.stop()


async def test_laravel_echo_error_callback_when_public_channels_are_off(
        daemon_factory: Any) -> None:
    daemon = await daemon_factory(**{"pusher.allow_public_channels": False})
    await setup_campaign(daemon, 5)
    client = await NodeClient.start(daemon, lib="echo", channels=["workspace.1",
                                                                  "private-workspace.1"])
    try:
        refused = await client.until(lambda line: line["type"] == "subscription_error")
        assert refused == {"type": "subscription_error", "channel": "workspace.1",
                           "status": 403}
        await post_acks(daemon)
        await client.reach(["private-workspace.1"], **FINAL)
        assert not [line for line in client.lines
                    if line["type"] == "event" and line["channel"] == "workspace.1"]
    finally:
        await client.stop()
