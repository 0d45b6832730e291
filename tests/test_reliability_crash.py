"""SPEC 5: `kill -9` during heavy ingest, repeated, loses nothing acknowledged and counts
nothing twice; a sending campaign killed again and again messages nobody twice.

The daemon runs as a real process (tests/proc.py) on one SQLite file and is SIGKILLed
at seeded random moments while several senders post webhooks of every shape (webjs
single and arrays, Cloud API batches, Twilio forms). Every request touches messages no
other request touches, so after each restart the rows show exactly what was applied:
a request answered 2xx must be applied whole; one that got no answer must be applied
whole or not at all. Then the "provider" retries what got no answer, as real gateways
do. `make test` runs 10 kills; `make soak` runs the long forms (`-m slow`).

In rounds with a short checkpoint interval the kill is aimed at a checkpoint: the daemon
logs `checkpoint.writing` (debug) once the actors have handed over their rows, the test
kills at that line, and counts the kill as mid-checkpoint when the database then records
an older checkpoint seq (that transaction never committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import eventually
from tests.fakes.gateways import FakeGateway
from tests.proc import write_config
from tests.reliability_helpers import (
    Unit,
    all_rows,
    call,
    kill,
    make_units,
    start,
    statistics,
    terminate,
)

SENDERS = 8


@dataclass
class Ledger:
    """What the test knows: every unit and what its sender saw."""

    acked: dict[str, Unit]
    pending: dict[str, Unit]  # sent, no 2xx: whole or nothing, until the provider retries
    unexpected: list[str]
    never_sent: list[Unit] = field(default_factory=list)  # registered only: stay pending
    kills_in_flight: int = 0
    kills_aimed: int = 0  # aimed at a checkpoint that had begun writing
    kills_mid_checkpoint: int = 0  # proven: that checkpoint never committed
    requests: int = 0


class LogTail:
    """New lines of the daemon's log since the process started (it appends)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.start = self.offset
        self._partial = b""

    def new_lines(self) -> list[bytes]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return lines

    def seqs(self, name: str) -> list[int]:
        """The `seq` of every `name` event this process logged (a line cut by a kill
        may run into the next process's first line, so records are matched, not lines)."""
        with open(self.path, "rb") as f:
            f.seek(self.start)
            text = f.read()
        pattern = rb'\{"seq": (\d+), "event": "' + re.escape(name.encode()) + rb'"'
        return [int(m[1]) for m in re.finditer(pattern, text)]


def mid_checkpoint(tail: LogTail, db: Path) -> bool:
    """After a kill: had a checkpoint begun writing (the actors had handed over their
    rows) without committing? Its seq is above the one the database records."""
    writing = tail.seqs("checkpoint.writing")
    if not writing:
        return False
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'checkpoint_seq'").fetchone()
    return int(row[0] if row else 0) < writing[-1]


async def run_round(session: aiohttp.ClientSession, url: str, proc: Any, units: list[Unit],
                    delay: float, ledger: Ledger, aim: LogTail | None = None) -> None:
    """Post `units` from SENDERS tasks; SIGKILL `delay` s after the first 2xx (or when
    the pool runs low, so that the kill always lands with requests in flight). With
    `aim`, the kill then waits for the next checkpoint to log that it begins writing
    and lands at once, inside that checkpoint's transaction if it is quick enough."""
    queue = list(reversed(units))
    first_ok = asyncio.Event()
    running_dry = asyncio.Event()  # kill early rather than after the last request
    killed = asyncio.Event()
    in_flight = 0

    async def sender() -> None:
        nonlocal in_flight
        while queue and not killed.is_set():
            unit = queue.pop()
            if len(queue) < 2 * SENDERS:
                running_dry.set()
            source, kwargs = unit.post_args()
            in_flight += 1
            ledger.requests += 1
            try:
                async with session.post(f"{url}/webhooks/{source}", **kwargs) as resp:
                    await resp.read()
                    if resp.status == 200:
                        ledger.acked[unit.key] = unit
                        first_ok.set()
                    else:
                        ledger.unexpected.append(f"{unit.key}: HTTP {resp.status}")
                        ledger.pending[unit.key] = unit
            except (aiohttp.ClientError, TimeoutError):
                ledger.pending[unit.key] = unit
            finally:
                in_flight -= 1

    async def killer() -> None:
        await first_ok.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(running_dry.wait(), delay)
        if aim is not None:
            aim.new_lines()
            deadline = asyncio.get_running_loop().time() + 3
            # Requests in flight matter more: when the pool runs low, kill now.
            while asyncio.get_running_loop().time() < deadline and not running_dry.is_set():
                if any(b'"checkpoint.writing"' in line for line in aim.new_lines()):
                    proc.proc.send_signal(signal.SIGKILL)  # now, not via a thread
                    ledger.kills_aimed += 1
                    break
                await asyncio.sleep(0.0005)
        killed.set()
        if in_flight:
            ledger.kills_in_flight += 1
        await kill(proc)

    senders = asyncio.gather(*(sender() for _ in range(SENDERS)))
    kill_task = asyncio.ensure_future(killer())
    await senders
    if not killed.is_set():  # the pool ran dry first: kill now (and count it as idle)
        first_ok.set()
        kill_task.cancel()
        killed.set()
        await kill(proc)
    await kill_task if not kill_task.cancelled() else None
    ledger.never_sent.extend(queue)


