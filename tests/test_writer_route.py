"""A committed batch of statuses is routed by the journal's writer thread itself while the
ingest actor is idle (actors/ingest.py `WriterRoute`), and told to the ingest actor as
before when it is busy. What must hold either way: every 2xx'd status is counted once,
a read after the 2xx sees it, and a batch never overtakes a message told before it."""

from __future__ import annotations

import threading
from typing import Any

from actors.messages import ApplyEvents, CheckpointDone
from tests.conftest import Daemon, eventually, webjs_ack


class CountingRef:
    """The runtime's ingest ref, counting the `ApplyEvents` told to it (each one wakes
    the ingest actor's thread)."""

    def __init__(self, ref: Any) -> None:
        self.ref = ref
        self.applies = 0

    def tell(self, message: Any) -> None:
        if isinstance(message, ApplyEvents):
            self.applies += 1
        self.ref.tell(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ref, name)


async def campaign_with(daemon: Daemon, count: int) -> str:
    campaign = await daemon.create_campaign(name="Route")
    await daemon.register(campaign["uuid"], [
        {"recipient": f"628100{i:06d}", "message_id": f"R-{i}"} for i in range(count)])
    return str(campaign["uuid"])


async def test_an_idle_ingest_actor_is_not_woken_per_commit(daemon: Daemon) -> None:
    uuid = await campaign_with(daemon, 12)
    rt = daemon.runtime
    counting = CountingRef(rt.ingest)
    rt.ingest = counting
    try:
        for i in range(12):  # one at a time: each its own commit, the actor idle between
            await eventually(lambda: _idle(rt))
            status, body = await daemon.post_json("/webhooks/webjs", webjs_ack(f"R-{i}", 2))
            assert status == 200, body
            # read after the 2xx: the status is there
            assert (await daemon.stats(uuid))["total_delivered_count"] == i + 1
    finally:
        rt.ingest = counting.ref
    assert counting.applies == 0  # routed on the writer thread every time


async def test_a_busy_ingest_actor_is_told_the_batches_and_counts_them(
        daemon: Daemon) -> None:
    uuid = await campaign_with(daemon, 10)
    rt = daemon.runtime
    actor = rt._writer_route.actor
    assert actor is not None
    counting = CountingRef(rt.ingest)
    rt.ingest = counting
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:  # the ingest actor's thread, busy with an earlier message
        with actor._turn:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        rt.ingest.tell(CheckpointDone(0))  # taken by the actor, which waits for its turn
        await eventually(lambda: _idle(rt))
        for i in range(10):  # delivered, then read: each its own commit
            for ack in (2, 3):
                status, _ = await daemon.post_json("/webhooks/webjs", webjs_ack(f"R-{i}", ack))
                assert status == 200
        assert counting.applies == 20 and actor.actor_inbox.qsize() >= 20  # + checkpoints
    finally:
        release.set()
        holder.join()
        rt.ingest = counting.ref

    async def all_counted() -> bool:
        stats = await daemon.stats(uuid)
        return stats["total_read_count"] == 10
    await eventually(all_counted)
    stats = await daemon.stats(uuid)
    assert stats["total_delivered_count"] == 10 and stats["total_read_count"] == 10, stats


async def _idle(rt: Any) -> bool:
    return rt.ingest.actor_inbox.qsize() == 0
