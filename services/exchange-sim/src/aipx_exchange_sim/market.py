"""A deterministic random-walk market per symbol: a limit order book, trades against it, candles.

Prices are integer ticks and sizes integer lots (exact; formatted as decimal text on the wire). Everything
random comes from the `random.Random` passed in, so a fixed seed gives the same market every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

TICKS_PER_UNIT = 100  # price tick 0.01
LOTS_PER_UNIT = 1000  # size lot 0.001

_BASE_PRICES = {"BTC": 65_000, "ETH": 3_500, "SOL": 150, "BNB": 580, "XRP": 1}


def _pick(rng: random.Random, low: int, high: int) -> int:
    """A uniform integer in [low, high]: randint's result distribution at a fraction of its cost."""
    return low + int(rng.random() * (high - low + 1))


def price_text(ticks: int) -> str:
    """Ticks -> "123.45"."""
    return f"{ticks // TICKS_PER_UNIT}.{ticks % TICKS_PER_UNIT:02d}"


def size_text(lots: int) -> str:
    """Lots -> "1.234"."""
    return f"{lots // LOTS_PER_UNIT}.{lots % LOTS_PER_UNIT:03d}"


def quote_text(ticks: int, lots: int) -> str:
    """Price x size in quote currency, exact: ticks*lots has 5 decimals."""
    value = ticks * lots
    return f"{value // 100_000}.{value % 100_000:05d}"


@dataclass(slots=True)
class TradeTick:
    trade_id: int
    price: int
    lots: int
    buyer_is_maker: bool
    time_ms: int


@dataclass(slots=True)
class Candle:
    open_ms: int
    open: int
    high: int
    low: int
    close: int
    lots: int = 0
    quote_value: int = 0  # ticks * lots
    trades: int = 0
    first_trade: int = 0
    last_trade: int = 0


@dataclass(slots=True)
class DiffTick:
    """Book changes since the previous diff, covering update ids first..last."""

    first_update_id: int
    last_update_id: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    time_ms: int


