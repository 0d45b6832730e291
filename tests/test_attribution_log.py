"""The store records of replies waiting for the checkpoint (issue 20, domain/
attribution_columns.py FrozenLog): a reply frozen at its first credit waits as its packed
record, not as a tuple of its event's objects, and the checkpoint makes the records a
transaction's worth at a time (store/engagement.py `inbound_transactions`); the records
are the ones the reply's `Pending` would give."""

from __future__ import annotations

import gc
import tracemalloc

from domain.attribution import LOG, expand_ops
from domain.attribution_facts import record
from store.engagement import INBOUND_TRANSACTION, inbound_transactions
from tests.test_attribution_columns import SENT, Wired, reply

REPLIES = 3000


def wired_replies(count: int) -> tuple[Wired, float]:
    """`count` plain replies, each from a number sent one row, credited (and frozen)."""
    wired = Wired()
    at = SENT / 10 + 60
    for n in range(count):
        wired.send(n, f"62811{n:08d}")
    wired.attributor.inbound_batch("cloud", [reply(n, at, f"62811{n:08d}")
                                             for n in range(count)], at + 1)
    wired.run()
    assert len(wired.attributor.frozen) == count
    return wired, at


def test_a_reply_waiting_for_the_checkpoint_holds_little_more_than_its_packed_record():
    tracemalloc.start()
    try:
        wired, _ = wired_replies(REPLIES)
        wired.credits.clear()
        gc.collect()
        waiting = tracemalloc.get_traced_memory()[0]
        ops = wired.attributor.take_ops()
        del ops
        gc.collect()
        written = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # each was a 16-field tuple with its number's string and its time's float (and the
    # `_dirty` dict's entry): ~330 bytes; now its 92-byte record and its id's reference
    # in the log (and the dict's entry, made when it arrived)
    assert (waiting - written) / REPLIES < 200


def test_the_logged_record_is_the_one_its_pending_gives():
    wired = Wired()
    wired.send(5, "6281100000001")
    at = SENT / 10 + 60
    event = reply(1, at, workspace_id=7, button_payload="yes", text="hi")
    wired.attributor.inbound_batch("cloud", [event], at + 1.5)
    wired.run()
    assert len(wired.attributor.frozen) == 1
    ((op, log),) = wired.attributor.take_ops()
    assert op == LOG
    pending = [  # what the Pending held when it was credited (attribution_facts)
        "cloud", event, None, at + 1.5, (1, 5), "window", (), True]
    assert list(expand_ops([(op, log)])) == [("put", record(pending))]
    assert log.store_records(0, 1)[0] == (*event, "cloud", 1, 5, "window", at + 1.5)


def test_a_checkpoint_makes_the_logged_records_a_transaction_at_a_time():
    wired, _ = wired_replies(REPLIES)
    ops = wired.attributor.take_ops()
    (op, log), = ops
    assert op == LOG and len(log) == REPLIES
    ops.append(("drop", "cloud:wamid.R7"))  # newer than its logged record
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        put: list[str] = []
        dropped: list[str] = []
        transactions = 0
        for statements in inbound_transactions(ops):
            transactions += 1
            for sql, params, _ in statements:
                if callable(sql):  # the records, put on the writer's thread
                    put += [r[0] for r in sql.keywords["records"]]
                elif sql.startswith("DELETE"):
                    dropped += params
            del statements, sql, params
        peak = tracemalloc.get_traced_memory()[1] - before - 16 * REPLIES  # `put`
    finally:
        tracemalloc.stop()
    assert transactions == REPLIES // INBOUND_TRANSACTION + 1
    assert dropped == ["cloud:wamid.R7"]
    assert sorted(put) == sorted(f"cloud:wamid.R{n}" for n in range(REPLIES) if n != 7)
    # one transaction's records at a time (~330 bytes each), never the checkpoint's
    assert peak < 1.5 * INBOUND_TRANSACTION * 330
