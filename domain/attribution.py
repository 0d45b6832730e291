"""Reply attribution (SPEC 6.2): which campaign message an inbound message answers.

The rules, the one place they live:
1. An event that names a message (a quoted reply, a button's context, Twilio's
   OriginalRepliedMessageSid, the message a 131050 failure belongs to) is credited to
   that message, once its id is registered.
2. Otherwise (messages and Cloud `user_preferences`, never failures) it is credited to
   the most recent campaign message sent to the same number (E.164 digits, any
   gateway's spelling; `@lid` senders have none) in the same workspace (when the
   gateway says which) within `engagement.reply_window` before it: "sent" is the
   earliest time the message was at least pending, as total_sent_count counts it, and
   a message that counts as failed is not a candidate. Ties go to the higher campaign
   and row number.
   A recipient campaignd sent more than once (SPEC 9, domain/attempts.py) was last sent
   its latest ACCEPTED attempt: "sent" is when the gateway accepted that one (attempt
   1: the earliest pending time, as above), and it counts as failed only when its
   latest attempt failed (and it was never delivered). Any attempt's gateway id names
   the row when quoted.
3. Nothing matches: counted in a metric, nothing else.

The result is a function of the SET of events (registrations, statuses, inbound
events): an event that arrives before the facts that place it (its message not yet
registered, not yet sent) is kept for the window and placed when they arrive, and a
credit moves when a better candidate appears. Each event is decided once per change of
what is known, duplicates count once, and the journal replays safely.

Where the facts live: the ingest actor owns this `Attributor` (it sees every
registration and status in journal order), but not a per-number index of every message:
that would cost memory for every message though few are ever answered. The rows sent
to a number are looked up in SQLite when a reply from it arrives (`Lookup`, an index on
the number key), and their send state is asked from their campaign actors (`Ask`), whose
ledgers have it. From the moment a row is asked about it is *watched*: statuses routed
after the question are merged here, so question + answer + later events give exactly
the row's state. Only numbers with live replies are watched; everything is dropped when
their window ends.

What is known of a row, a number and a live event (and the effects) has its own module,
domain/attribution_facts.py; this one keeps the bookkeeping and applies the rules.
Pure: no threads, no I/O. Inputs are method calls; outputs are effects (`take_effects`)
the ingest actor carries out, counts for the metrics (`take_outcomes`) and store
operations (`take_ops`) the checkpoint writes.

Cost: a batch of replies is one lookup of its new numbers, one question per campaign,
one message of credits per campaign (the ingest actor groups them); an event named by
a registered id is decided at once and never kept live; an event's store operation is
built once per checkpoint from its latest state, however often it was decided since.
"""

from __future__ import annotations

from typing import Any

from domain.attribution_columns import LOG, FrozenReplies, expand_ops
from domain.attribution_facts import (
    ANSWERED,
    ASKED,
    COUNTED,
    DELIVERED,
    EARLIEST,
    EVENT,
    EXPLICIT,
    FAILED,
    FLOOR,
    HOW,
    KEY,
    LEVEL,
    RECEIVED,
    SOURCE,
    TARGET,
    W_EVENTS,
    W_LOOKUP,
    W_ROWS,
    W_STATE,
    W_UNANSWERED,
    WINDOW,
    WORKSPACES,
    Ask,
    Credit,
    Lookup,
    Suppress,
    complete,
    new_pending,
    new_row,
    new_watch,
    pack,
    record,
    row_eligible,
    row_merge,
    row_merge_event,
    row_sent,
    stored,
    touch_of,
    unpack,
    watch_add,
    watch_discard,
    watch_events,
    watch_row,
    watch_rows,
    watch_set_row,
)
from domain.engagement import Touch
from domain.inbound import FAILURE, MANUAL, MESSAGE, REPLY, InboundEvent
from domain.ledger import MAX_BACKDATE_TICKS, to_tenths
from domain.phones import number_key

# The effects and facts are defined in domain/attribution_facts.py; the actors and
# tests take them from here with the Attributor that makes them.
__all__ = ["LOG", "Ask", "Attributor", "Credit", "Lookup", "Suppress", "expand_ops", "pack",
           "touch_of", "unpack"]

