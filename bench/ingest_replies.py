"""The ingest actor's CPU per status and per reply in process: `python -m
bench.ingest_replies [MESSAGES]` (200,000 by default).

The inbound row (bench/inbound_batch.py) decides its figure on the ingest actor's
thread, but its rates swing by a third from run to run on the shared machine. This
drives the real `IngestActor` (not started: its messages are handled on this thread),
`Attributor`, `MessageIndex` and `NumberRowsReader` (a SQLite file with the messages
table's number index) with the row's workload: `ApplyEvents` of 100 statuses against
100 replies from the campaign's numbers, every third quoting its message, the
campaign actor's answers (sent 10 s before, delivered) put in the `AnswerBox` untimed
and taken timed, the attributor's store operations taken every 50 batches as
checkpoints would. Prints the thread's CPU µs per item by phase. Not a row of `make
bench`; for an exact comparison of two commits run it under `valgrind --tool=callgrind`
from each one's directory with two batch counts (BATCHES=10 and 50) and divide the
difference of the instruction counts by the items (docs/BENCHMARKS.md, wave 11).
"""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from actors.ingest import AnswerBox, AnswersWaiting, IngestActor
from actors.messages import ApplyEvents, RowFacts, RowFactsAnswer
from core.metrics import Metrics
from daemon.serve import GC_THRESHOLDS
from domain.attribution import Attributor
from domain.events import StatusEvent
from domain.inbound import MESSAGE, REPLY, InboundEvent
from domain.index import MessageIndex
from domain.orphans import OrphanShelf
from domain.phones import number_key
from domain.records import CampaignInfo
from store.engagement import NumberRowsReader

BATCHES = int(os.environ.get("BATCHES", "400"))
PER_BATCH = 100


class Probe:
    def __init__(self, messages: int, folder: Path) -> None:
        self.n = messages
        self.now = time.time()
        sent = int(self.now * 10) - 100
        db = folder / "probe.db"
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE messages (campaign_no INTEGER, row INTEGER, nh INTEGER,"
                     " PRIMARY KEY (campaign_no, row)) WITHOUT ROWID")
        conn.executemany("INSERT INTO messages VALUES (1, ?, ?)",
                         ((i, number_key(self.number(i))) for i in range(messages)))
        conn.execute("CREATE INDEX messages_number ON messages (nh) WHERE nh IS NOT NULL")
        conn.commit()
        conn.close()
        index = MessageIndex()
        for i in range(messages):
            index.add(f"wamid.C{i}", 1, i)
        self.told: list[Any] = []
        self.facts = [(row, sent, 2, False, sent, 1, 1) for row in range(messages)]
        self.attributor = Attributor(72 * 3600.0, index.get, lambda no: 1 if no == 1 else None)
        self.reader = NumberRowsReader(db)
        self.actor = IngestActor(index, {1: CampaignInfo(1, "probe", 1, "probe")},
                                 OrphanShelf(3600.0), lambda _info, _load: self,
                                 Metrics(), 60.0, attributor=self.attributor,
                                 lookup_now=self.reader)
        self.box = AnswerBox(SimpleNamespace(tell=lambda _message: None))  # type: ignore[arg-type]
        self.actor._answers = self.box

    def tell(self, message: Any) -> None:
        """The campaign actor's inbox."""
        self.told.append(message)

    @staticmethod
    def number(i: int) -> str:
        return f"62{i:010d}"

    def batch(self, kind: str, b: int) -> tuple[Any, ...]:
        at, n = self.now, self.n
        if kind == "statuses":
            return tuple(StatusEvent(f"wamid.C{j % n}", 2, False, at, None, self.number(j % n))
                         for j in range(b * PER_BATCH, (b + 1) * PER_BATCH))
        return tuple(InboundEvent(f"cloud:wamid.IN{j}", REPLY, MESSAGE, float(int(at)),
                                  self.number(j % n), None,
                                  f"wamid.C{j % n}" if j % 3 == 0 else None)
                     for j in range(b * PER_BATCH, (b + 1) * PER_BATCH))

    def run(self, kind: str, first: int, batches: int) -> dict[str, float]:
        """µs of this thread's CPU per item, by phase."""
        phases = {"apply": 0, "answers": 0, "ops": 0}
        clock = time.thread_time_ns
        for b in range(first, first + batches):
            message = ApplyEvents((("cloud", self.batch(kind, b)),), b)
            t0 = clock()
            self.actor.on_receive(message)
            phases["apply"] += clock() - t0
            while self.told:
                told, self.told = self.told, []
                for m in told:  # the campaign actor's part: untimed
                    if isinstance(m, RowFacts):
                        self.box.tell(RowFactsAnswer(m.serial, 1, tuple(
                            [self.facts[row] for row in m.rows])))
                if self.box.answers:
                    t0 = clock()
                    self.actor.on_receive(AnswersWaiting())
                    phases["answers"] += clock() - t0
            if b % 50 == 49:
                t0 = clock()
                self.attributor.take_ops()
                phases["ops"] += clock() - t0
        items = batches * PER_BATCH
        return {phase: ns / items / 1000 for phase, ns in phases.items()}


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    gc.set_threshold(*GC_THRESHOLDS)
    folder = Path(tempfile.mkdtemp(prefix="ingest-replies-"))
    try:
        probe = Probe(messages, folder)
        for r in range(3):
            statuses = probe.run("statuses", r * BATCHES, BATCHES)
            replies = probe.run("replies", r * BATCHES, BATCHES)
            s, p = sum(statuses.values()), sum(replies.values())
            print(f"round {r + 1}: µs per status {s:.2f}, per reply {p:.2f}"
                  f" (apply {replies['apply']:.2f}, answers {replies['answers']:.2f},"
                  f" store operations {replies['ops']:.2f}), reply - status {p - s:.2f}")
        probe.reader.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
