"""Alternating wrk rounds against several servers, each round checked.

A `Target` is the bare handler or a daemon fed by a ladder (bench/ladder.py). Each
round runs wrk for a few seconds where the target's ladder stopped the last time. For a
daemon the round also includes the checkpoint of what it took (run right after wrk and
timed: the rate is answered requests over wrk's time plus that checkpoint, so no
round leaves its storage work to the next one); it must not have counted a single
duplicate event (every request was work); then the tail wrk may have left in flight is
posted again, and that replay may apply at most one event per connection. `finish`
compares the counters with what the generated prefix implies.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.common import (
    WRK_CONNECTIONS,
    BenchError,
    Daemon,
    median,
    post_raw,
    wrk,
)


class Ladder(Protocol):
    capacity: int

    def lua(self, start: int, wrap: int = 0) -> str: ...

    def replay_bodies(self, steps: range) -> list[bytes]: ...

    def expected(self, steps: int) -> list[dict[str, int]]: ...


@dataclass
class Target:
    """One server under wrk: the bare handler (daemon None) or a daemon."""

    name: str
    url: str
    path: str
    ladder: Ladder
    folder: Path
    daemon: Daemon | None = None
    uuids: Sequence[str] = ()
    source: str = "webjs"
    secret: str | None = None  # webjs X-Signature secret (signed bodies from a file)
    signed_lua: Callable[[int], str] | None = None
    items_per_request: int = 1
    # (work done, work that changed nothing) as the daemon counts it; default: the
    # source's applied and duplicate events
    counts: Callable[[Daemon], tuple[int, int]] | None = None
    # waits (inside the timed part of a round) until the daemon has done the work of
    # the requests it answered, for work that goes on after the 2xx (replies' credits)
    settle: Callable[[Daemon, int | None], None] | None = None
    # False where the daemon's own count may count a replayed item again (the inbound
    # metric counts a reply each time it is decided): the row checks the store instead
    check_replay: bool = True
    # waits (inside the timed part, after the round's checkpoint) for work the round
    # caused that runs after its checkpoint (the analytics' recount of what it wrote)
    after_checkpoint: Callable[[Daemon], None] | None = None
    position: int = 0
    rates: list[float] = field(default_factory=list)
    flushes: list[float] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def script(self) -> Path:
        path = self.folder / f"{self.name}-{self.position}.lua"
        if self.signed_lua is not None:
            path.write_text(self.signed_lua(self.position))
        elif self.daemon is None:  # the bare handler: any bodies of the kind, wrapping
            path.write_text(self.ladder.lua(self.position, wrap=self.ladder.capacity))
        else:
            path.write_text(self.ladder.lua(self.position))
        return path

    def round(self, seconds: float) -> float:
        if self.daemon is None:  # the bare handler keeps no state: any bodies will do
            result = wrk(self.url + self.path, self.script(), seconds)
            self.rates.append(result.rps)
            # the same kind of bodies next time; the script wraps at the ladder's end
            self.position = (self.position + result.generated) % max(1, self.ladder.capacity)
            return result.rps
        d = self.daemon
        done, duplicates = self._counts()
        result = wrk(self.url + self.path, self.script(), seconds)
        t0 = time.perf_counter()
        if self.settle is not None:
            self.settle(d, done + result.requests * self.items_per_request)
        for uuid in self.uuids:
            d.flush(uuid)
        if self.after_checkpoint is not None:
            self.after_checkpoint(d)
        flush = time.perf_counter() - t0
        self.flushes.append(flush)
        self.details.setdefault("wrk_s", []).append(round(result.seconds, 3))
        rate = result.requests / (result.seconds + flush)
        self.rates.append(rate)
        if result.generated < 0:
            raise BenchError("wrk did not report how many requests it made")
        start, self.position = self.position, self.position + result.generated
        if self.position > self.ladder.capacity:
            raise BenchError(f"{self.name}: the ladder ran out ({self.position} requests >"
                             f" {self.ladder.capacity}); register more messages")
        repeated = self._counts()[1] - duplicates
        if repeated:
            raise BenchError(f"{self.name}: {repeated} events changed nothing during the round:"
                             " the workload repeats itself")
        # wrk stops with up to one request per connection in flight: post the tail again.
        # And the first request: wrk makes it once to check the script, never sends it.
        tail = max(start + 1, self.position - max(4 * WRK_CONNECTIONS, int(result.rps)))
        if self.settle is not None:
            self.settle(d, None)  # the answers that were in flight are settled too
        applied = self._counts()[0]
        replay = [*self.ladder.replay_bodies(range(start, start + 1)),
                  *self.ladder.replay_bodies(range(tail, self.position))]
        for body in replay:
            headers = {}
            if self.secret is not None:
                headers["X-Signature"] = "sha256=" + hmac.new(
                    self.secret.encode(), body, hashlib.sha256).hexdigest()
            post_raw(self.url + self.path, body, headers)
        if self.settle is not None:
            self.settle(d, None)  # the replay's answers are settled too
        late = self._counts()[0] - applied
        if self.check_replay and late > (WRK_CONNECTIONS + 1) * self.items_per_request:
            raise BenchError(f"{self.name}: replaying the tail applied {late} events, more than"
                             " wrk can have had in flight: answered events were lost")
        self.details.setdefault("replay_applied", []).append(late)
        for uuid in self.uuids:
            d.flush(uuid)
        return rate

    def _counts(self) -> tuple[int, int]:
        assert self.daemon is not None
        if self.counts is not None:
            return self.counts(self.daemon)
        return (self.daemon.events(self.source, "applied"),
                self.daemon.events(self.source, "duplicate"))

    def finish(self) -> None:
        """The counters must be exactly what the generated requests imply."""
        if self.daemon is None:
            return
        expected = self.ladder.expected(self.position)
        self.details["requests_sent"] = self.position
        if not expected:  # the row checks what the store holds
            return
        for uuid, want in zip(self.uuids, expected, strict=True):
            stats = self.daemon.statistics(uuid)
            got = {key: stats[key] for key in want}
            if got != want:
                raise BenchError(f"{self.name}: campaign {uuid} counts {got}, but the"
                                 f" {self.position} requests sent make {want}")
        self.details["requests_sent"] = self.position
        self.details["checked"] = "exact"

    @property
    def median(self) -> float:
        return median(self.rates)


def alternate(targets: Sequence[Target], rounds: int, seconds: float,
              mirrored: bool = False) -> None:
    """Round 1 of every target, then round 2 of every target, ... (drift hits all).

    `mirrored` runs every other round in the reverse order (A B C, C B A, ...), so a
    load that rises or falls through a round does not always favour the same target
    of two neighbours (what `paired_ratio` compares).

    The analytics' recount of the registered rows is waited out first (registration is
    not what is measured); after the rounds, how long the recount of what they changed
    still took is recorded (`analytics_catch_up_s`): it yields to webhooks while they
    flow (store/insights.py), so it is work the rounds' rate does not include."""
    for target in targets:
        if target.daemon is not None:
            target.daemon.analytics_settled()
    for index in range(rounds):
        for target in (reversed(targets) if mirrored and index % 2 else targets):
            target.round(seconds)
    for target in targets:
        if target.daemon is not None:
            target.details["analytics_catch_up_s"] = round(
                target.daemon.analytics_settled(), 2)
        target.finish()


def paired_ratio(a: Target, b: Target) -> float:
    """The median over rounds of a's rate over b's in the same round.

    Two targets run next to each other in every round, so each round's ratio sees the
    same machine; the median of those ratios is steadier on a noisy machine than the
    ratio of the two medians, which may come from rounds minutes apart."""
    return median([x / y for x, y in zip(a.rates, b.rates, strict=True) if y > 0])