async def retry(s: aiohttp.ClientSession, url: str, unit: Unit, ledger: Ledger) -> None:
    source, kwargs = unit.post_args()
    async with s.post(f"{url}/webhooks/{source}", **kwargs) as resp:
        assert resp.status == 200, await resp.text()
    ledger.acked[unit.key] = ledger.pending.pop(unit.key)


def check_rows(rows: dict[str, Any], ledger: Ledger, settled: dict[str, bool]) -> None:
    """Acked units applied whole; the others whole or not at all (and it stays so)."""
    for unit in ledger.acked.values():
        for mid, target in unit.targets:
            assert rows[mid]["status"] == target, (unit, rows[mid]["status"])
    for unit in ledger.pending.values():
        states = [rows[mid]["status"] for mid, _ in unit.targets]
        applied = states == [t for _, t in unit.targets]
        assert applied or set(states) == {"pending"}, ("half-applied", unit, states)
        previous = settled.setdefault(unit.key, applied)
        assert previous == applied, ("changed after a restart", unit, states)
    for unit in ledger.never_sent:
        assert {rows[mid]["status"] for mid, _ in unit.targets} == {"pending"}, unit


def expected_counts(rows: dict[str, Any], prefixes: tuple[str, ...]) -> tuple[int, int, int]:
    ours = [r for mid, r in rows.items() if mid.startswith(prefixes)]
    delivered = sum(r["status"] in ("delivered", "read") for r in ours)
    return len(ours), delivered, sum(r["status"] == "read" for r in ours)


