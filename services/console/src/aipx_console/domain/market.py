"""MarketBoard: last price, candles and message age per (venue, symbol), built from market data events."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from aipx.money import format_decimal

NS = 1_000_000_000


@dataclass(slots=True)
class Candle:
    """One OHLCV bar of trades in [open_time_ns, open_time_ns + interval)."""

    open_time_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)
    trades: int = 0

    def add(self, price: Decimal, quantity: Decimal) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += quantity
        self.trades += 1

    def view(self) -> list[object]:
        """[open time ms, open, high, low, close, volume]: the chart's compact row."""
        return [
            self.open_time_ns // 1_000_000,
            format_decimal(self.open),
            format_decimal(self.high),
            format_decimal(self.low),
            format_decimal(self.close),
            format_decimal(self.volume),
        ]


@dataclass(slots=True)
class Instrument:
    """What the board knows of one instrument on one venue."""

    venue: str
    symbol: str
    last_price: Decimal | None = None
    last_quantity: Decimal | None = None
    first_price: Decimal | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None
    trades: int = 0
    messages: int = 0
    gaps: int = 0
    last_event_ns: int = 0
    last_seen_ns: int = 0
    candles: deque[Candle] = field(default_factory=deque)

    @property
    def key(self) -> str:
        return f"{self.venue}:{self.symbol}"

    def change_pct(self) -> Decimal | None:
        """Change since the first trade the console saw, in percent, rounded half-even to 2 places."""
        if self.last_price is None or not self.first_price:
            return None
        return ((self.last_price - self.first_price) * 100 / self.first_price).quantize(Decimal("0.01"))

    def view(self, now_ns: int, stale_after_s: float, *, full: bool) -> dict[str, object]:
        """The page's row; `full` carries every candle, otherwise only the current one (a delta)."""
        age_s = (now_ns - self.last_seen_ns) / NS if self.last_seen_ns else None
        change = self.change_pct()
        return {
            "key": self.key,
            "venue": self.venue,
            "symbol": self.symbol,
            "last": _fmt(self.last_price),
            "qty": _fmt(self.last_quantity),
            "bid": _fmt(self.bid),
            "ask": _fmt(self.ask),
            "change_pct": None if change is None else format_decimal(change),
            "trades": self.trades,
            "messages": self.messages,
            "gaps": self.gaps,
            "age_s": None if age_s is None else round(age_s, 1),
            "stale": age_s is None or age_s > stale_after_s,
            **(
                {"candles": [c.view() for c in self.candles]}
                if full
                else {"candle": self.candles[-1].view() if self.candles else None}
            ),
        }


def _fmt(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


class MarketBoard:
    """Every instrument seen, with a bounded candle history; remembers which ones changed since last asked."""

    def __init__(self, candle_interval_s: int = 5, max_candles: int = 120) -> None:
        self.interval_ns = candle_interval_s * NS
        self.max_candles = max_candles
        self.instruments: dict[str, Instrument] = {}
        self._dirty: set[str] = set()

    def _get(self, venue: str, symbol: str) -> Instrument:
        key = f"{venue}:{symbol}"
        found = self.instruments.get(key)
        if found is None:
            found = self.instruments[key] = Instrument(venue, symbol)
        return found

    def _touch(self, inst: Instrument, event_ns: int, seen_ns: int) -> None:
        inst.messages += 1
        inst.last_event_ns = max(inst.last_event_ns, event_ns)
        inst.last_seen_ns = seen_ns
        self._dirty.add(inst.key)

    def on_trade(
        self, venue: str, symbol: str, price: Decimal, quantity: Decimal, *, event_ns: int, seen_ns: int
    ) -> None:
        """A trade: last price, and the candle of its event time (late trades update their own candle)."""
        inst = self._get(venue, symbol)
        self._touch(inst, event_ns, seen_ns)
        inst.trades += 1
        if event_ns >= inst.last_event_ns or inst.last_price is None:
            inst.last_price, inst.last_quantity = price, quantity
        if inst.first_price is None:
            inst.first_price = price
        open_ns = event_ns - event_ns % self.interval_ns
        candles = inst.candles
        if candles and candles[-1].open_time_ns == open_ns:
            candles[-1].add(price, quantity)
            return
        if candles and open_ns < candles[-1].open_time_ns:
            for candle in candles:
                if candle.open_time_ns == open_ns:
                    candle.add(price, quantity)
                    return
            return  # older than the history kept or between bars already closed: the last price still counts
        candles.append(Candle(open_ns, price, price, price, price, quantity, 1))
        while len(candles) > self.max_candles:
            candles.popleft()

    def on_quote(
        self,
        venue: str,
        symbol: str,
        bid: Decimal | None,
        ask: Decimal | None,
        *,
        event_ns: int,
        seen_ns: int,
    ) -> None:
        inst = self._get(venue, symbol)
        self._touch(inst, event_ns, seen_ns)
        inst.bid, inst.ask = bid, ask

    def on_other(self, venue: str, symbol: str, event_ns: int, seen_ns: int) -> None:
        """Any other market data event (book update, candle): counts as a message, keeps the feed fresh."""
        self._touch(self._get(venue, symbol), event_ns, seen_ns)

    def on_gap(self, venue: str, symbol: str, event_ns: int, seen_ns: int) -> None:
        inst = self._get(venue, symbol)
        self._touch(inst, event_ns, seen_ns)
        inst.gaps += 1

    def last_price(self, symbol: str) -> Decimal | None:
        """The most recent trade price of `symbol` on any venue (for marking positions)."""
        best: Instrument | None = None
        for inst in self.instruments.values():
            if (
                inst.symbol == symbol
                and inst.last_price is not None
                and (best is None or inst.last_event_ns > best.last_event_ns)
            ):
                best = inst
        return None if best is None else best.last_price

    def take_dirty(self) -> set[str]:
        dirty, self._dirty = self._dirty, set()
        return dirty

    def views(self, keys: set[str] | None, now_ns: int, stale_after_s: float) -> list[dict[str, object]]:
        """Views of `keys` with their current candle, or of every instrument with every candle (None)."""
        if keys is None:
            return [
                self.instruments[k].view(now_ns, stale_after_s, full=True) for k in sorted(self.instruments)
            ]
        return [self.instruments[k].view(now_ns, stale_after_s, full=False) for k in sorted(keys)]
