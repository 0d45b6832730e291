"""The embedded simulator: answers like a gateway and produces realistic ACK streams.

Each recipient's fate is drawn from a random generator seeded with (seed, recipient), so
a run is reproducible: accepted or rejected at send time, then sent / delivered / read
ACKs after configurable random latencies, a share of recipients with read receipts off,
and a share of delivery failures. ACKs go through the SAME durable path as webhooks
(`journal.append`), so they may beat the send's own registration like real ones do.

`record` keeps what the simulator sent and acknowledged, for tests and the demo.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from domain.events import StatusEvent
from domain.failures import Failure
from domain.status import Level
from gateways.base import Outbound, Outcome

log = structlog.get_logger(__name__)

Append = Callable[[str, Sequence[StatusEvent]], Awaitable[int]]


@dataclass(slots=True)
class SimSettings:
    seed: int = 1
    send_latency: float = 0.005  # mean seconds per send call
    sent_after: float = 0.2  # mean seconds from accept to the server ACK
    delivered_after: float = 0.8
    read_after: float = 2.0
    reject_ratio: float = 0.02  # refused at send time (e.g. not on WhatsApp)
    failure_ratio: float = 0.03  # accepted, then a failure ACK
    delivery_ratio: float = 0.95  # of the others, share delivered
    read_ratio: float = 0.6  # of the delivered, share read
    receipts_off_ratio: float = 0.1  # never send read receipts

    @classmethod
    def from_config(cls, config: Any) -> SimSettings:
        p = "gateways.simulator."
        return cls(**{name: config[p + name] for name in cls.__dataclass_fields__})


@dataclass(slots=True)
class SimRecord:
    """What the simulator did with one message."""

    recipient: str
    message_id: str | None
    rejected: bool = False
    acked: list[str] = field(default_factory=list)  # "sent", "delivered", "read", "failed"


SIMULATED_FAILURES = {
    "131026": "Message undeliverable",
    "131049": "This message was not delivered to maintain healthy ecosystem engagement.",
    "131050": "Unable to deliver the message. This recipient has chosen to stop receiving "
              "marketing messages on WhatsApp from your business",
}


class Simulator:
    name = "simulator"

    def __init__(self, settings: SimSettings, append: Append) -> None:
        self.settings = settings
        self.append = append
        self.record: dict[str, SimRecord] = {}  # message id (or "rejected:<row>") -> record
        self.sends = 0
        self._counter = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def _rng(self, recipient: str, campaign: str) -> random.Random:
        digest = hashlib.sha256(f"{self.settings.seed}:{campaign}:{recipient}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    async def send(self, session: aiohttp.ClientSession, message: Outbound) -> Outcome:
        s = self.settings
        rng = self._rng(message.recipient, message.campaign_uuid)
        self.sends += 1
        await asyncio.sleep(rng.expovariate(1 / s.send_latency) if s.send_latency else 0)
        if rng.random() < s.reject_ratio:
            self.record[f"rejected:{message.campaign_uuid}:{message.row}"] = SimRecord(
                message.recipient, None, rejected=True)
            reason = "simulated: recipient is not on WhatsApp"
            return Outcome("permanent", reason=reason, failure=Failure(
                "simulator", "131026", "Message undeliverable", reason))
        self._counter += 1
        message_id = f"SIM{s.seed:04X}{self._counter:012X}{rng.getrandbits(32):08X}"
        rec = SimRecord(message.recipient, message_id)
        self.record[message_id] = rec
        plan = self._plan(rng)
        task = asyncio.get_running_loop().create_task(self._acks(message_id, rec, plan))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Outcome("accepted", message_id=message_id)

    def _plan(self, rng: random.Random) -> list[tuple[float, str]]:
        """(delay, status) pairs; delays grow along the ladder."""
        s = self.settings
        t = rng.expovariate(1 / s.sent_after) if s.sent_after else 0.0
        plan = [(t, "sent")]
        if rng.random() < s.failure_ratio:
            # Like real traffic: mostly bad numbers, some Meta marketing caps, some opt-outs.
            fate = rng.choice(("failed:131026", "failed:131026", "failed:131049",
                               "failed:131050"))
            return [*plan, (t + rng.expovariate(1 / max(s.delivered_after, 1e-3)), fate)]
        if rng.random() >= s.delivery_ratio:
            return plan  # stays on one tick (phone off)
        t += rng.expovariate(1 / s.delivered_after) if s.delivered_after else 0.0
        plan.append((t, "delivered"))
        receipts_off = rng.random() < s.receipts_off_ratio
        if not receipts_off and rng.random() < s.read_ratio:
            t += rng.expovariate(1 / s.read_after) if s.read_after else 0.0
            plan.append((t, "read"))
        return plan

    async def _acks(self, message_id: str, rec: SimRecord,
                    plan: list[tuple[float, str]]) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        levels = {"sent": Level.SENT, "delivered": Level.DELIVERED, "read": Level.READ}
        for delay, status in plan:
            await asyncio.sleep(max(0.0, start + delay - loop.time()))
            if status.startswith("failed"):
                code = status.partition(":")[2] or "131026"
                title = SIMULATED_FAILURES[code]
                event = StatusEvent(message_id, Level.QUEUED, True, _now(),
                                    f"{code}: {title}", rec.recipient,
                                    Failure("simulator", code, title, "simulated"))
                status = "failed"
            else:
                event = StatusEvent(message_id, levels[status], False, _now(), None,
                                    rec.recipient)
            for attempt in range(20):
                try:
                    await self.append("simulator", [event])
                    break
                except Exception as exc:  # storage busy or shutting down: like a gateway
                    if attempt == 19:
                        log.warning("simulator.ack_dropped", message_id=message_id,
                                    error=str(exc))
                        return
                    await asyncio.sleep(0.2 * (attempt + 1))
            rec.acked.append(status)

    def expected_counts(self) -> dict[str, int]:
        """The statistics the campaign must show once every ACK is in (SPEC 2.2 rules)."""
        sent = delivered = read = failed = 0
        for rec in self.record.values():
            if rec.rejected or "failed" in rec.acked:
                failed += 1
                continue
            sent += 1
            delivered += "delivered" in rec.acked
            read += "read" in rec.acked
        return {"total_sent_count": sent, "total_delivered_count": delivered,
                "total_read_count": read, "total_failed_count": failed}

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _now() -> float:
    import time

    return time.time()