async def webhook_kill_run(tmp_path: Path, kills: int, per_round: int, seed: int
                           ) -> dict[str, Any]:
    rng = random.Random(seed)
    settings = {"store.synchronous": "NORMAL", "sender.max_rate": 500, "log.level": "debug",
                "gateways.simulator.send_latency": 0.01, "gateways.simulator.sent_after": 0.05,
                "gateways.simulator.delivered_after": 0.1, "gateways.simulator.read_after": 0.2}
    config = write_config(tmp_path, **settings)
    ledger = Ledger({}, {}, [])
    settled: dict[str, bool] = {}
    registered = 0
    proc = None
    started = time.monotonic()
    prefixes = ("W", "A", "wamid.C", "SM")
    sim_recipients = [str(6281300000000 + i) for i in range(per_round // 2)]
    timeout = aiohttp.ClientTimeout(total=20)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as s:
            for round_no in range(kills + 1):
                interval = rng.choice((0.05, 0.5, 3600.0))  # kills land mid-checkpoint too
                write_config(tmp_path, **settings, **{"store.checkpoint_interval": interval})
                tail = LogTail(tmp_path / "daemon.log")
                proc = await start(config)
                url = proc.url
                if round_no == 0:
                    status, body = await call(s, "POST", f"{url}/api/campaigns", json={
                        "workspace_id": 1, "name": "Kill target"})
                    assert status == 201, body
                    uuid = body["campaign"]["uuid"]
                    # A campaign the simulator sends meanwhile: its ACKs share the journal.
                    status, body = await call(s, "POST", f"{url}/api/campaigns", json={
                        "workspace_id": 1, "name": "Sent while killed", "message": "Hi",
                        "gateway": "simulator", "recipients": sim_recipients,
                        "rate": 40, "start": True})
                    assert status == 201, body
                    sim_uuid = body["campaign"]["uuid"]
                else:
                    rows = await all_rows(s, url, uuid)
                    check_rows(rows, ledger, settled)
                    stats = await statistics(s, url, uuid)
                    total, delivered, read = expected_counts(rows, prefixes)
                    assert total == registered
                    assert (stats["total_message_count"], stats["total_delivered_count"],
                            stats["total_read_count"]) == (total, delivered, read)
                    # The provider retries every request that got no 2xx.
                    await asyncio.gather(*(retry(s, url, unit, ledger)
                                           for unit in list(ledger.pending.values())))
                if round_no == kills:
                    break
                units = make_units(rng, round_no, per_round)
                messages = [{"recipient": "6281200000000", "message_id": mid}
                            for unit in units for mid, _ in unit.targets]
                status, body = await call(s, "POST", f"{url}/api/campaigns/{uuid}/messages",
                                          json={"messages": messages})
                assert status == 201, body
                registered += len(messages)
                await run_round(s, url, proc, units, rng.uniform(0.02, 0.3), ledger,
                                aim=tail if interval < 3600 else None)
                if mid_checkpoint(tail, tmp_path / "campaignd.sqlite3"):
                    ledger.kills_mid_checkpoint += 1

            # Last start: everything the provider sent is in, exactly once.
            rows = await all_rows(s, url, uuid)
            check_rows(rows, ledger, settled)
            assert not ledger.pending
            stats = await statistics(s, url, uuid)
            total, delivered, read = expected_counts(rows, prefixes)
            all_targets = [t for u in ledger.acked.values() for _, t in u.targets]
            assert (total, delivered, read) == (
                registered, len(all_targets), all_targets.count("read"))
            assert (stats["total_delivered_count"], stats["total_read_count"]) == (
                delivered, read)
            sim = await check_simulator_campaign(s, url, sim_uuid, len(sim_recipients))
        assert await terminate(proc) == 0
        sim_rows = sqlite3.connect(tmp_path / "campaignd.sqlite3").execute(
            "SELECT m.attempts, m.send_state FROM messages m JOIN campaigns c"
            " ON c.no = m.campaign_no WHERE c.uuid = ?", (sim_uuid,)).fetchall()
        # Each attempt is recorded before its call: no row was tried twice.
        assert max(a for a, _ in sim_rows) == 1
        states = Counter(state for _, state in sim_rows)
        assert set(states) <= {"accepted", "failed", "unknown"}, states
        assert states["unknown"] == sim["unknown"]
    finally:
        await kill(proc)
    assert not ledger.unexpected, ledger.unexpected[:5]
    return {"kills": kills, "kills_in_flight": ledger.kills_in_flight,
            "kills_aimed_at_checkpoints": ledger.kills_aimed,
            "kills_mid_checkpoint": ledger.kills_mid_checkpoint,
            "requests": ledger.requests, "events": registered,
            "simulator_unknown": sim["unknown"], "seconds": round(time.monotonic() - started, 1)}


async def check_simulator_campaign(s: aiohttp.ClientSession, url: str, uuid: str,
                                   total: int) -> dict[str, int]:
    """The simulator's campaign finishes; outcomes unknown after a kill are reported."""
    async def completed() -> Any:
        _, body = await call(s, "GET", f"{url}/api/campaigns/{uuid}/sending")
        return body["sending"]["status"] == "completed" and body["sending"]
    sending = await eventually(completed, timeout=30, interval=0.1)
    unknown = sending["progress"]["total_unknown_count"]
    assert len(sending["unknown"]) == unknown
    assert sum(sending["send_states"].values()) == total
    assert sending["send_states"].get("unknown", 0) == unknown
    return {"unknown": unknown}


async def sending_kill_run(tmp_path: Path, kills: int, total: int, seed: int
                           ) -> dict[str, Any]:
    """An http-gateway campaign against a fake whatsapp-web.js service, killed `kills`
    times at seeded moments (after 5-30 further gateway calls)."""
    rng = random.Random(seed)
    started = time.monotonic()
    fake = await FakeGateway(default_delay=0.02).start()
    config = write_config(tmp_path, **{
        "gateways.http.url": fake.url + "/api/messages/send", "sender.request_timeout": 5.0,
        "sender.max_rate": 500, "store.checkpoint_interval": 0.2})
    recipients = [str(6281500000000 + i) for i in range(total)]
    proc = None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            proc = await start(config)
            status, body = await call(s, "POST", proc.url + "/api/campaigns", json={
                "workspace_id": 1, "name": "Killed while sending", "message": "Halo",
                "gateway": "http", "recipients": recipients, "rate": 150, "start": True})
            assert status == 201, body
            uuid = body["campaign"]["uuid"]
            for _ in range(kills):
                target = len(fake.requests) + rng.randint(5, 30)

                async def reached(target: int = target) -> bool:
                    return len(fake.requests) >= target
                await eventually(reached, timeout=20)
                await kill(proc)
                assert max(fake.per_recipient().values()) == 1  # nobody messaged twice
                proc = await start(config)
            base = f"{proc.url}/api/campaigns/{uuid}"

            async def completed() -> Any:
                _, got = await call(s, "GET", base + "/sending")
                return got["sending"]["status"] == "completed" and got["sending"]
            sending = await eventually(completed, timeout=60, interval=0.1)
            counts = fake.per_recipient()
            assert max(counts.values()) == 1
            unknown = {u["recipient"] for u in sending["unknown"]}
            assert sending["progress"]["total_unknown_count"] == len(unknown)
            rows = {r["recipient"]: r for r in (await all_rows(s, proc.url, uuid)).values()}
            assert len(rows) == total
            for recipient, row in rows.items():
                # The attempt is recorded before the call: nobody is left queued, and a
                # recipient the gateway never saw can only be an unknown outcome.
                assert row["send_state"] in ("accepted", "unknown"), row
                if recipient not in counts:
                    assert recipient in unknown, row
            accepted = [r for r in rows.values() if r["send_state"] == "accepted"]
            assert len({r["message_id"] for r in accepted}) == len(accepted)
            reached_gateway = len(counts)
            assert reached_gateway == len(accepted) + len(unknown & set(counts))
            stats = await statistics(s, proc.url, uuid)
            assert stats["total_sent_count"] == len(accepted)

            # Unknown outcomes are still reported after one more restart (the campaign is
            # completed, so no sender runs for it).
            await kill(proc)
            proc = await start(config)
            base = f"{proc.url}/api/campaigns/{uuid}"
            _, got = await call(s, "GET", base + "/sending")
            assert got["sending"]["status"] == "completed"
            assert got["sending"]["progress"]["total_unknown_count"] == len(unknown)
            stats = await statistics(s, proc.url, uuid)
            assert stats.get("total_unknown_count") == len(unknown)

            # Re-sent only on request, then everyone has been messaged.
            if unknown:
                status, body = await call(s, "POST", base + "/retry-unknown")
                assert status == 200 and body["requeued"] == len(unknown), body
                await eventually(completed, timeout=30, interval=0.1)
            counts = fake.per_recipient()
            assert set(counts) == set(recipients)
            assert {r for r, n in counts.items() if n > 1} <= unknown
            stats = await statistics(s, proc.url, uuid)
            assert stats["total_sent_count"] == total
        assert await terminate(proc) == 0
    finally:
        await kill(proc)
        await fake.close()
    return {"kills": kills + 1, "recipients": total, "gateway_calls": len(fake.requests),
            "unknown": len(unknown), "seconds": round(time.monotonic() - started, 1)}


def report(name: str, figures: dict[str, Any]) -> None:
    print(f"\n[reliability] {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


async def test_webhooks_survive_repeated_sigkill(tmp_path: Path) -> None:
    figures = await webhook_kill_run(tmp_path, kills=10, per_round=300, seed=20261122)
    report("webhooks, short", figures)
    assert figures["kills_in_flight"] >= 9  # kills land while requests are in flight
    # Some kills land after the actors handed a checkpoint their rows and before its
    # commit (the journal must still hold those events): about 5 of 10 here.
    assert figures["kills_mid_checkpoint"] >= 1


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_webhooks_survive_repeated_sigkill_soak(tmp_path: Path) -> None:
    figures = await webhook_kill_run(tmp_path, kills=60, per_round=600, seed=7)
    report("webhooks, soak", figures)
    assert figures["kills_in_flight"] >= 30
    assert figures["kills_mid_checkpoint"] >= 1


async def test_sending_survives_repeated_sigkill(tmp_path: Path) -> None:
    figures = await sending_kill_run(tmp_path, kills=10, total=400, seed=11)
    report("sending, short", figures)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_sending_survives_repeated_sigkill_soak(tmp_path: Path) -> None:
    figures = await sending_kill_run(tmp_path, kills=60, total=2000, seed=12)
    report("sending, soak", figures)
