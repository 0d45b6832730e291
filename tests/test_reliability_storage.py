"""Storage failing for real (SPEC 3.1, 5): the SQLite files made immutable, the disk
full, the database locked by another process for seconds.

In each case, with a real daemon process: webhooks answer 503 with Retry-After (or 200
when SQLite still had room: then it is durable), the API keeps serving what is in
memory, `/readyz` says why, a checkpoint that fails keeps what it collected, a sending
campaign sends nobody while its attempts cannot be recorded, and once storage is back
the daemon recovers by itself: the "provider" (this test) retries what was refused, and
after a `kill -9` and a restart every event is counted exactly once.

The faults are real where this machine allows it (tests run as root, so `chmod` would
not stop the daemon): `chattr +i` on the database and its WAL (root cannot write an
immutable file), a small tmpfs filled to the last byte (`mount` needs CAP_SYS_ADMIN),
and a second process holding `BEGIN EXCLUSIVE`. Where `chattr` or `mount` do not work
(not root, no such tool) the tests FAIL with the reason instead of skipping: coverage must
not disappear unnoticed (`make test` runs as root and installs both).
`test_storage_faults.py` covers the same paths with faults injected inside SQLite
(`PRAGMA query_only`, and `max_page_count` below).
"""

from __future__ import annotations

import asyncio
import errno
import random
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Daemon, eventually
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

# --- the faults ---------------------------------------------------------------------


class Immutable:
    """`chattr +i` on the database file and its WAL: every write fails (EPERM), reads
    go on. (Not the -shm file: it is memory-mapped, and a write to an immutable mapping
    is a SIGBUS, which no program survives; a read-only filesystem cannot be made from
    under open files either.)"""

    name = "read-only file"
    all_writes_fail = True

    def __init__(self, db: Path) -> None:
        self.files = [db, Path(f"{db}-wal")]

    def inject(self) -> None:
        for f in self.files:
            subprocess.run(["chattr", "+i", str(f)], check=True)

    def repair(self) -> None:
        for f in self.files:
            subprocess.run(["chattr", "-i", str(f)], check=False)


class DiskFull:
    """The tmpfs holding the database filled to its last byte by another file."""

    name = "disk full"
    all_writes_fail = False  # SQLite may still write into WAL space it already has

    def __init__(self, folder: Path) -> None:
        self.filler = folder / "filler.bin"

    def inject(self) -> None:
        with open(self.filler, "wb", buffering=0) as f:
            for size in (1 << 20, 65536, 4096, 512, 1):  # to the last byte
                try:
                    while True:
                        f.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc

    def repair(self) -> None:
        self.filler.unlink(missing_ok=True)


