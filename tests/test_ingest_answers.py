"""A campaign actor's answer to the attributor's question (the send state of the rows a
replying number was sent) is taken by the ingest actor before its next message, not
after every journal batch queued since (actors/ingest.py `AnswerBox`). What it changes
for a user: while replies arrive faster than they are decided, a reply is decided (and
stored) with its credit at the next message instead of waiting behind the backlog,
where every checkpoint in between had stored it as waiting.

The real IngestActor and Attributor, driven on the test's thread (the actor is not
started, so the order of its messages is the test's); the box's wake-ups are recorded
instead of told to a running actor."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from actors.ingest import AnswerBox, AnswersWaiting, IngestActor
from actors.messages import ApplyEvents, RowFactsAnswer
from core.metrics import Metrics
from domain.attribution import Ask, Attributor, Lookup
from domain.attribution_facts import TARGET
from domain.inbound import MESSAGE, REPLY, InboundEvent
from domain.index import MessageIndex
from domain.orphans import OrphanShelf
from domain.phones import number_key

NUMBER = "6281234567890"
CAMPAIGN, ROW = 7, 3


def reply(n: int, at: float) -> InboundEvent:
    return InboundEvent(f"cloud:wamid.R{n}", REPLY, MESSAGE, at, NUMBER)


def no_campaign_actor(*_args: Any) -> Any:
    raise AssertionError("the test's campaign is not one the ingest actor starts")


def test_an_answer_is_taken_before_the_next_journal_batch() -> None:
    now = time.time()
    index = MessageIndex()
    attributor = Attributor(72 * 3600.0, index.get, lambda _no: 1)
    actor = IngestActor(index, {}, OrphanShelf(3600.0), no_campaign_actor, Metrics(), 60.0,
                        attributor=attributor)
    woken: list[Any] = []
    box = AnswerBox(SimpleNamespace(tell=woken.append))  # type: ignore[arg-type]
    actor._answers = box

    # The first reply from the number: its rows are looked up, then asked about.
    attributor.inbound_batch("cloud", [reply(1, now)], now)
    (lookup,) = attributor.take_effects()
    assert isinstance(lookup, Lookup)
    attributor.number_rows(lookup.serial, lookup.keys, [(number_key(NUMBER), CAMPAIGN, ROW)])
    (ask,) = attributor.take_effects()
    assert isinstance(ask, Ask) and ask.rows == (ROW,)
    assert attributor.live["cloud:wamid.R1"][TARGET] is None  # waiting for the answer

    # The campaign actor answers (sent a minute ago, delivered) while the ingest actor's
    # inbox already holds the next journal batch: a second reply from the same number.
    sent = int((now - 60) * 10)
    box.tell(RowFactsAnswer(ask.serial, CAMPAIGN, ((ROW, sent, 2, False, sent, 1, 1),)))
    assert [type(w) for w in woken] == [AnswersWaiting]
    actor.on_receive(ApplyEvents((("cloud", (reply(2, now + 1),)),), 1))

    # The answer was merged first: the first reply is credited, and the second, whose
    # number's rows were then known, was decided in its own batch.
    assert attributor.live["cloud:wamid.R1"][TARGET] == (CAMPAIGN, ROW)
    assert attributor.live["cloud:wamid.R2"][TARGET] == (CAMPAIGN, ROW)
    assert not box.answers
    actor.on_receive(AnswersWaiting())  # the wake-up, after the fact: nothing left to do
    assert attributor.live["cloud:wamid.R2"][TARGET] == (CAMPAIGN, ROW)
