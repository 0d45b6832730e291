"""The embedded simulator: answers like a gateway and produces realistic ACK streams.

Each recipient's fate is drawn from a random generator seeded with (seed, recipient), so
a run is reproducible: accepted or rejected at send time, then sent / delivered / read
ACKs after configurable random latencies, a share of recipients with read receipts off,
and a share of delivery failures. ACKs go through the SAME durable path as webhooks
(`journal.append`), so they may beat the send's own registration like real ones do.

Some recipients answer (SPEC 6): a text reply (now and then quoting the message), a tap
on one of three quick-reply buttons, or a STOP, as the same `InboundEvent`s a gateway's
webhook becomes, read with the configured keywords; so `campaignd demo` shows the
Replied card, the button breakdown and opt-outs moving.

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
from domain.inbound import (
    MESSAGE,
    REPLY,
    STOP,
    Event,
    InboundEvent,
    Keywords,
    opt_out_of_failure,
    reason_for,
)
from domain.phones import e164_digits
from domain.status import Level
from gateways.base import Outbound, Outcome

log = structlog.get_logger(__name__)

Append = Callable[[str, Sequence[Event]], Awaitable[int]]

# What simulated recipients write and tap (the demo speaks Indonesian and English).
REPLY_TEXTS = ("Berapa harganya?", "Masih ada stok?", "Terima kasih!", "Info lebih lanjut",
               "Ok, saya mau", "Can I order two?", "Thanks!")
STOP_TEXTS = ("STOP", "Berhenti", "stop")
BUTTONS = (("interested", "Ya, saya tertarik"), ("later", "Nanti saja"),
           ("stop", "Stop promotions"))


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
    reply_ratio: float = 0.15  # of the delivered, share that answer (text or button)
    button_ratio: float = 0.5  # of the answers, share that are a button tap
    stop_ratio: float = 0.02  # of the delivered, share that send STOP
    reply_after: float = 5.0  # mean seconds from delivered (or read) to the answer
    # from engagement.*, not gateways.simulator.*
    keep_reply_text: bool = False
    stop_keywords: tuple[str, ...] = ()
    start_keywords: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Any) -> SimSettings:
        p = "gateways.simulator."
        engagement = ("keep_reply_text", "stop_keywords", "start_keywords")
        values = {name: config[p + name] for name in cls.__dataclass_fields__
                  if name not in engagement}
        return cls(**values, keep_reply_text=config["engagement.keep_reply_text"],
                   stop_keywords=tuple(config["engagement.stop_keywords"]),
                   start_keywords=tuple(config["engagement.start_keywords"]))


@dataclass(slots=True)
class SimRecord:
    """What the simulator did with one message."""

    recipient: str
    message_id: str | None
    rejected: bool = False
    # "sent", "delivered", "read", "failed"; then maybe "replied", "tapped", "stopped"
    acked: list[str] = field(default_factory=list)


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
        self.keywords = Keywords(settings.stop_keywords or STOP_TEXTS,
                                 settings.start_keywords or ("START",))

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
        # The answers' generator is the recipient's too: seeded by the message id, which
        # numbers sends in the order they finished, it gave another fate under load.
        answers = self._rng(message.recipient, f"{message.campaign_uuid}:answers")
        task = asyncio.get_running_loop().create_task(
            self._acks(message_id, rec, plan, answers))
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
        answer = rng.random()
        if answer < s.stop_ratio + s.reply_ratio:
            t += rng.expovariate(1 / s.reply_after) if s.reply_after else 0.0
            if answer < s.stop_ratio:
                plan.append((t, "stopped"))
            else:
                plan.append((t, "tapped" if rng.random() < s.button_ratio else "replied"))
        return plan

    def _answer(self, message_id: str, rec: SimRecord, status: str,
                rng: random.Random) -> InboundEvent:
        """What a recipient sends back, as a gateway's webhook would become."""
        number = e164_digits(rec.recipient)
        at = _now()
        inbound_id = f"simulator:{message_id}:{status}"
        if status == "tapped":
            payload, title = BUTTONS[rng.randrange(len(BUTTONS))]
            kind = self.keywords.kind_of_button(payload, title)
            return InboundEvent(inbound_id, kind, MESSAGE, at, number, None, message_id,
                                payload, title, None,
                                None if kind == REPLY else reason_for(kind, MESSAGE,
                                                                      button=title))
        texts = STOP_TEXTS if status == "stopped" else REPLY_TEXTS
        text = texts[rng.randrange(len(texts))]
        kind = self.keywords.kind_of_text(text)
        quoted = message_id if rng.random() < 0.3 else None  # most replies quote nothing
        return InboundEvent(inbound_id, kind, MESSAGE, at, number, None, quoted, None, None,
                            text if self.settings.keep_reply_text else None,
                            None if kind == REPLY else reason_for(kind, MESSAGE, text))

    async def _acks(self, message_id: str, rec: SimRecord, plan: list[tuple[float, str]],
                    rng: random.Random) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        levels = {"sent": Level.SENT, "delivered": Level.DELIVERED, "read": Level.READ}
        for delay, status in plan:
            await asyncio.sleep(max(0.0, start + delay - loop.time()))
            event: Event
            extra: list[Event] = []
            if status in ("replied", "tapped", "stopped"):
                event = self._answer(message_id, rec, status, rng)
            elif status.startswith("failed"):
                code = status.partition(":")[2] or "131026"
                title = SIMULATED_FAILURES[code]
                failure = Failure("simulator", code, title, "simulated")
                event = StatusEvent(message_id, Level.QUEUED, True, _now(),
                                    f"{code}: {title}", rec.recipient, failure)
                # An opted_out failure (131050) is also a stop, as the Cloud API's is.
                stop = opt_out_of_failure(f"simulator-failure:{message_id}", message_id,
                                          event.at, rec.recipient, failure)
                extra = [stop] if stop is not None else []
                status = "failed"
            else:
                event = StatusEvent(message_id, levels[status], False, _now(), None,
                                    rec.recipient)
            for attempt in range(20):
                try:
                    await self.append("simulator", [event, *extra])
                    break
                except Exception as exc:  # storage busy or shutting down: like a gateway
                    if attempt == 19:
                        log.warning("simulator.ack_dropped", message_id=message_id,
                                    error=str(exc))
                        return
                    await asyncio.sleep(0.2 * (attempt + 1))
            if isinstance(event, InboundEvent):
                status = "stopped" if event.kind == STOP else "replied"
            rec.acked.append(status)
            if extra:
                rec.acked.append("stopped")

    def expected_counts(self) -> dict[str, int]:
        """The statistics the campaign must show once every ACK is in (SPEC 2.2 rules)."""
        sent = delivered = read = failed = replied = stopped = 0
        for rec in self.record.values():
            if rec.rejected or "failed" in rec.acked:
                failed += 1
                stopped += "stopped" in rec.acked  # a 131050 failure: also an opt-out
                continue
            sent += 1
            delivered += "delivered" in rec.acked
            read += "read" in rec.acked
            replied += "replied" in rec.acked
            stopped += "stopped" in rec.acked
        return {"total_sent_count": sent, "total_delivered_count": delivered,
                "total_read_count": read, "total_failed_count": failed,
                "total_replied_count": replied, "total_opted_out_count": stopped}

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