class Locked:
    """Another process holds the write lock (`BEGIN EXCLUSIVE`) until repaired."""

    name = "locked by another process"
    all_writes_fail = True

    def __init__(self, db: Path) -> None:
        self.db = db
        self.proc: subprocess.Popen[str] | None = None

    def inject(self) -> None:
        code = ("import sqlite3, sys\n"
                f"c = sqlite3.connect({str(self.db)!r}, isolation_level=None)\n"
                "c.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\n"
                "sys.stdin.readline()\nc.execute('ROLLBACK')\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

    def repair(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            self.proc.wait(10)


def chattr_works(folder: Path) -> bool:
    probe = folder / "chattr-probe"
    probe.write_text("x")
    try:
        if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode:
            return False
        try:
            with open(probe, "a") as f:
                f.write("y")
            return False  # immutable is not enforced here
        except OSError:
            return True
    except FileNotFoundError:
        return False
    finally:
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
        probe.unlink(missing_ok=True)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs, unmounted after the test (and after the daemon has stopped)."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(folder)],
                            capture_output=True, text=True)
    if result.returncode:  # fail, never skip: this is the only real full disk we make
        pytest.fail(f"cannot mount a tmpfs here ({result.stderr.strip()}): the disk-full "
                    "tests need root (CAP_SYS_ADMIN) and `mount` (scripts/test-deps.sh)")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


# --- the scenario -------------------------------------------------------------------


async def post(s: aiohttp.ClientSession, url: str, unit: Unit) -> tuple[int, Any, Any]:
    source, kwargs = unit.post_args()
    async with s.post(f"{url}/webhooks/{source}", **kwargs) as resp:
        return resp.status, await resp.json(), resp.headers.get("Retry-After")


def expected(units: list[Unit]) -> tuple[int, int]:
    targets = [t for u in units for _, t in u.targets]
    return len(targets), targets.count("read")


async def snapshots(s: aiohttp.ClientSession, url: str) -> float:
    """Successful checkpoints so far, from /metrics."""
    async with s.get(url + "/metrics") as resp:
        text = await resp.text()
    match = re.search(r"^campaignd_snapshot_seconds_count (\S+)$", text, re.M)
    return float(match[1]) if match else 0.0


def attempts_recorded(db: Path, uuid: str) -> int:
    """Recipients of campaign `uuid` whose send attempt is committed, read from the file
    by another connection (readers work during every fault here)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM messages m JOIN campaigns c ON c.no = m.campaign_no"
            " WHERE c.uuid = ? AND m.attempts > 0", (uuid,)).fetchone()[0]


def log_count(proc: Any, event: str) -> int:
    return proc.log_path.read_text().count(f'"{event}"')


async def storage_fault_scenario(tmp_path: Path, folder: Path, fault: Any, hold: float = 0.0
                                 ) -> dict[str, Any]:
    rng = random.Random(fault.name)
    fake = await FakeGateway(default_delay=0.2).start()  # sends are in flight at the fault
    config = write_config(tmp_path, **{
        "store.path": str(folder / "campaignd.sqlite3"), "store.checkpoint_interval": 0.5,
        "store.busy_timeout_ms": 300, "sender.backoff_base": 0.2, "sender.backoff_max": 1.0,
        "gateways.http.url": fake.url + "/api/messages/send"})
    before, during = make_units(rng, 0, 40), make_units(rng, 1, 100)
    recipients = [str(6281700000000 + i) for i in range(30)]
    proc = None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            proc = await start(config)
            url = proc.url
            status, body = await call(s, "POST", url + "/api/campaigns", json={
                "workspace_id": 1, "name": "Storage trouble"})
            uuid = body["campaign"]["uuid"]
            status, body = await call(s, "POST", f"{url}/api/campaigns/{uuid}/messages", json={
                "messages": [{"recipient": "6281200000000", "message_id": mid}
                             for u in before + during for mid, _ in u.targets]})
            assert status == 201, body
            for unit in before:  # the last ones are only in memory and the journal
                assert (await post(s, url, unit))[0] == 200
            status, body = await call(s, "POST", url + "/api/campaigns", json={
                "workspace_id": 1, "name": "Sending through it", "message": "Halo",
                # 10/s: 3 s of sending, so attempts remain when the fault lands (starting
                # the locking process can take a second on a loaded machine)
                "gateway": "http", "recipients": recipients, "rate": 10, "start": True})
            assert status == 201, body
            sending_uuid = body["campaign"]["uuid"]

            db = folder / "campaignd.sqlite3"

            async def sending() -> bool:  # and more calls are in flight (recorded, unanswered)
                answered = len(fake.requests)
                return answered >= 3 and attempts_recorded(db, sending_uuid) > answered
            await eventually(sending, timeout=10)
            fault.inject()
            outcome_refusals = log_count(proc, "sender.outcome_store_failed")
            if fault.all_writes_fail:  # no attempt can be recorded from now on
                calls_at_fault = len(fake.requests)
                recorded = attempts_recorded(db, sending_uuid)
                assert recorded > calls_at_fault, "calls must be in flight at the fault"
                assert recorded < len(recipients), "attempts must remain for storage to refuse"
            deferred_before = log_count(proc, "checkpoint.deferred")
            acked, refused, unsent, slowest = await post_during_fault(s, url, during, fault)
            assert refused, "the fault must refuse some webhooks"

            status, ready = await call(s, "GET", url + "/readyz")
            assert status == 503, ready
            assert any(p.startswith("storage is failing") for p in ready["problems"]), ready
            status, health = await call(s, "GET", url + "/healthz")
            assert status == 200  # alive: systemd must not restart it for this

            # The API keeps serving from memory: counters include every 2xx so far.
            stats = await statistics(s, url, uuid)
            delivered, read = expected(before + acked)
            assert (stats["total_delivered_count"], stats["total_read_count"]) == (
                delivered, read)
            status, listing = await call(s, "GET", url + "/api/campaigns")
            assert status == 200 and len(listing["campaigns"]) == 2
            status, body = await call(s, "GET", f"{url}/api/campaigns/{uuid}/messages?limit=5")
            assert status == 200, body  # rows as last stored
            status, body = await call(s, "POST", url + "/api/campaigns", json={
                "workspace_id": 1, "name": "During the fault"})
            # 503 storage_unavailable, or (a full disk may still have room in the WAL)
            # 201, and then it is durable: checked after the kill below. Never a 500.
            created_during_fault = status == 201
            if fault.all_writes_fail or not created_during_fault:
                assert status == 503 and body["error"]["code"] == "storage_unavailable", (
                    status, body)

            # Checkpoints fail meanwhile and say so; what they collected is kept.
            async def deferred() -> bool:
                return log_count(proc, "checkpoint.deferred") > deferred_before
            await eventually(deferred, timeout=10, interval=0.1)
            if fault.all_writes_fail:
                # Nobody is sent an unrecorded attempt: the calls recorded before the
                # fault are answered, the sender has meanwhile been refused by storage
                # (the fake answers 200, so a retry can only be a refused attempt), and
                # the gateway has seen exactly the recorded calls, no more.
                # (`recorded` read again: a record the writer was committing as the
                # fault landed can still have made it, and its call then goes out)
                async def answered_and_refused() -> bool:
                    nonlocal recorded
                    recorded = attempts_recorded(db, sending_uuid)
                    _, got = await call(s, "GET", f"{url}/api/campaigns/{sending_uuid}/sending")
                    return (len(fake.requests) >= recorded
                            and got["sending"]["progress"]["retrying_count"] > 0)
                await eventually(answered_and_refused, timeout=15, interval=0.05)
                assert len(fake.requests) == attempts_recorded(db, sending_uuid)

                # The outcomes of the calls in flight at the fault could not be stored;
                # they are kept and retried (stored after the repair, checked below).
                async def outcome_refused() -> bool:
                    return log_count(proc, "sender.outcome_store_failed") > outcome_refusals
                await eventually(outcome_refused, timeout=10, interval=0.05)
            await asyncio.sleep(hold)  # a long fault: outcomes of sends keep waiting
            if fault.all_writes_fail:
                assert len(fake.requests) == recorded

            fault.repair()
            # The provider retries what was refused (and sends the rest); all get in.
            for unit in refused + unsent:
                async def accepted(unit: Unit = unit) -> bool:
                    return (await post(s, url, unit))[0] == 200
                await eventually(accepted, timeout=15, interval=0.2)

            async def ready_again() -> bool:
                return (await call(s, "GET", url + "/readyz"))[0] == 200
            await eventually(ready_again, timeout=10, interval=0.1)
            done = await snapshots(s, url)

            async def checkpointed() -> bool:  # the periodic checkpoint works again
                return await snapshots(s, url) >= done + 2
            await eventually(checkpointed, timeout=10, interval=0.1)

            async def sent_all() -> Any:
                _, got = await call(s, "GET", f"{url}/api/campaigns/{sending_uuid}/sending")
                return got["sending"]["status"] == "completed" and got["sending"]
            sending = await eventually(sent_all, timeout=30, interval=0.2)
            assert sending["progress"]["total_unknown_count"] == 0
            assert sending["send_states"] == {"accepted": len(recipients)}, sending
            assert sorted(fake.per_recipient().values()) == [1] * len(recipients)
            # Nobody was sent an unrecorded attempt: each gateway call of a recipient is
            # one recorded attempt (a call made while storage refused the record would
            # show as a request beyond the row's attempt number).
            sent_rows = await all_rows(s, url, sending_uuid)
            assert {r["recipient"]: r["attempt"] for r in sent_rows.values()} == \
                dict(fake.per_recipient())

            # Nothing lost, nothing twice: kill -9, restart, compare every row.
            await kill(proc)
            proc = await start(config)
            url = proc.url
            rows = await all_rows(s, url, uuid)
            for unit in before + during:
                for mid, target in unit.targets:
                    assert rows[mid]["status"] == target, (unit, rows[mid])
            stats = await statistics(s, url, uuid)
            delivered, read = expected(before + during)
            assert (stats["total_delivered_count"], stats["total_read_count"]) == (
                delivered, read)
            _, listing = await call(s, "GET", url + "/api/campaigns")
            names = [c["name"] for c in listing["campaigns"]]
            assert ("During the fault" in names) == created_during_fault, names
        assert await terminate(proc) == 0
    finally:
        fault.repair()
        await kill(proc)
        await fake.close()
    return {"acked_during_fault": len(acked), "refused": len(refused),
            "create_during_fault": 201 if created_during_fault else 503,
            "slowest_answer_s": round(slowest, 2)}


async def post_during_fault(s: aiohttp.ClientSession, url: str, units: list[Unit], fault: Any
                            ) -> tuple[list[Unit], list[Unit], list[Unit], float]:
    """Post from 8 senders until enough were refused; every refusal is a proper 503.
    Returns acked, refused, not sent yet, and the slowest answer (seconds)."""
    acked: list[Unit] = []
    refused: list[Unit] = []
    queue = list(reversed(units))
    wanted = 8
    slowest = 0.0

    async def sender() -> None:
        nonlocal slowest
        while queue and len(refused) < wanted:
            unit = queue.pop()
            t0 = time.monotonic()
            status, body, retry_after = await post(s, url, unit)
            slowest = max(slowest, time.monotonic() - t0)
            if status == 200:
                acked.append(unit)
            else:
                assert status == 503, body
                assert body["error"]["code"] == "storage_unavailable", body
                assert retry_after is not None and int(retry_after) > 0
                refused.append(unit)

    await asyncio.gather(*(sender() for _ in range(8)))
    if fault.all_writes_fail:
        assert not acked, "a write got through a fault that stops every write"
    return acked, refused, list(reversed(queue)), slowest


async def test_read_only_database_file(tmp_path: Path) -> None:
    if not chattr_works(tmp_path):
        pytest.fail("chattr +i is not available or not enforced here: this test needs root "
                    "and `chattr` (e2fsprogs, installed by scripts/test-deps.sh) on a "
                    "filesystem with immutable files (ext4, xfs, btrfs, tmpfs)")
    folder = tmp_path / "data"
    folder.mkdir()
    fault = Immutable(folder / "campaignd.sqlite3")
    figures = await storage_fault_scenario(tmp_path, folder, fault)
    print(f"\n[reliability] read-only file: {figures}")


async def test_disk_full(tmp_path: Path, small_tmpfs: Path) -> None:
    figures = await storage_fault_scenario(tmp_path, small_tmpfs, DiskFull(small_tmpfs))
    print(f"\n[reliability] disk full: {figures}")


async def test_database_locked_for_seconds_by_another_process(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    figures = await storage_fault_scenario(tmp_path, folder, Locked(folder / "campaignd.sqlite3"))
    print(f"\n[reliability] locked: {figures}")


async def test_restart_on_a_full_disk(tmp_path: Path, small_tmpfs: Path) -> None:
    """Killed while the disk is full, started again (as systemd would) before anyone
    made room: it starts, serves what it has, refuses writes with 503 and says why, and
    recovers when room is made, with every acknowledged event counted once."""
    config = write_config(tmp_path, **{"store.path": str(small_tmpfs / "campaignd.sqlite3"),
                                       "store.checkpoint_interval": 0.3})
    units = make_units(random.Random(3), 0, 60)
    fault = DiskFull(small_tmpfs)
    proc = None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            proc = await start(config)
            _, body = await call(s, "POST", proc.url + "/api/campaigns", json={
                "workspace_id": 1, "name": "Full disk"})
            uuid = body["campaign"]["uuid"]
            status, body = await call(s, "POST", f"{proc.url}/api/campaigns/{uuid}/messages",
                                      json={"messages": [
                                          {"recipient": "6281200000000", "message_id": mid}
                                          for u in units for mid, _ in u.targets]})
            assert status == 201, body
            for unit in units[:30]:
                assert (await post(s, proc.url, unit))[0] == 200
            fault.inject()
            await kill(proc)
            proc = await start(config)  # on the full disk
            url = proc.url
            stats = await statistics(s, url, uuid)
            assert (stats["total_delivered_count"], stats["total_read_count"]) == expected(
                units[:30])
            refused = []
            for unit in units[30:]:
                status, body, retry_after = await post(s, url, unit)
                assert status == 503 and retry_after, body
                refused.append(unit)

            async def says_full() -> Any:
                status, ready = await call(s, "GET", url + "/readyz")
                return status == 503 and "full" in " ".join(ready["problems"])
            await eventually(says_full, timeout=5)
            fault.repair()
            for unit in refused:
                async def accepted(unit: Unit = unit) -> bool:
                    return (await post(s, url, unit))[0] == 200
                await eventually(accepted, timeout=10, interval=0.2)

            async def ready_again() -> bool:
                return (await call(s, "GET", url + "/readyz"))[0] == 200
            await eventually(ready_again, timeout=10)
            await kill(proc)
            proc = await start(config)
            rows = await all_rows(s, proc.url, uuid)
            for unit in units:
                assert [rows[mid]["status"] for mid, _ in unit.targets] == [
                    t for _, t in unit.targets], unit
            stats = await statistics(s, proc.url, uuid)
            assert (stats["total_delivered_count"], stats["total_read_count"]) == expected(
                units)
        assert await terminate(proc) == 0
    finally:
        fault.repair()
        await kill(proc)


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_database_locked_for_two_minutes(tmp_path: Path) -> None:
    """Longer than any retry budget: sends answered just before the lock keep their
    outcome until it can be stored; nothing is given up."""
    folder = tmp_path / "data"
    folder.mkdir()
    figures = await storage_fault_scenario(tmp_path, folder, Locked(folder / "campaignd.sqlite3"),
                                           hold=120.0)
    print(f"\n[reliability] locked for two minutes: {figures}")


async def test_database_full_inside_sqlite(daemon: Daemon) -> None:
    """Where no filesystem can be filled (no mount), SQLite itself reports SQLITE_FULL
    once `max_page_count` is reached: the same answers, the same recovery."""
    campaign = await daemon.create_campaign()
    await daemon.register(campaign["uuid"], [{"recipient": "1", "message_id": f"F{i}"}
                                             for i in range(400)])
    writer = daemon.runtime.store.writer
    assert writer is not None
    async with writer.execute("PRAGMA page_count") as cur:
        pages = (await cur.fetchone())[0]
    await writer.execute(f"PRAGMA max_page_count = {pages}")
    codes = []
    for i in range(400):
        status, body = await daemon.post_json("/webhooks/webjs", {
            "event": "message_status_updated", "data": {"message_id": f"F{i}", "ack_level": 2}})
        codes.append(status)
        if status == 503:
            assert body["error"]["code"] == "storage_unavailable"
            break
    assert codes[-1] == 503, "the database never filled up"
    status, ready = await daemon.request("GET", "/readyz")
    assert status == 503 and "full" in " ".join(ready["problems"]), ready
    await writer.execute("PRAGMA max_page_count = 1073741823")
    for i in range(len(codes) - 1, 400):  # the refused one and the rest
        assert (await daemon.post_json("/webhooks/webjs", {
            "event": "message_status_updated",
            "data": {"message_id": f"F{i}", "ack_level": 2}}))[0] == 200
    assert (await daemon.stats(campaign["uuid"]))["total_delivered_count"] == 400
    await eventually(lambda: _ready(daemon))


async def _ready(daemon: Daemon) -> bool:
    return (await daemon.request("GET", "/readyz"))[0] == 200



async def test_checkpoint_that_gives_up_collecting_loses_nothing(daemon_factory: Any) -> None:
    """The actors hand over their changed rows (and forget they were changed) even when
    the checkpointer has stopped waiting for them (`collect_timeout`, e.g. a campaign
    actor busy loading a huge campaign): a later checkpoint must still write them
    before it drops the journal behind them. Fault injected through the checkpointer's
    own `collect_timeout` (0: it gives up at once)."""
    first = await daemon_factory(**{"store.checkpoint_interval": 3600})
    campaign = await first.create_campaign()
    await first.register(campaign["uuid"], [{"recipient": "1", "message_id": f"T{i}"}
                                            for i in range(10)])
    for i in range(10):
        assert (await first.post_json("/webhooks/webjs", {
            "event": "message_status_updated",
            "data": {"message_id": f"T{i}", "ack_level": 3}}))[0] == 200
    checkpointer = first.runtime.checkpointer
    assert checkpointer is not None
    checkpointer.collect_timeout = 0
    with pytest.raises(TimeoutError):
        await checkpointer.run()
    checkpointer.collect_timeout = 30
    await checkpointer.run()  # succeeds: the journal is trimmed
    await checkpointer.run()
    await first.session.close()
    await first.server.close()  # a clean stop: its final checkpoint too

    second = await daemon_factory()
    stats = await second.stats(campaign["uuid"])
    assert (stats["total_delivered_count"], stats["total_read_count"]) == (10, 10)
    status, body = await second.request("GET", f"/api/campaigns/{campaign['uuid']}/messages")
    assert {r["status"] for r in body["messages"]} == {"read"}
