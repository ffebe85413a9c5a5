"""Per-symbol order books in price-time priority, matched against quotes and trades (pure, no I/O).

The rules (the paper venue's, and the backtester's):

- MARKET: fills at the touch (ask for buys, bid for sells), partially when the quoted size is smaller; the
  rest works on (GTC/DAY) and fills on later quotes, or is canceled (IOC). No quote: rejected NO_MARKET_DATA.
- LIMIT: fills at the touch when it crosses on arrival (taker); otherwise rests and fills at its limit price
  when a later quote crosses it or a trade prints through it (maker). Post-only orders that would cross are
  rejected.
- IOC cancels what is not filled at once; FOK fills entirely at once or expires (FOK_NOT_FILLABLE).
- STOP / STOP_LIMIT: wait untriggered until a trade prints at or through the stop price (at or above it for
  buys, at or below for sells; a trade already there when the order arrives triggers it at once), then work
  as a MARKET / LIMIT order that arrives at that moment (IOC and FOK apply then).
- Liquidity taken at a quote is consumed: two orders cannot both take the same quoted size; each new quote
  brings fresh size.

Priority: resting market-priced orders (a MARKET remainder, a triggered STOP) first, in arrival order; then
limits by price (highest bid, lowest ask) and, at one price, by arrival (a replace is a new arrival). Stops
trigger by stop price (lowest buy stop first as the price rises, highest sell stop first as it falls), then by
arrival. Each side is a binary heap with lazy deletion (compacted when dead entries outnumber live ones), so a
market-data message costs O(log n) plus O(log n) per fill, whatever the number of resting orders.

Fees are `quantity x price x rate` (maker rate for resting fills, taker rate for fills on arrival or of
market-priced orders), exact, not rounded: the caller rounds at its own boundary. Slippage, in basis points,
moves every taker fill price against the order (buys up, sells down), exact and not rounded to a tick.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal(0)
BPS = Decimal(10_000)


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class Kind(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    DAY = "DAY"


class Liquidity(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class RejectCode(StrEnum):
    NO_MARKET_DATA = "NO_MARKET_DATA"
    POST_ONLY_WOULD_CROSS = "POST_ONLY_WOULD_CROSS"
    FOK_NOT_FILLABLE = "FOK_NOT_FILLABLE"


STOP_KINDS = frozenset({Kind.STOP, Kind.STOP_LIMIT})
MARKET_PRICED = frozenset({Kind.MARKET, Kind.STOP})  # a triggered STOP trades as a MARKET order


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Fee rates (fractions of notional) and taker slippage in basis points."""

    maker_rate: Decimal = ZERO
    taker_rate: Decimal = ZERO
    slippage_bps: Decimal = ZERO

    def __post_init__(self) -> None:
        for name in ("maker_rate", "taker_rate", "slippage_bps"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ValueError(f"{name} must be a finite Decimal, got {value!r}")
        if self.slippage_bps < ZERO:
            raise ValueError(f"slippage_bps must be >= 0, got {self.slippage_bps}")


@dataclass(slots=True, eq=False)
class RestingOrder:
    """An order in the book. `leaves` is what is left to fill; the engine updates it."""

    order_id: str
    symbol: str
    side: Side
    kind: Kind
    leaves: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    # This order's fee rates (e.g. its instrument's or its account's), else the engine's. Slippage is the
    # engine's.
    fees: FeeSchedule | None = None
    # Engine bookkeeping.
    triggered: bool = field(default=False, repr=False)
    seq: int = field(default=0, repr=False)
    live: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.leaves <= ZERO:
            raise ValueError(f"order {self.order_id}: quantity to fill must be > 0, got {self.leaves}")
        if self.kind in (Kind.LIMIT, Kind.STOP_LIMIT) and (self.price is None or self.price <= ZERO):
            raise ValueError(f"order {self.order_id}: a {self.kind} order needs a price > 0")
        if self.kind in STOP_KINDS and (self.stop_price is None or self.stop_price <= ZERO):
            raise ValueError(f"order {self.order_id}: a {self.kind} order needs a stop price > 0")


@dataclass(frozen=True, slots=True)
class Fill:
    order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    liquidity: Liquidity
    leaves: Decimal  # after this fill; 0 = the order is done and left the book


@dataclass(frozen=True, slots=True)
class Rejected:
    order_id: str
    code: RejectCode
    message: str


@dataclass(frozen=True, slots=True)
class Expired:
    order_id: str
    code: RejectCode
    message: str


@dataclass(frozen=True, slots=True)
class Canceled:
    order_id: str
    message: str


Event = Fill | Rejected | Expired | Canceled
_Entry = tuple[Decimal, int, RestingOrder]


class _Book:
    """One symbol: the touch with what is left of its size, the last trade, and the four sides."""

    __slots__ = (
        "ask",
        "ask_left",
        "asks",
        "bid",
        "bid_left",
        "bids",
        "buy_stops",
        "dead",
        "last_trade",
        "market_buys",
        "market_sells",
        "quoted",
        "sell_stops",
    )

    def __init__(self) -> None:
        self.bid: Decimal | None = None
        self.ask: Decimal | None = None
        self.bid_left = ZERO
        self.ask_left = ZERO
        self.quoted = False
        self.last_trade: Decimal | None = None
        self.bids: list[_Entry] = []  # (-price, seq, order)
        self.asks: list[_Entry] = []  # (price, seq, order)
        self.buy_stops: list[_Entry] = []  # (stop, seq, order)
        self.sell_stops: list[_Entry] = []  # (-stop, seq, order)
        self.market_buys: deque[RestingOrder] = deque()
        self.market_sells: deque[RestingOrder] = deque()
        self.dead = 0

    def entries(self) -> int:
        return (
            len(self.bids)
            + len(self.asks)
            + len(self.buy_stops)
            + len(self.sell_stops)
            + len(self.market_buys)
            + len(self.market_sells)
        )

    def compact(self) -> None:
        """Drop the entries of orders that left the book (linear; amortised over the removals)."""
        for heap in (self.bids, self.asks, self.buy_stops, self.sell_stops):
            heap[:] = [e for e in heap if e[2].live]
            heapq.heapify(heap)
        for queue in (self.market_buys, self.market_sells):
            live = [o for o in queue if o.live]
            queue.clear()
            queue.extend(live)
        self.dead = 0


def _top(heap: list[_Entry]) -> RestingOrder | None:
    """The best live order of a heap (dead entries on top are discarded)."""
    while heap:
        order = heap[0][2]
        if order.live:
            return order
        heapq.heappop(heap)
    return None


def _head(queue: deque[RestingOrder]) -> RestingOrder | None:
    while queue:
        order = queue[0]
        if order.live:
            return order
        queue.popleft()
    return None


class MatchingEngine:
    """The books of every symbol. Each call returns the events it caused, in the order they happened."""

    def __init__(self, fees: FeeSchedule | None = None) -> None:
        self.fees = fees or FeeSchedule()
        self.orders: dict[str, RestingOrder] = {}  # every live order by id
        self._books: dict[str, _Book] = {}
        self._seq = itertools.count(1)
        up = BPS + self.fees.slippage_bps
        down = BPS - self.fees.slippage_bps
        self._slip = {Side.BUY: up / BPS, Side.SELL: down / BPS}

    def _book(self, symbol: str) -> _Book:
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = _Book()
        return book

    def last_trade(self, symbol: str) -> Decimal | None:
        book = self._books.get(symbol)
        return None if book is None else book.last_trade

    # --- orders -----------------------------------------------------------------------------------------

    def submit(self, order: RestingOrder) -> list[Event]:
        """A new order arrives: it takes what it can at the touch, then rests, waits, or ends (IOC/FOK)."""
        if order.order_id in self.orders:
            raise ValueError(f"order {order.order_id} is already in the book")
        events: list[Event] = []
        self._arrive(self._book(order.symbol), order, events)
        return events

    def rest(self, order: RestingOrder) -> None:
        """Put an order in the book without matching it (a restart re-resting known open orders); a STOP that
        has not `triggered` waits for its stop price. Call `match(symbol)` afterwards."""
        if order.order_id in self.orders:
            raise ValueError(f"order {order.order_id} is already in the book")
        self._rest(self._book(order.symbol), order)

    def cancel(self, order_id: str) -> RestingOrder | None:
        """Take an order out of the book; None when it is not there (filled, canceled, unknown)."""
        order = self.orders.pop(order_id, None)
        if order is None:
            return None
        order.live = False
        book = self._books[order.symbol]
        book.dead += 1
        if book.dead > 64 and book.dead * 2 > book.entries():
            book.compact()
        return order

    def replace(self, order_id: str, *, leaves: Decimal, price: Decimal | None) -> list[Event]:
        """New quantity left and/or price for a resting order (it loses its time priority), then match."""
        old = self.cancel(order_id)
        if old is None:
            return []
        new = dataclasses.replace(old, leaves=leaves, price=price, live=False)
        book = self._book(new.symbol)
        self._rest(book, new)
        return self.match(new.symbol)

    # --- market data ------------------------------------------------------------------------------------

    def on_quote(
        self,
        symbol: str,
        bid: Decimal | None,
        bid_size: Decimal,
        ask: Decimal | None,
        ask_size: Decimal,
    ) -> list[Event]:
        """A new touch with fresh size: resting orders that cross it fill."""
        book = self._book(symbol)
        book.bid, book.ask = bid, ask
        book.bid_left = bid_size if bid is not None else ZERO
        book.ask_left = ask_size if ask is not None else ZERO
        book.quoted = True
        return self.match(symbol)

    def on_trade(self, symbol: str, price: Decimal, quantity: Decimal) -> list[Event]:
        """A print: stops it reaches trigger, then resting limits it traded through fill (up to its size)."""
        book = self._book(symbol)
        book.last_trade = price
        events: list[Event] = []
        while (stop := _top(book.buy_stops)) is not None and stop.stop_price <= price:  # type: ignore[operator]
            heapq.heappop(book.buy_stops)
            self._trigger(book, stop, events)
        while (stop := _top(book.sell_stops)) is not None and stop.stop_price >= price:  # type: ignore[operator]
            heapq.heappop(book.sell_stops)
            self._trigger(book, stop, events)
        remaining = quantity
        while remaining > ZERO and (order := _top(book.bids)) is not None and order.price > price:  # type: ignore[operator]
            remaining -= self._fill_resting(book, order, remaining, events)
        while remaining > ZERO and (order := _top(book.asks)) is not None and order.price < price:  # type: ignore[operator]
            remaining -= self._fill_resting(book, order, remaining, events)
        return events

    def match(self, symbol: str) -> list[Event]:
        """Fill resting orders that cross the current touch, in priority order, up to its remaining size."""
        book = self._book(symbol)
        events: list[Event] = []
        if book.ask is not None:
            while book.ask_left > ZERO and (order := _head(book.market_buys)) is not None:
                book.ask_left -= self._take(book, order, book.ask, book.ask_left, events)
            while book.ask_left > ZERO and (order := _top(book.bids)) is not None and order.price >= book.ask:  # type: ignore[operator]
                book.ask_left -= self._fill_resting(book, order, book.ask_left, events)
        if book.bid is not None:
            while book.bid_left > ZERO and (order := _head(book.market_sells)) is not None:
                book.bid_left -= self._take(book, order, book.bid, book.bid_left, events)
            while book.bid_left > ZERO and (order := _top(book.asks)) is not None and order.price <= book.bid:  # type: ignore[operator]
                book.bid_left -= self._fill_resting(book, order, book.bid_left, events)
        return events

    # --- internals --------------------------------------------------------------------------------------

    def _trigger(self, book: _Book, order: RestingOrder, events: list[Event]) -> None:
        del self.orders[order.order_id]
        order.live = False
        fresh = dataclasses.replace(order, triggered=True, live=False)
        self._arrive(book, fresh, events)

    def _arrive(self, book: _Book, order: RestingOrder, events: list[Event]) -> None:
        buy = order.side is Side.BUY
        if order.kind in STOP_KINDS and not order.triggered:
            last = book.last_trade
            reached = last is not None and (
                last >= order.stop_price if buy else last <= order.stop_price  # type: ignore[operator]
            )
            if not reached:
                self._rest(book, order)
                return
            order.triggered = True
        touch = book.ask if buy else book.bid
        market_priced = order.kind in MARKET_PRICED
        if market_priced and (touch is None or not book.quoted):
            events.append(Rejected(order.order_id, RejectCode.NO_MARKET_DATA, f"no quote for {order.symbol}"))
            return
        crosses = touch is not None and (
            market_priced or (touch <= order.price if buy else touch >= order.price)  # type: ignore[operator]
        )
        if order.post_only and crosses:
            events.append(
                Rejected(
                    order.order_id,
                    RejectCode.POST_ONLY_WOULD_CROSS,
                    f"post-only {order.side} at {order.price} would cross {touch}",
                )
            )
            return
        size = book.ask_left if buy else book.bid_left
        available = min(order.leaves, size) if crosses and book.quoted else ZERO
        if order.time_in_force is TimeInForce.FOK and available < order.leaves:
            events.append(
                Expired(
                    order.order_id,
                    RejectCode.FOK_NOT_FILLABLE,
                    f"only {available} of {order.leaves} available at the touch",
                )
            )
            return
        if available > ZERO:
            assert touch is not None
            if buy:
                book.ask_left -= available
            else:
                book.bid_left -= available
            order.leaves -= available
            events.append(self._fill(order, available, self._slipped(order, touch), Liquidity.TAKER))
        if order.leaves == ZERO:
            return
        if order.time_in_force is TimeInForce.IOC:
            events.append(Canceled(order.order_id, f"IOC: {order.leaves} not filled at once"))
            return
        self._rest(book, order)

    def _rest(self, book: _Book, order: RestingOrder) -> None:
        order.seq = next(self._seq)
        order.live = True
        self.orders[order.order_id] = order
        buy = order.side is Side.BUY
        if order.kind in STOP_KINDS and not order.triggered:
            assert order.stop_price is not None
            if buy:
                heapq.heappush(book.buy_stops, (order.stop_price, order.seq, order))
            else:
                heapq.heappush(book.sell_stops, (-order.stop_price, order.seq, order))
        elif order.kind in MARKET_PRICED:
            (book.market_buys if buy else book.market_sells).append(order)
        else:
            assert order.price is not None
            if buy:
                heapq.heappush(book.bids, (-order.price, order.seq, order))
            else:
                heapq.heappush(book.asks, (order.price, order.seq, order))

    def _slipped(self, order: RestingOrder, price: Decimal) -> Decimal:
        """A taker's fill price: the touch moved against it by the slippage, but never past a limit order's
        own price (a limit buy never pays more than its limit, a limit sell never gets less)."""
        if self.fees.slippage_bps == ZERO:
            return price
        slipped = price * self._slip[order.side]
        if order.price is None or order.kind in MARKET_PRICED:
            return slipped
        return min(slipped, order.price) if order.side is Side.BUY else max(slipped, order.price)

    def _fill(self, order: RestingOrder, quantity: Decimal, price: Decimal, liquidity: Liquidity) -> Fill:
        fees = order.fees or self.fees
        rate = fees.maker_rate if liquidity is Liquidity.MAKER else fees.taker_rate
        return Fill(
            order.order_id,
            order.symbol,
            order.side,
            quantity,
            price,
            quantity * price * rate,
            liquidity,
            order.leaves,
        )

    def _done(self, book: _Book, order: RestingOrder) -> None:
        del self.orders[order.order_id]
        order.live = False
        book.dead += 1

    def _take(
        self, book: _Book, order: RestingOrder, touch: Decimal, size: Decimal, events: list[Event]
    ) -> Decimal:
        """A resting market-priced order takes from the touch (taker); returns the quantity."""
        quantity = min(order.leaves, size)
        order.leaves -= quantity
        if order.leaves == ZERO:
            self._done(book, order)
        events.append(self._fill(order, quantity, self._slipped(order, touch), Liquidity.TAKER))
        return quantity

    def _fill_resting(self, book: _Book, order: RestingOrder, size: Decimal, events: list[Event]) -> Decimal:
        """A resting limit fills at its own price (maker); returns the quantity."""
        assert order.price is not None
        quantity = min(order.leaves, size)
        order.leaves -= quantity
        if order.leaves == ZERO:
            self._done(book, order)
        events.append(self._fill(order, quantity, order.price, Liquidity.MAKER))
        return quantity
