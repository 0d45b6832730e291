"""Real sender actors on a clock the test holds (no wall-clock waits, no timing asserts).

`Harness` starts real `SenderActor`s whose clock is a `FakeClock`, whose timers are kept
here instead of on an event loop, and whose gateway calls are recorded with the fake
time they were made at. `run_until` moves the clock from one due timer to the next,
delivering each `Tick` and each call's result, so a test sees exactly what the actors
would send at those times, however loaded the machine is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from actors.accounts import SharedAccount
from actors.sender import Job, SenderActor, SenderPolicy, SendResult, SendWork, Tick
from domain.pacing import Aimd
from domain.sendwindow import SendWindow


class Flush:
    """A message that does nothing but let the actor pump (answered in inbox order)."""


class FakeClock:
    """Monotonic and wall time moving together, only when the test says so."""

    def __init__(self, wall: float = 1_800_000_000.0) -> None:
        self.now = 1000.0
        self.offset = wall - self.now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now + self.offset

    def advance_to(self, t: float) -> None:
        self.now = max(self.now, t)


@dataclass
class Call:
    at: float  # fake monotonic time of the gateway call
    wall: float
    campaign: int
    job: Job


# What the fake gateway answers: a function of the call, default accepted.
Answer = Callable[[Call], SendResult]


@dataclass
class Harness:
    clock: FakeClock = field(default_factory=FakeClock)
    calls: list[Call] = field(default_factory=list)
    notices: list[tuple[int, str, str | None]] = field(default_factory=list)
    progress: dict[int, dict[str, Any]] = field(default_factory=dict)
    answer: Answer | None = None
    skipped: list[Call] = field(default_factory=list)  # jobs handed to dispatch_skip
    _timers: list[tuple[float, int]] = field(default_factory=list)
    _results: list[tuple[int, SendResult]] = field(default_factory=list)
    actors: dict[int, pykka.ActorRef[Any]] = field(default_factory=dict)

    def account(self, rate: float, aimd: Aimd | None = None) -> SharedAccount:
        return SharedAccount("test", rate, aimd, self.clock)

    def start(self, no: int, account: SharedAccount, rate: float, rows: int,
              window: SendWindow | None = None, max_in_flight: int = 4,
              skip_of: Callable[[Job], Any] | None = None) -> None:
        policy = SenderPolicy(rate=rate, max_in_flight=max_in_flight, max_attempts=5,
                              backoff_base=0.5, backoff_max=5.0, failure_threshold=1.0,
                              failure_min_sample=10**6, window=window)
        ref = SenderActor.start(
            no, policy, account,
            lambda job: self._call(no, job),
            lambda delay, _msg: self._timers.append((self.clock.now + delay, no)),
            lambda kind, reason: self.notices.append((no, kind, reason)),
            self.progress, self.clock, skip_of,
            lambda job, _skip: self._skip(no, job))
        self.actors[no] = ref
        ref.tell(SendWork(tuple(Job(r, f"62812{no:03d}{r:05d}", None, None)
                                for r in range(rows))))
        self.settle()

    def _call(self, no: int, job: Job) -> None:  # in the actor's thread
        call = Call(self.clock.now, self.clock.time(), no, job)
        self.calls.append(call)
        result = self.answer(call) if self.answer else SendResult(job.row, "accepted")
        self._results.append((no, result))

    def _skip(self, no: int, job: Job) -> None:  # in the actor's thread: stored at once
        self.skipped.append(Call(self.clock.now, self.clock.time(), no, job))
        self._results.append((no, SendResult(job.row, "skipped")))

    def tell(self, no: int, message: Any) -> None:
        self.actors[no].tell(message)
        self.settle()

    def settle(self) -> None:
        """Let every actor handle everything told so far, results of calls included."""
        while True:
            for ref in self.actors.values():
                ref.ask(Flush())  # FIFO: answered after everything told before it
            if not self._results:
                return
            results, self._results = self._results, []
            for no, result in results:
                self.actors[no].tell(result)

    def run_until(self, end: float, stop: Callable[[], bool] | None = None) -> None:
        """Move the clock timer by timer up to `end` (fake seconds), or until `stop()`."""
        while self._timers and not (stop and stop()):
            due = min(t for t, _ in self._timers)
            if due > end:
                break
            self.clock.advance_to(due)
            fired = {no for t, no in self._timers if t <= due}
            self._timers = [(t, no) for t, no in self._timers if t > due]
            for no in fired:
                self.actors[no].tell(Tick())
            self.settle()
        if not (stop and stop()):
            self.clock.advance_to(end)

    def stop(self) -> None:
        for ref in self.actors.values():
            ref.stop()

    def sent_by(self, no: int) -> list[Call]:
        return [c for c in self.calls if c.campaign == no]


def most_in_any_window(times: list[float], width: float) -> int:
    """The largest number of `times` inside any half-open interval of `width` seconds."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - width:
            start += 1
        best = max(best, end - start + 1)
    return best