@dataclass(slots=True)
class SymbolMarket:
    """The simulated market of one symbol."""

    base: str
    quote: str
    rng: random.Random
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    update_id: int = 1_000_000
    trade_id: int = 5_000_000
    pending_first: int = 0
    pending_bids: dict[int, int] = field(default_factory=dict)
    pending_asks: dict[int, int] = field(default_factory=dict)
    candle: Candle | None = None
    best_bid: int = 0
    best_ask: int = 0

    @classmethod
    def create(cls, base: str, quote: str, rng: random.Random, levels: int = 50) -> SymbolMarket:
        market = cls(base, quote, rng)
        mid = int(_BASE_PRICES.get(base, rng.randint(2, 400)) * TICKS_PER_UNIT * rng.uniform(0.9, 1.1))
        mid = max(mid, 10 * levels)
        for i in range(1, levels + 1):
            market.bids[mid - i] = rng.randint(1, 5_000)
            market.asks[mid + i] = rng.randint(1, 5_000)
        market.best_bid, market.best_ask = mid - 1, mid + 1
        return market

    @property
    def venue_symbol(self) -> str:
        return f"{self.base}{self.quote}"

    def _set(self, side: dict[int, int], pending: dict[int, int], price: int, lots: int) -> None:
        if lots:
            side[price] = lots
        else:
            side.pop(price, None)
        if not self.pending_bids and not self.pending_asks:
            self.pending_first = self.update_id + 1
        self.update_id += 1
        pending[price] = lots
        # Keep the best prices current without scanning the book on every change.
        if side is self.bids:
            if lots and price > self.best_bid:
                self.best_bid = price
            elif not lots and price == self.best_bid:
                self.best_bid = max(side) if side else 0
        elif lots and (price < self.best_ask or not self.best_ask):
            self.best_ask = price
        elif not lots and price == self.best_ask:
            self.best_ask = min(side) if side else 0

    def step_book(self) -> bool:
        """One random book change; True if the best bid/ask changed."""
        before = (self.best_bid, self.best_ask)
        rng = self.rng
        buy = rng.random() < 0.5
        side, pending = (self.bids, self.pending_bids) if buy else (self.asks, self.pending_asks)
        best = self.best_bid if buy else self.best_ask
        roll = rng.random()
        if roll < 0.15 and self.best_ask - self.best_bid > 1:
            price = best + 1 if buy else best - 1  # improve the top: the mid walks
        elif roll < 0.3 and len(side) > 10:
            price = best - _pick(rng, 0, 9) if buy else best + _pick(rng, 0, 9)
            self._set(side, pending, price, 0)
            return (self.best_bid, self.best_ask) != before
        else:
            offset = _pick(rng, 0, 19)
            price = best - offset if buy else best + offset
        if price <= 0:
            return False
        self._set(side, pending, price, _pick(rng, 1, 5_000))
        if len(side) < 5:  # never let a side run dry
            far = (min(side) - 1) if buy else (max(side) + 1)
            if far > 0:
                self._set(side, pending, far, _pick(rng, 1, 5_000))
        return (self.best_bid, self.best_ask) != before

    def step_trade(self, now_ms: int) -> tuple[TradeTick, bool]:
        """One trade against the top of the book; returns it and whether the best bid/ask changed."""
        before = (self.best_bid, self.best_ask)
        rng = self.rng
        taker_buys = rng.random() < 0.5
        side, pending = (self.asks, self.pending_asks) if taker_buys else (self.bids, self.pending_bids)
        price = self.best_ask if taker_buys else self.best_bid
        available = side.get(price, 1)
        lots = min(available, _pick(rng, 1, 800))
        self.trade_id += 1
        left = available - lots
        if left <= 0 and len(side) <= 5:
            left = _pick(rng, 1, 5_000)  # keep the book two-sided
        self._set(side, pending, price, max(left, 0))
        trade = TradeTick(self.trade_id, price, lots, buyer_is_maker=not taker_buys, time_ms=now_ms)
        self._candle_add(trade)
        return trade, (self.best_bid, self.best_ask) != before

    def take_diff(self, now_ms: int) -> DiffTick | None:
        """The accumulated changes as one diff (None if nothing changed), and start a new one."""
        if not self.pending_bids and not self.pending_asks:
            return None
        diff = DiffTick(
            self.pending_first,
            self.update_id,
            sorted(self.pending_bids.items(), reverse=True),
            sorted(self.pending_asks.items()),
            now_ms,
        )
        self.pending_bids = {}
        self.pending_asks = {}
        return diff

    def top(self, limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Best `limit` bids (high to low) and asks (low to high)."""
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return bids, asks

    def _candle_add(self, trade: TradeTick) -> None:
        minute = trade.time_ms - trade.time_ms % 60_000
        c = self.candle
        if c is None or c.open_ms != minute:
            c = self.candle = Candle(minute, trade.price, trade.price, trade.price, trade.price)
            c.first_trade = trade.trade_id
        c.high = max(c.high, trade.price)
        c.low = min(c.low, trade.price)
        c.close = trade.price
        c.lots += trade.lots
        c.quote_value += trade.price * trade.lots
        c.trades += 1
        c.last_trade = trade.trade_id

    def current_candle(self, now_ms: int) -> tuple[Candle, bool]:
        """The current 1m candle (a flat one if nothing traded yet) and whether its minute is over."""
        minute = now_ms - now_ms % 60_000
        c = self.candle
        if c is None:
            mid = (self.best_bid + self.best_ask) // 2
            c = self.candle = Candle(minute, mid, mid, mid, mid)
        closed = c.open_ms < minute
        if closed:
            finished = c
            self.candle = Candle(minute, c.close, c.close, c.close, c.close)
            return finished, True
        return c, False
