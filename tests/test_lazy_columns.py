"""The played and failed time columns are made on first use (memory9, issue 20): a
campaign that never sees a played or a failed status does not hold 8 bytes per message
of "not reached", and one that does holds exactly what it held before."""

from __future__ import annotations

from array import array

from domain.failures import Failure
from domain.image import ledger_from_bytes, ledger_to_bytes
from domain.ledger import NONE, TS_FAILED, TS_PLAYED, TS_SLOTS, Ledger
from domain.ledger_bulk import apply_events
from domain.status import Level

T0 = 1.7e9
INCAPABLE = Failure("cloud", "131026", "Receiver is incapable", None)


def registered(rows: int) -> Ledger:
    ledger = Ledger()
    ledger.reserve(rows, T0)
    for row in range(rows):
        ledger.fill(row, T0)
    return ledger


def columns(ledger: Ledger) -> list[list[int]]:
    return [ledger.column_values(slot).tolist() for slot in range(TS_SLOTS)]


def test_read_messages_hold_no_played_or_failed_column() -> None:
    ledger = registered(1000)
    for row in range(1000):
        for level in (Level.PENDING, Level.DELIVERED, Level.READ):
            ledger.apply(row, level, False, T0 + level, None)
    assert len(ledger.ts[TS_PLAYED]) == 0 and len(ledger.ts[TS_FAILED]) == 0
    assert ledger.statistics()["total_read_count"] == 1000
    assert ledger.timestamp(TS_PLAYED, 7) is None and ledger.timestamp(TS_FAILED, 7) is None
    assert ledger.row_state(7)[4:10] == (T0 + 1, T0 + 3, T0 + 3, T0 + 4, None, None)


def test_first_played_and_failed_make_their_column_at_full_length() -> None:
    ledger = registered(100)
    assert ledger.apply(40, Level.PLAYED, False, T0 + 9, None)
    assert ledger.apply(60, Level.PENDING, True, T0 + 5, "boom", INCAPABLE)
    for slot in (TS_PLAYED, TS_FAILED):
        assert len(ledger.ts[slot]) == 100
    assert ledger.timestamp(TS_PLAYED, 40) == T0 + 9
    assert ledger.timestamp(TS_FAILED, 60) == T0 + 5
    assert ledger.ts[TS_PLAYED].count(NONE) == 99
    ledger.add(149, T0 + 20)  # made columns grow with the ledger
    assert len(ledger.ts[TS_PLAYED]) == len(ledger.ts[TS_FAILED]) == 150
    assert ledger.statistics()["total_failed_count"] == 1


def test_bulk_apply_makes_the_played_column_as_apply_does() -> None:
    one, bulk = registered(50), registered(50)
    events = [(row, ("id", Level.PLAYED if row % 7 == 0 else Level.READ, False,
                     T0 + row, None, None, None)) for row in range(50)]
    for row, event in events:
        one.apply(row, event[1], False, event[3], None)
    apply_events(bulk, events)
    assert columns(one) == columns(bulk)
    assert len(bulk.ts[TS_PLAYED]) == 50 and len(bulk.ts[TS_FAILED]) == 0
    assert one.statistics() == bulk.statistics()


def test_image_round_trip_keeps_unused_columns_unmade() -> None:
    ledger = registered(70_000)  # three chunks
    ledger.apply(5, Level.READ, False, T0 + 3, None)
    back = ledger_from_bytes(*ledger_to_bytes(ledger))
    assert len(back.ts[TS_PLAYED]) == 0 and len(back.ts[TS_FAILED]) == 0
    assert columns(back) == columns(ledger)
    # a failure later cleared by a newer attempt leaves a made column of NONE: the image
    # loads it unmade, with the same times
    ledger.apply(9, Level.PENDING, True, T0 + 4, "x", INCAPABLE)
    ledger.apply(9, Level.PENDING, False, T0 + 6, None, None, 2)
    assert len(ledger.ts[TS_FAILED]) == 70_000 and ledger.ts[TS_FAILED].count(NONE) == 70_000
    back = ledger_from_bytes(*ledger_to_bytes(ledger))
    assert len(back.ts[TS_FAILED]) == 0
    assert columns(back) == columns(ledger)
    ledger.apply(69_999, Level.PLAYED, False, T0 + 8, None)
    back = ledger_from_bytes(*ledger_to_bytes(ledger))
    assert back.timestamp(TS_PLAYED, 69_999) == T0 + 8
    assert columns(back) == columns(ledger)
    assert back.statistics() == ledger.statistics()


def test_rows_loaded_in_parts_make_a_lazy_column_at_the_right_rows() -> None:
    """A campaign loaded from its table in chunks: the first without a failed time, the
    second with one. The column is made for the rows before, then takes the new ones."""
    base = 17_000_000_000

    def part(start: int, count: int, failed_row: int | None) -> list[object]:
        rows = list(range(start, start + count))
        failed_ticks = [30 if row == failed_row else NONE for row in rows]
        return [rows, bytes([1 if row == failed_row else 0 for row in rows]),
                bytes([1 if row == failed_row else 0 for row in rows]),
                ["x" if row == failed_row else None for row in rows],
                [0] * count, *([NONE] * count for _ in range(4)), [NONE] * count,
                failed_ticks]

    ledger = Ledger()
    ledger.load_ticks(base, part(0, 10, None))
    assert len(ledger.ts[TS_FAILED]) == 0
    ledger.load_ticks(base, part(10, 10, 13))
    assert len(ledger.ts[TS_FAILED]) == 20
    assert ledger.tick_at(TS_FAILED, 13) == 30
    assert ledger.ts[TS_FAILED].count(NONE) == 19
    assert len(ledger.ts[TS_PLAYED]) == 0
    assert ledger.statistics()["total_failed_count"] == 1


def test_dirty_rows_carry_none_for_an_unmade_column() -> None:
    ledger = registered(10)
    ledger.take_dirty_rows(1)
    ledger.apply(3, Level.READ, False, T0 + 2, None)
    dirty = ledger.take_dirty_rows(1)
    assert dirty is not None
    assert list(dirty.rows) == [3]
    # the unmade columns are carried empty (every row NONE), written as NULL
    assert len(dirty.ticks[TS_PLAYED - 1]) == 0 and len(dirty.ticks[TS_FAILED - 1]) == 0
    assert dirty.tick_column(TS_PLAYED - 1) == array("i", [NONE])
    assert next(dirty.params())[8:10] == (None, None)
    assert dirty.ticks[READ_SLOT - 1] == array("i", [20])


READ_SLOT = int(Level.READ)
