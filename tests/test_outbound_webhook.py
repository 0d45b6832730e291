"""The outbound webhook (docs/sending.md): POSTed when a campaign completes, pauses or
fails; a non-2xx answer (or no answer) is tried again with the sender's backoff, five
tries in all, then given up and logged. The receiver here is a real HTTP server on
127.0.0.1 that fails as scripted."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from structlog.testing import capture_logs

from tests.conftest import eventually

SECRET = "hook-secret"


@dataclass
class Receiver:
    """Answers the scripted statuses in order, then 200; records every try."""

    script: list[int] = field(default_factory=list)
    always: int | None = None  # answer this forever instead
    tries: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def hook(self, request: web.Request) -> web.Response:
        status = self.always or (self.script.pop(0) if self.script else 200)
        self.tries.append((status, dict(request.headers), await request.read()))
        return web.json_response({"ok": status < 300}, status=status)


async def completed_campaign(daemon_factory: Any, receiver: Receiver) -> tuple[Any, str]:
    """A simulator campaign of two recipients, run to completion. The simulator refuses
    none of them: with its default 2 % (drawn per campaign uuid, which is random here)
    about one run in 2,500 had both refused, and the campaign ended `failed`."""
    d = await daemon_factory(**{
        "sender.webhook_url": receiver.url, "sender.webhook_secret": SECRET,
        "sender.backoff_base": 0.02, "sender.backoff_max": 0.1,
        "gateways.simulator.send_latency": 0.001, "gateways.simulator.reject_ratio": 0})
    status, body = await d.post_json("/api/campaigns", {
        "workspace_id": 1, "name": "Hooked", "message": "Hi", "gateway": "simulator",
        "recipients": ["6281300000001", "6281300000002"], "rate": 100, "start": True})
    assert status == 201, body
    return d, body["campaign"]["uuid"]


def check_try(raw: bytes, headers: dict[str, str], uuid: str) -> None:
    expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["X-Campaignd-Signature"] == f"sha256={expected}"
    doc = json.loads(raw)
    assert doc["event"] == "campaign.status.changed"
    assert doc["campaign"]["uuid"] == uuid and doc["campaign"]["status"] == "completed"
    assert doc["statistics"]["total_message_count"] == 2


async def test_a_failing_receiver_is_retried_until_it_answers_2xx(daemon_factory: Any) -> None:
    receiver = await Receiver(script=[500, 503, 404]).start()
    try:
        with capture_logs() as logs:
            d, uuid = await completed_campaign(daemon_factory, receiver)

            async def delivered() -> bool:
                return bool(receiver.tries) and receiver.tries[-1][0] == 200
            await eventually(delivered, timeout=15)
            # The same signed body each time: three failures, then the 200, then quiet.
            assert [t[0] for t in receiver.tries] == [500, 503, 404, 200]
            assert len({t[2] for t in receiver.tries}) == 1
            for _, headers, raw in receiver.tries:
                check_try(raw, headers, uuid)
            failed = [e for e in logs if e["event"] == "sender.webhook_failed"]
            assert [(e["attempt"], e["error"]) for e in failed] == [
                (1, "HTTP 500"), (2, "HTTP 503"), (3, "HTTP 404")]
            await d.session.close()
            await d.server.close()  # a clean stop: nothing more is tried
        assert len(receiver.tries) == 4
        assert not [e for e in logs if e["event"] == "sender.webhook_given_up"]
    finally:
        await receiver.close()


async def test_a_receiver_that_always_fails_gets_exactly_five_tries(daemon_factory: Any
                                                                    ) -> None:
    receiver = await Receiver(always=500).start()
    try:
        with capture_logs() as logs:
            d, uuid = await completed_campaign(daemon_factory, receiver)

            async def given_up() -> list[dict[str, Any]]:
                return [e for e in logs if e["event"] == "sender.webhook_given_up"]
            gave_up = await eventually(given_up, timeout=15)
            assert len(receiver.tries) == 5
            for _, headers, raw in receiver.tries:
                check_try(raw, headers, uuid)
            assert gave_up[0]["campaign_uuid"] == uuid and gave_up[0]["tries"] == 5
            assert gave_up[0]["error"] == "HTTP 500" and gave_up[0]["log_level"] == "error"
            failed = [e["attempt"] for e in logs if e["event"] == "sender.webhook_failed"]
            assert failed == [1, 2, 3, 4, 5]
            await d.session.close()
            await d.server.close()
        assert len(receiver.tries) == 5  # and never a sixth
    finally:
        await receiver.close()
