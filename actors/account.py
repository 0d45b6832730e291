"""What campaignd does with Meta's account and template webhooks (SPEC 7.2).

The webhook handler calls `AccountService.record` with the changes it parsed, before its
2xx: they are stored (store/account.py), logged, counted, and acted on:
- a template PAUSED or DISABLED by Meta pauses every campaign campaignd is sending with
  that template (its `template` send option; same name, and same language when both
  name one), with the webhook's words as the reason;
- a WhatsApp Business Account disabled by Meta (`account_update`, ban state DISABLE)
  pauses every campaign sending through the cloud gateway.
Nothing else changes a campaign; `health` serves the sending number's health.
They are taken from the start, also while the state is recovered after a restart (as
status webhooks are); the pauses of those taken then are made once the sender runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import structlog

from actors.sender_service import SendingService
from core.metrics import Metrics
from domain.account import AccountEvent, health, same_language
from store.account import AccountStore
from store.campaigns import CampaignStore

log = structlog.get_logger(__name__)


class AccountService:
    def __init__(self, store: AccountStore, campaigns: CampaignStore, sending: SendingService,
                 metrics: Metrics) -> None:
        self.store = store
        self.campaigns = campaigns
        self.sending = sending
        self.metrics = metrics
        self._tasks: set[asyncio.Task[Any]] = set()
        # Taken while the state is recovered (a webhook is durable from the start):
        # their pauses wait for the sender, which starts after the recovery.
        self.started = False
        self._deferred: list[AccountEvent] = []

    async def start(self) -> None:
        self.started = True
        deferred, self._deferred = self._deferred, []
        for event in deferred:
            self._pause_soon(event)

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=3)

    async def record(self, events: Sequence[AccountEvent]) -> None:
        """Durable when this returns (StoreUnavailable otherwise: the webhook gets 503)."""
        fresh = await self.store.record(events)
        for event in fresh:
            self.metrics.account_events.labels(event.field).inc()
            log.info("account.webhook", field=event.field, meta_event=event.event,
                     waba_id=event.waba_id, summary=event.summary())
            if event.stops_template() or event.bans_account():
                if self.started:
                    self._pause_soon(event)
                else:
                    self._deferred.append(event)

    def _pause_soon(self, event: AccountEvent) -> None:
        task = asyncio.get_running_loop().create_task(self._pause_for(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def health(self) -> dict[str, Any]:
        return health(await self.store.latest())

    async def _pause_for(self, event: AccountEvent) -> list[str]:
        """Pause the campaigns this event stops; their uuids."""
        paused = []
        for campaign in await self.campaigns.list(None, "processing", None, 100_000):
            if (campaign.get("gateway") or "") != "cloud":
                continue
            if event.stops_template():
                raw, _ = await self.campaigns.send_options(campaign["no"])
                template = (orjson.loads(raw) if raw else {}).get("template") or {}
                language = (template.get("language") or {}).get("code") if isinstance(
                    template.get("language"), dict) else None
                if template.get("name") != event.template_name or not same_language(
                        language, event.template_language):
                    continue
            reason = f"Meta: {event.summary()}"
            if await self.sending.pause_for(campaign["no"], reason):
                paused.append(campaign["uuid"])
                log.warning("campaign.paused_by_meta", campaign_uuid=campaign["uuid"],
                            reason=reason)
        return paused
