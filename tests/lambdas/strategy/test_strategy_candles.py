"""Candle building from trades: exact OHLCV, interval alignment, flat gap candles, late trades, resets."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aipx_strategy.domain.candles import Candle, CandleBuilder, Interval, Position

M = 60_000_000_000
T0 = 1_767_225_600_000_000_000


def test_interval_parsing_and_alignment() -> None:
    assert Interval.parse("1m").ns == M
    assert Interval.parse("15m").ns == 15 * M
    assert Interval.parse("4h").ns == 240 * M
    assert Interval.parse("1d").open_time(T0 + 5 * M) == T0
    assert Interval.parse("5m").open_time(T0 + 7 * M + 3) == T0 + 5 * M
    for bad in ("", "0m", "1w", "m1", "1.5m", "01m"):
        with pytest.raises(ValueError, match="invalid candle interval"):
            Interval.parse(bad)


def test_ohlcv_is_exact_and_closes_on_the_next_interval() -> None:
    b = CandleBuilder(Interval.parse("1m"))
    pos = [Position("md", 0, i) for i in range(10)]
    assert b.add_trade(T0 + 1, Decimal("100.10"), Decimal("0.1"), pos[0]).closed == ()
    b.add_trade(T0 + 2, Decimal("100.30"), Decimal("0.2"), pos[1])
    b.add_trade(T0 + 3, Decimal("99.90"), Decimal("0.3"), pos[2])
    b.add_trade(T0 + M - 1, Decimal("100.00"), Decimal("0.4"), pos[3])
    update = b.add_trade(T0 + M, Decimal("101"), Decimal("1"), pos[4])
    (c,) = update.closed
    assert (c.open, c.high, c.low, c.close) == (
        Decimal("100.10"),
        Decimal("100.30"),
        Decimal("99.90"),
        Decimal("100.00"),
    )
    assert c.volume == Decimal("1.0")
    assert c.quote_volume == Decimal("10.010") + Decimal("20.060") + Decimal("29.970") + Decimal("40.000")
    assert c.trade_count == 4
    assert (c.open_time_ns, c.close_time_ns) == (T0, T0 + M)
    assert c.last_position == pos[3] and c.last_event_time_ns == T0 + M - 1
    assert b.current is not None and b.current.open == Decimal("101")


def test_empty_intervals_become_flat_candles_and_long_gaps_reset() -> None:
    b = CandleBuilder(Interval.parse("1m"), max_gap=3)
    b.add_trade(T0, Decimal("10"), Decimal("1"))
    update = b.add_trade(T0 + 3 * M + 5, Decimal("12"), Decimal("1"))
    assert [c.open_time_ns for c in update.closed] == [T0, T0 + M, T0 + 2 * M]
    flat = update.closed[1]
    assert (flat.open, flat.high, flat.low, flat.close, flat.volume, flat.trade_count) == (
        Decimal("10"),
        Decimal("10"),
        Decimal("10"),
        Decimal("10"),
        Decimal("0"),
        0,
    )
    assert not update.gap_reset
    update = b.add_trade(T0 + 20 * M, Decimal("13"), Decimal("1"))
    assert update.gap_reset and [c.open_time_ns for c in update.closed] == [T0 + 3 * M]


def test_late_trade_is_dropped_not_merged() -> None:
    b = CandleBuilder(Interval.parse("1m"))
    b.add_trade(T0, Decimal("10"), Decimal("1"))
    b.add_trade(T0 + M, Decimal("11"), Decimal("1"))
    update = b.add_trade(T0 + 10, Decimal("5"), Decimal("1"))
    assert update.late and update.closed == ()
    assert b.current is not None and b.current.low == Decimal("11")


def test_candle_state_roundtrip() -> None:
    c = Candle.first(Interval.parse("5m"), T0 + 7, Decimal("1.2300"), Decimal("3"), Position("t", 2, 9))
    c.add(T0 + 8, Decimal("1.25"), Decimal("0.5"), Position("t", 2, 10))
    assert Candle.load(c.dump()) == c