CLOCK_SLACK = 3600.0  # seconds: how far back the clock may be set without delaying `expire`


class Attributor:
    def __init__(self, window_seconds: float, resolve: Any, workspace_of: Any) -> None:
        """`resolve(bare_id) -> (campaign_no, row, ...) | None` is the id index (it also
        says which attempt the id belongs to: any attempt's id names its row);
        `workspace_of(campaign_no) -> int | None` knows the campaigns."""
        self.window = to_tenths(window_seconds)
        self.window_seconds = window_seconds
        self.resolve = resolve
        self.workspace_of = workspace_of
        # inbound id -> Pending, or its slot in `frozen` (then so is its number's watch)
        self.live: dict[str, Any] = {}
        self.numbers: dict[int, Any] = {}  # number key -> Watch, or the frozen slot
        self.watched: dict[int, int] = {}  # packed row -> number key
        self.quotes: dict[str, set[str]] = {}  # quoted id not registered yet -> events
        self._serial = 0
        self._lookups: list[int] = []
        self._lookup_serial = 0
        self._effects: list[Any] = []
        # events whose stored row changed since the last take_ops (their latest state)
        self._dirty: dict[str, list[Any]] = {}
        # (source, outcome) -> events: what became of each event the first time it was
        # decided (credited | unattributed), or that it was a duplicate
        self._outcomes: dict[tuple[str, str], int] = {}
        # decided replies at rest (domain/attribution_columns.py), and the live events
        # to freeze at the next take_ops besides the changed ones (thawed, restored, or
        # waiting for facts at the last one)
        self.frozen = FrozenReplies()
        self._to_freeze: set[str] = set()

    def __len__(self) -> int:
        return len(self.live)

    def _quoted(self, quoted_id: str) -> tuple[int, int] | None:
        """The row a quoted id names (an earlier attempt's id names its row too)."""
        hit = self.resolve(quoted_id)
        return None if hit is None else (hit[0], hit[1])

    def _next(self) -> int:
        self._serial += 1
        return self._serial

    def take_effects(self) -> list[Any]:
        """What to do now, in order: lookups first (one for all new numbers)."""
        effects, self._effects = self._effects, []
        if self._lookups:
            effects.insert(0, Lookup(self._lookup_serial, tuple(self._lookups)))
            self._lookups = []
            self._lookup_serial = 0
        return effects

    def take_ops(self) -> list[tuple[str, Any]]:
        """Changes for the inbound table since the last call, one per event changed:
        ("put", record) of its latest state (waiting, or credited), or ("drop",
        inbound_id) for an event whose window ended with no credit; first (LOG, the
        FrozenLog) of the replies frozen when first credited, packed, when there are
        any: an op after it for the same event is newer (`expand_ops`)."""
        log = self.frozen.take_log()
        ops: list[tuple[str, Any]] = [] if log is None else [(LOG, log)]
        live = self.live
        changed = []
        for inbound_id, pending in self._dirty.items():
            if pending.__class__ is tuple:  # its record, made at once (explicit)
                ops.append(("put", pending))
                continue
            changed.append(inbound_id)
            if pending[TARGET] is None and live.get(inbound_id) is not pending:
                ops.append(("drop", inbound_id))
            else:
                ops.append(("put", record(pending)))
        self._dirty = {}
        self._freeze(changed)
        return ops

    # --- the open replies at rest (domain/attribution_columns.py) -----------------------

    def _freeze(self, changed: list[str]) -> None:
        """Put every decided plain reply that waits for nothing into the columns (its
        store record was just made); keep the ones still waiting for facts for the next
        time. (Most replies were frozen when first credited: `_rest`.)"""
        later = set()
        for inbound_id in (*changed, *self._to_freeze):
            if not self._freeze_one(inbound_id):
                later.add(inbound_id)
        self._to_freeze = later

    def _freeze_one(self, inbound_id: str) -> bool:
        """False: not now, but perhaps once the facts it waits for are in."""
        pending = self.live.get(inbound_id)
        if pending.__class__ is not list:
            return True  # gone, or frozen already
        key = pending[KEY]
        watch = self.numbers.get(key) if key is not None else None
        if watch is None or watch.__class__ is not list:
            return True
        if watch[W_LOOKUP] or watch[W_UNANSWERED] or not pending[COUNTED]:
            return False
        if watch[W_EVENTS] != inbound_id:
            return True  # several live events from the number: the lists
        slot = self.frozen.freeze(pending, watch)
        if slot is not None:
            self._point_at(slot, inbound_id, key, watch)
        return True

    def _point_at(self, slot: int, inbound_id: str, key: int, watch: list[Any]) -> None:
        """The reply and its number (and the number's row) now name its frozen slot."""
        self.live[inbound_id] = self.numbers[key] = slot
        row = watch[W_ROWS]
        if row is not None:
            self.watched[row] = key  # the numbers' key: one int for both

    def _rest(self, inbound_id: str, pending: list[Any], watch: list[Any]) -> None:
        """A reply just credited for the first time, its number's one live event, with
        every fact of that number in: into the columns now, while it is at hand (its
        store record is the column's own, logged for the next take_ops: FrozenLog)."""
        slot = self.frozen.freeze(pending, watch, log=True)
        if slot is None:
            self._dirty[inbound_id] = pending
            return
        self._dirty.pop(inbound_id, None)  # the log has it (a later change is newer)
        self._point_at(slot, inbound_id, pending[KEY], watch)

    def _thaw(self, slot: int) -> tuple[list[Any], list[Any]]:
        """A frozen reply and its number's watch back in the lists, to be changed."""
        pending, watch = self.frozen.thaw(slot)
        inbound_id = watch[W_EVENTS]
        self.live[inbound_id] = pending
        self.numbers[pending[KEY]] = watch
        self._to_freeze.add(inbound_id)
        return pending, watch

    def _watch_of(self, key: int) -> list[Any] | None:
        """The number's watch in the lists (thawed if it was frozen), None if none."""
        watch = self.numbers.get(key)
        if watch.__class__ is int:
            return self._thaw(watch)[1]
        return watch

    def take_outcomes(self) -> dict[tuple[str, str], int]:
        """For the metrics, since the last call: (source, outcome) -> events."""
        outcomes, self._outcomes = self._outcomes, {}
        return outcomes

    def _count(self, source: str, outcome: str) -> None:
        key = (source, outcome)
        self._outcomes[key] = self._outcomes.get(key, 0) + 1

    # --- inputs -------------------------------------------------------------------------

    def inbound(self, source: str, event: InboundEvent, received_at: float,
                key: int | None) -> None:
        """A journaled inbound event (MANUAL ones never come here)."""
        if event.via == MANUAL:
            raise ValueError("suppression-list changes are not attributed")
        inbound_id = event.inbound_id
        if inbound_id in self.live:
            self._count(source, "duplicate")
            return
        pending = new_pending(source, event, key, received_at)
        self._dirty[inbound_id] = pending
        hit = self._quoted(event.quoted_id) if event.quoted_id else None
        if hit is not None:  # names a registered message: credited now, and final
            self._decide(pending, hit, EXPLICIT)
            return
        self.live[inbound_id] = pending
        if event.quoted_id:
            self.quotes.setdefault(event.quoted_id, set()).add(inbound_id)
        if key is not None and event.via != FAILURE:
            watch = self._watch(pending)
            if event.kind == REPLY and not complete(watch):
                return  # decided when the rows sent to its number are known
        self._evaluate(pending)

    def inbound_batch(self, source: str, events: list[InboundEvent], received_at: float
                      ) -> None:
        """`inbound` for each event of a journaled batch, its two common paths written
        out: a reply that names a registered message is credited at once (its number's
        key is not even needed); a plain reply waits for its number's rows. Anything
        else takes `inbound`. The same decisions as one call per event, at less cost:
        every reply of every batch comes here."""
        live, dirty, effects, outcomes = self.live, self._dirty, self._effects, self._outcomes
        resolve, numbers = self.resolve, self.numbers
        credited = 0
        for event in events:
            inbound_id, kind, via = event.inbound_id, event.kind, event.via
            if kind != REPLY or via != MESSAGE or inbound_id in live:
                number = event.number  # stops, duplicates, ...
                self.inbound(source, event, received_at,
                             number_key(number) if number else None)
                continue
            quoted_id = event.quoted_id
            hit = resolve(quoted_id) if quoted_id else None
            if hit is not None:  # `_decide(pending, hit, EXPLICIT)` of a fresh reply
                # final at once: its number's key is never needed, and its store record
                # (`record`) is made now, not its Pending (fewer objects wait for the
                # checkpoint: FrozenLog)
                dirty[inbound_id] = stored(event, source, hit[0], hit[1], EXPLICIT, received_at)
                effects.append(Credit(hit[0], hit[1], inbound_id, touch_of(event)))
                credited += 1
                continue
            number = event.number
            key = number_key(number) if number else None
            pending = dirty[inbound_id] = [source, event, key, received_at, None, None, (),
                                           False]  # new_pending
            live[inbound_id] = pending
            if quoted_id:
                self.quotes.setdefault(quoted_id, set()).add(inbound_id)
            if key is None:
                self._evaluate(pending)
                continue
            watch = numbers.get(key)  # `_watch`
            if watch is None:
                if not self._lookup_serial:
                    self._lookup_serial = self._next()
                watch = numbers[key] = [self._lookup_serial, None, inbound_id, 0, None]  # new
                self._lookups.append(key)
                continue  # decided when the rows sent to its number are known
            if watch.__class__ is int:  # a frozen reply from the number: thawed
                watch = self._thaw(watch)[1]
            watch_add(watch, inbound_id)
            if not watch[W_LOOKUP] and not watch[W_UNANSWERED]:  # complete: decide now
                self._evaluate(pending)
        if credited:
            outcome = (source, "credited")
            outcomes[outcome] = outcomes.get(outcome, 0) + credited

    def restore(self, source: str, event: InboundEvent, received_at: float, key: int | None,
                target: tuple[int, int] | None, how: str | None,
                workspaces: tuple[int, ...]) -> None:
        """A live event as the last checkpoint stored it (its credit and its stop are
        loaded by their owners); decided again once the facts are looked up."""
        pending = new_pending(source, event, key, received_at, target, how, workspaces,
                              counted=True)
        self.live[event.inbound_id] = pending
        self._to_freeze.add(event.inbound_id)
        if event.quoted_id and self._quoted(event.quoted_id) is None:
            self.quotes.setdefault(event.quoted_id, set()).add(event.inbound_id)
        if key is not None and event.via != FAILURE:
            self._watch(pending)
        else:
            self._evaluate(pending)

    def registered(self, campaign_no: int, row: int, message_id: str | None,
                   key: int | None, level: int, failed: bool, at: float,
                   attempt: int = 1) -> None:
        """A registration the ingest actor routed: a fresh row (with its number key) or
        an id / outcome for an existing row (without), of attempt `attempt`."""
        if message_id and message_id in self.quotes:
            for inbound_id in sorted(self.quotes.pop(message_id)):
                pending = self.live.get(inbound_id)
                if pending.__class__ is int:
                    pending = self._thaw(pending)[0]
                if pending is not None:
                    self._evaluate(pending)
        packed = pack(campaign_no, row)
        if key is not None and key in self.numbers:
            watch = self._watch_of(key)
            assert watch is not None
            state = watch_row(watch, packed)
            if state is None:  # its first fact: nothing to ask
                state = new_row()
                watch_set_row(watch, packed, state)
                self.watched[packed] = key
            elif state.__class__ is tuple:
                state = list(state)  # thawed: it changes
                watch_set_row(watch, packed, state)
            row_merge_event(state, level, failed, at, attempt, registration=True)
            state[FLOOR] = to_tenths(at)
            self._reconsider(key)
        elif packed in self.watched:
            self.status(campaign_no, row, level, failed, at, attempt, registration=True)

    def is_watched(self, campaign_no: int, row: int) -> bool:
        return pack(campaign_no, row) in self.watched

    def status(self, campaign_no: int, row: int, level: int, failed: bool, at: float,
               attempt: int = 1, registration: bool = False) -> None:
        """A status of attempt `attempt` routed to a watched row (call only when
        `is_watched`)."""
        packed = pack(campaign_no, row)
        key = self.watched.get(packed)
        if key is None:
            return
        watch = self.numbers[key]
        if watch.__class__ is int:  # a frozen reply's row: thawed only if it matters
            state = self.frozen.state(watch)
            before = (row_sent(state), row_eligible(state))
            row_merge_event(state, level, failed, at, attempt, registration)
            if (row_sent(state), row_eligible(state)) == before and \
                    self.frozen.set_state(watch, state):
                return
            watch = self._thaw(watch)[1]
            watch_set_row(watch, packed, state)
            self._reconsider(key)
            return
        state = watch_row(watch, packed)
        if state.__class__ is tuple:
            state = list(state)  # thawed: it changes
            watch_set_row(watch, packed, state)
        before = (row_sent(state), row_eligible(state))
        row_merge_event(state, level, failed, at, attempt, registration)
        if (row_sent(state), row_eligible(state)) != before:
            self._reconsider(key)

    def number_rows(self, serial: int, keys: tuple[int, ...],
                    rows: list[tuple[int, int, int]]) -> None:
        """The answer to a `Lookup`: (number key, campaign_no, row) of every row sent
        to those numbers, as stored."""
        asks: dict[int, list[int]] = {}
        ask_serial = self._next()
        numbers, watched, workspace_of = self.numbers, self.watched, self.workspace_of
        # new_row(ask_serial), one tuple for every row asked (a row's state is replaced,
        # never changed in place, while it is a tuple)
        fresh = (None, 0, False, ask_serial, False, None, 1, 1)
        known: dict[int, bool] = {}  # campaign -> has a workspace (is a campaign)
        for key, campaign_no, row in rows:
            watch = numbers.get(key)
            if watch.__class__ is not list or watch[W_LOOKUP] != serial:
                continue  # the number's window ended meanwhile (or a newer lookup runs)
            packed = (campaign_no << 32) | row  # pack
            held = watch[W_ROWS]
            if held is not None and watch_row(watch, packed) is not None:
                continue
            exists = known.get(campaign_no)
            if exists is None:
                exists = known[campaign_no] = workspace_of(campaign_no) is not None
            if not exists:
                continue
            if held is None:  # its first row (most numbers: their only one)
                watch[W_ROWS], watch[W_STATE] = packed, fresh
            else:
                watch_set_row(watch, packed, fresh)
            watch[W_UNANSWERED] += 1
            watched[packed] = key
            asked = asks.get(campaign_no)
            if asked is None:
                asks[campaign_no] = [row]
            else:
                asked.append(row)
        for campaign_no, asked in sorted(asks.items()):
            self._effects.append(Ask(ask_serial, campaign_no, tuple(asked)))
        for key in keys:
            watch = numbers.get(key)
            if watch.__class__ is list and watch[W_LOOKUP] == serial:
                watch[W_LOOKUP] = 0
                if not watch[W_UNANSWERED]:  # nothing to ask: decide now
                    self._reconsider(key)

    def row_facts(self, serial: int, campaign_no: int,
                  facts: list[tuple[int, int | None, int, bool, int | None, int, int]]
                  ) -> None:
        """The answer to an `Ask`: (row, sent tenths or None, level, failed, registered
        tenths or None, latest attempt, the attempt `sent` belongs to) per row, as the
        campaign actor's ledger had it when the question reached it.

        A number whose one live event waits for its one row (every plain reply from a
        number sent one message: most of them) is decided in this pass, as
        `_reconsider` would (`_credit_ones`); any other number whose last unanswered row
        this answers is reconsidered after the pass, in key order."""
        complete: list[int] = []  # numbers whose last unanswered row this answers
        numbers, watched, base = self.numbers, self.watched, campaign_no << 32
        # a row nothing was merged into since the question (kept as a tuple)
        untouched = (None, 0, False, serial, False, None, 1, 1)
        ones: list[tuple[int, list[Any], int, tuple[Any, ...]]] = []  # for `_credit_ones`
        for row, sent, level, failed, floor, attempt, sent_attempt in facts:
            packed = base | row  # pack
            key = watched.get(packed)
            if key is None:
                continue
            watch = numbers[key]
            if watch.__class__ is int:
                continue  # frozen: every row of it is answered
            rows = watch[W_ROWS]
            one = rows.__class__ is int  # the watch's one row (watch_row, inline)
            state = watch[W_STATE] if one else rows[packed]
            if state[ANSWERED] or state[ASKED] != serial:
                continue
            # kept as a tuple but while a status is merged (attribution_facts)
            if state == untouched:  # row_merge would give the answer as it is
                state = (sent, level, failed, serial, True, floor, attempt,
                         sent_attempt if sent is not None else 1)
            else:
                state = list(state)
                row_merge(state, sent, level, failed, floor, attempt, sent_attempt)
                state[ANSWERED] = True
                state = tuple(state)
            if one:
                watch[W_STATE] = state
            else:
                rows[packed] = state
            watch[W_UNANSWERED] -= 1
            if watch[W_UNANSWERED] or watch[W_LOOKUP]:
                continue
            if one and watch[W_EVENTS].__class__ is str:
                ones.append((key, watch, row, state))
                continue
            complete.append(key)
        if ones:
            complete += self._credit_ones(campaign_no, ones)
        for key in sorted(complete):
            self._reconsider(key)

    def _credit_ones(self, campaign_no: int,
                     ones: list[tuple[int, list[Any], int, tuple[Any, ...]]]) -> list[int]:
        """`_reconsider` of numbers with one live event and one row (of this campaign),
        all answered, whose event is a plain reply not yet credited and the row its
        candidate (rule 2 over one row, as `_latest`): their first credit, and each
        reply into the columns at once (`_rest`). Every plain reply from a number sent
        one message comes here, a batch's answer at a time: written out, one pass, the
        campaign's workspace read once. Returns the numbers it did not decide (in the
        order given), which `_reconsider` decides."""
        live, effects, dirty, window = self.live, self._effects, self._dirty, self.window
        numbers, watched, freeze = self.numbers, self.watched, self.frozen.freeze_credit
        workspace = self.workspace_of(campaign_no)
        base = campaign_no << 32
        credited: dict[str, int] = {}
        undecided = []
        for key, watch, row, state in ones:
            inbound_id = watch[W_EVENTS]
            pending = live.get(inbound_id)
            if pending.__class__ is not list or pending[TARGET] is not None \
                    or pending[COUNTED]:
                undecided.append(key)
                continue
            event = pending[EVENT]
            # (inbound_id, kind, via, at, number, workspace_id, quoted_id, ...)
            if event[6] is not None or event[1] != REPLY or event[2] != MESSAGE:
                undecided.append(key)
                continue
            sent, floor = state[EARLIEST], state[FLOOR]  # row_eligible, as in `_latest`
            if sent is None or (state[FAILED] and state[LEVEL] < DELIVERED):
                undecided.append(key)
                continue
            if floor is not None and sent < floor - MAX_BACKDATE_TICKS:
                sent = floor  # bounded_time
            if not 0 <= int(event[3] * 10 + 0.5) - sent <= window or workspace is None \
                    or (event[5] is not None and workspace != event[5]):
                undecided.append(key)
                continue
            # `_decide` of its first credit, as in `_reconsider`
            effects.append(tuple.__new__(Credit, (
                campaign_no, row, inbound_id,
                tuple.__new__(Touch, (event[3], event[1], event[2], event[7], event[8],
                                      event[9])))))  # touch_of
            pending[TARGET], pending[HOW], pending[COUNTED] = (campaign_no, row), WINDOW, True
            source = pending[SOURCE]
            credited[source] = credited.get(source, 0) + 1
            # `_rest`, with `record` and `_point_at` written out
            key = pending[KEY]  # the numbers' own key object: one int for both
            packed = base | row
            slot = freeze(event, source, key, pending[RECEIVED], packed, state)
            if slot is None:
                dirty[inbound_id] = pending
                continue
            dirty.pop(inbound_id, None)  # its store record is in the log (FrozenLog)
            live[inbound_id] = numbers[key] = slot
            watched[packed] = key
        outcomes = self._outcomes
        for source, count in credited.items():
            outcome = (source, "credited")
            outcomes[outcome] = outcomes.get(outcome, 0) + count
        return undecided

    def expire(self, now: float) -> int:
        """End the window of events received more than `reply_window` ago: their credit
        is final. Returns how many were never credited (dropped)."""
        limit = now - self.window_seconds
        ended = []
        # The live events are in arrival order (restored ones first, by arrival): the
        # scan stops at the first that arrived CLOCK_SLACK after the limit, not at the
        # end of every checkpoint's 100,000 live replies. Only a clock set back by more
        # than that keeps an event open longer (until those before it end).
        frozen = self.frozen
        for pending in self.live.values():
            received = frozen.received_at(pending) if pending.__class__ is int \
                else pending[RECEIVED]
            if received < limit:
                ended.append(pending)
            elif received >= limit + CLOCK_SLACK:
                break
        dropped = 0
        for pending in ended:
            if pending.__class__ is int:
                if frozen.credited(pending):  # `_finish` of a credited frozen reply
                    self._drop_frozen(pending)
                    continue
                pending = self._thaw(pending)[0]
            dropped += pending[TARGET] is None
            self._finish(pending)
        return dropped

    def _drop_frozen(self, slot: int) -> None:
        """A frozen reply's window ended with its credit (as `_finish`: it names no
        message, waits for no lookup, and is its number's one live event)."""
        frozen = self.frozen
        del self.live[frozen.ids[slot]]  # type: ignore[arg-type]
        self.numbers.pop(frozen.key_of(slot), None)
        row = frozen.row_of(slot)
        if row is not None:
            self.watched.pop(row, None)
        frozen.drop(slot)

    # --- deciding -----------------------------------------------------------------------

    def _watch(self, pending: list[Any]) -> list[Any]:
        key = pending[KEY]
        assert key is not None
        watch = self._watch_of(key)
        if watch is None:
            if not self._lookup_serial:
                self._lookup_serial = self._next()
            watch = self.numbers[key] = new_watch(self._lookup_serial,
                                                  pending[EVENT].inbound_id)
            self._lookups.append(key)
        else:
            watch_add(watch, pending[EVENT].inbound_id)
        return watch

    def _reconsider(self, key: int) -> None:
        watch = self._watch_of(key)
        if watch is None or not complete(watch):
            return
        live = self.live
        for inbound_id in watch_events(watch):
            pending = live.get(inbound_id)
            if pending is None:
                continue
            event = pending[EVENT]
            if event.quoted_id is None and event.kind == REPLY and event.via == MESSAGE:
                # `_evaluate` of a plain reply whose number's rows are known
                target = self._latest(watch, event)
                if target is None or pending[TARGET] is not None or pending[COUNTED]:
                    self._decide(pending, target, WINDOW)
                    continue
                # `_decide` of its first credit (most replies), written out
                self._effects.append(tuple.__new__(Credit, (
                    target[0], target[1], inbound_id, touch_of(event))))
                pending[TARGET], pending[HOW], pending[COUNTED] = target, WINDOW, True
                outcome = (pending[SOURCE], "credited")
                self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
                if watch[W_EVENTS] is inbound_id and watch[W_ROWS].__class__ is int:
                    self._rest(inbound_id, pending, watch)  # its number's one event
                else:
                    self._dirty[inbound_id] = pending
            else:
                self._evaluate(pending)

    def _evaluate(self, pending: list[Any]) -> None:
        event = pending[EVENT]
        hit = self._quoted(event.quoted_id) if event.quoted_id else None
        if hit is not None:
            self._decide(pending, hit, EXPLICIT)
            self._finish(pending)  # an id never moves: final
            return
        key = pending[KEY]
        watch = self._watch_of(key) if key is not None else None
        if event.workspace_id is not None and event.kind != REPLY:
            self._set_workspaces(pending, (event.workspace_id,))
        if watch is None or event.via == FAILURE:
            if event.quoted_id:
                return  # only its quoted id can place it: wait for the registration
            self._decide(pending, None, None)  # nothing to go by (an @lid, no quote)
            self._finish(pending)
            return
        if not complete(watch):
            return  # the old credit stands until the facts are in
        self._decide(pending, self._latest(watch, event), WINDOW)

    def _latest(self, watch: list[Any], event: InboundEvent) -> tuple[int, int] | None:
        at = int(event.at * 10 + 0.5)  # to_tenths
        window = self.window
        best: tuple[int, int, int] | None = None
        for packed, state in watch_rows(watch):
            # row_eligible, with `sent` (row_sent) worked out once, inline
            sent, floor = state[EARLIEST], state[FLOOR]
            if sent is None or (state[FAILED] and state[LEVEL] < DELIVERED):
                continue
            if floor is not None and sent < floor - MAX_BACKDATE_TICKS:
                sent = floor  # bounded_time
            if not 0 <= at - sent <= window:
                continue
            campaign_no, row = packed >> 32, packed & 0xFFFFFFFF  # unpack
            workspace = self.workspace_of(campaign_no)
            if workspace is None or (event.workspace_id is not None
                                     and workspace != event.workspace_id):
                continue
            candidate = (sent, campaign_no, row)
            if best is None or candidate > best:
                best = candidate
        return (best[1], best[2]) if best else None

    def _decide(self, pending: list[Any], target: tuple[int, int] | None,
                how: str | None) -> None:
        event = pending[EVENT]
        how = how if target is not None else None
        before = pending[TARGET]
        if target != before:
            if before is not None:
                self._effects.append(Credit(before[0], before[1], event.inbound_id, None))
            if target is not None:
                self._effects.append(Credit(target[0], target[1], event.inbound_id,
                                            touch_of(event)))
            pending[TARGET], pending[HOW] = target, how
            self._dirty[event.inbound_id] = pending
        elif how != pending[HOW]:
            pending[HOW] = how
            self._dirty[event.inbound_id] = pending
        if event.kind != REPLY:
            self._set_workspaces(pending, self._workspaces(pending))
        if not pending[COUNTED]:
            pending[COUNTED] = True
            self._count(pending[SOURCE], "credited" if target else "unattributed")

    def _workspaces(self, pending: list[Any]) -> tuple[int, ...]:
        """Where a stop / start applies: the workspace the gateway named; else the
        credited message's; else every workspace that ever messaged the number."""
        event = pending[EVENT]
        if event.workspace_id is not None:
            return (event.workspace_id,)
        if pending[TARGET] is not None:
            workspace = self.workspace_of(pending[TARGET][0])
            return (workspace,) if workspace is not None else ()
        key = pending[KEY]
        watch = self._watch_of(key) if key is not None else None
        if watch is None or event.via == FAILURE:
            return ()
        found = {self.workspace_of(unpack(packed)[0]) for packed, _ in watch_rows(watch)}
        return tuple(sorted(w for w in found if w is not None))

    def _set_workspaces(self, pending: list[Any], workspaces: tuple[int, ...]) -> None:
        event = pending[EVENT]
        if workspaces == pending[WORKSPACES] or event.number is None:
            return
        pending[WORKSPACES] = workspaces
        self._effects.append(Suppress(event.inbound_id, event.number, workspaces, event.at,
                                      event.kind, event.reason, pending[SOURCE]))

    def _finish(self, pending: list[Any]) -> None:
        """The event leaves the live set; its credit (if any) stays in the store."""
        event = pending[EVENT]
        if self.live.pop(event.inbound_id, None) is None:
            return
        if pending[TARGET] is None:
            # A reply to nothing is only counted; a stop's effect is in the suppressions.
            self._dirty[event.inbound_id] = pending
        if event.quoted_id in self.quotes:
            waiting = self.quotes[event.quoted_id]
            waiting.discard(event.inbound_id)
            if not waiting:
                del self.quotes[event.quoted_id]
        key = pending[KEY]
        watch = self.numbers.get(key) if key is not None else None
        # (a frozen watch's one event is frozen too: never this one)
        if watch.__class__ is list and watch_discard(watch, event.inbound_id):
            del self.numbers[key]
            for packed, _ in watch_rows(watch):
                self.watched.pop(packed, None)
            if watch[W_LOOKUP] == self._lookup_serial and key in self._lookups:
                self._lookups.remove(key)
