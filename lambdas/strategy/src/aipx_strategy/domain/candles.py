"""Candles built from trades, exact (Decimal OHLCV), bucketed by exchange event time on UTC-aligned intervals.

A candle covers [open_time_ns, close_time_ns) and is final once a trade at or after its close time arrives
(event time drives everything; there is no wall clock in here, so replays give the same candles). Intervals
without trades become flat candles at the previous close with zero volume (the exchanges' convention), up to
`max_gap` of them; a longer silence breaks the series and the caller resets what depends on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_UNITS_NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_INTERVAL = re.compile(r"^([1-9][0-9]*)([smhd])$")


@dataclass(frozen=True, slots=True)
class Interval:
    """A candle interval: its label ("1m", "5m", "1h", ...) and length in nanoseconds."""

    label: str
    ns: int

    @classmethod
    def parse(cls, label: str) -> Interval:
        """'15m' -> Interval('15m', 900e9 ns); ValueError for anything else."""
        match = _INTERVAL.match(label)
        if match is None:
            raise ValueError(f"invalid candle interval {label!r}; expected e.g. '1m', '5m', '1h', '1d'")
        return cls(label, int(match.group(1)) * _UNITS_NS[match.group(2)])

    def open_time(self, time_ns: int) -> int:
        """Start of the interval containing `time_ns` (aligned to the unix epoch, i.e. UTC)."""
        return time_ns - time_ns % self.ns


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record came from in the input stream (Kafka topic/partition/offset)."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class Candle:
    """One OHLCV candle; decimals are exact. `last_*` say which input it includes up to (the watermark)."""

    open_time_ns: int
    close_time_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trade_count: int
    last_event_time_ns: int
    last_position: Position | None

    @classmethod
    def first(
        cls, interval: Interval, time_ns: int, price: Decimal, quantity: Decimal, at: Position | None
    ) -> Candle:
        open_time = interval.open_time(time_ns)
        return cls(
            open_time,
            open_time + interval.ns,
            price,
            price,
            price,
            price,
            quantity,
            price * quantity,
            1,
            time_ns,
            at,
        )

    @classmethod
    def flat(cls, previous: Candle, interval: Interval) -> Candle:
        """The candle after `previous` when no trade happened in it."""
        zero = Decimal(0)
        c = previous.close
        return cls(
            previous.close_time_ns,
            previous.close_time_ns + interval.ns,
            c,
            c,
            c,
            c,
            zero,
            zero,
            0,
            previous.last_event_time_ns,
            previous.last_position,
        )

    def add(self, time_ns: int, price: Decimal, quantity: Decimal, at: Position | None) -> None:
        # Records of one instrument arrive in partition order, so the last trade applied sets the close.
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += quantity
        self.quote_volume += price * quantity
        self.trade_count += 1
        self.last_event_time_ns = max(self.last_event_time_ns, time_ns)
        if at is not None:
            self.last_position = at

    def dump(self) -> list[Any]:
        pos = self.last_position
        return [
            self.open_time_ns,
            self.close_time_ns,
            str(self.open),
            str(self.high),
            str(self.low),
            str(self.close),
            str(self.volume),
            str(self.quote_volume),
            self.trade_count,
            self.last_event_time_ns,
            None if pos is None else [pos.topic, pos.partition, pos.offset],
        ]

    @classmethod
    def load(cls, data: list[Any]) -> Candle:
        pos = data[10]
        return cls(
            int(data[0]),
            int(data[1]),
            Decimal(data[2]),
            Decimal(data[3]),
            Decimal(data[4]),
            Decimal(data[5]),
            Decimal(data[6]),
            Decimal(data[7]),
            int(data[8]),
            int(data[9]),
            None if pos is None else Position(str(pos[0]), int(pos[1]), int(pos[2])),
        )


@dataclass(frozen=True, slots=True)
class CandleUpdate:
    """What one trade did to an interval's series: candles that became final, and whether the series broke."""

    closed: tuple[Candle, ...] = ()
    # True when the gap before this trade exceeded max_gap: the closed candles end one series, the open one
    # starts a new one (indicators must restart).
    gap_reset: bool = False
    # True when the trade was older than the open candle and was dropped.
    late: bool = False


# The outcomes of most trades, built once (CandleUpdate is frozen; a frozen dataclass costs about a
# microsecond to construct, and every trade of every interval returns one).
_UNCHANGED = CandleUpdate()
_LATE = CandleUpdate(late=True)


class CandleBuilder:
    """Builds one interval's candles from trades of one instrument."""

    __slots__ = ("current", "interval", "max_gap")

    def __init__(self, interval: Interval, *, max_gap: int = 60) -> None:
        self.interval = interval
        self.max_gap = max_gap
        self.current: Candle | None = None

    def add_trade(
        self, time_ns: int, price: Decimal, quantity: Decimal, at: Position | None = None
    ) -> CandleUpdate:
        """Apply one trade; returns the candles it closed (oldest first)."""
        current = self.current
        if current is None:
            self.current = Candle.first(self.interval, time_ns, price, quantity, at)
            return _UNCHANGED
        if time_ns < current.open_time_ns:
            return _LATE
        if time_ns < current.close_time_ns:
            current.add(time_ns, price, quantity, at)
            return _UNCHANGED
        closed = [current]
        missing = (self.interval.open_time(time_ns) - current.close_time_ns) // self.interval.ns
        gap_reset = missing > self.max_gap
        if not gap_reset:
            for _ in range(missing):
                closed.append(Candle.flat(closed[-1], self.interval))
        self.current = Candle.first(self.interval, time_ns, price, quantity, at)
        return CandleUpdate(tuple(closed), gap_reset=gap_reset)

    def dump(self) -> list[Any] | None:
        return None if self.current is None else self.current.dump()

    def load(self, data: list[Any] | None) -> None:
        self.current = None if data is None else Candle.load(data)
