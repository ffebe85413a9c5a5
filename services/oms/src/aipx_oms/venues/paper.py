"""PaperVenue: fills orders against live market data, in process. The reference ExecutionVenue.

- MARKET: fills at the touch (ask for buys, bid for sells), partially when the quoted size is smaller; the
  rest works on (GTC/DAY) and fills on later quotes, or is canceled (IOC). No quote: rejected NO_MARKET_DATA.
- LIMIT: fills at the touch when it crosses on arrival (taker); otherwise rests and fills at its limit price
  when a later quote crosses it or a trade prints through it (maker). Post-only orders that would cross are
  rejected.
- IOC cancels what is not filled at once; FOK fills entirely at once or expires (FOK_NOT_FILLABLE).
- STOP / STOP_LIMIT: wait untriggered until a trade prints at or through the stop price (at or above it for
  buys, at or below for sells; a trade already there when the order arrives triggers it at once), then work
  as a MARKET / LIMIT order that arrives at that moment (IOC and FOK apply then).
- DAY orders expire at the end of the UTC day they were created on.
Liquidity taken at a quote is consumed: two orders cannot both take the same quoted size.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from aipx.ids import now_ns
from aipx.money import InvalidDecimalError, from_pb
from aipx.v1.market_data_pb2 import MarketDataEnvelope

from aipx_oms.domain.model import ZERO, Liquidity, Order, OrderType, RejectReason, Side, TimeInForce
from aipx_oms.settings import OmsSettings
from aipx_oms.venues.base import (
    ExecutionReport,
    ReportHandler,
    ReportKind,
    RoomWaiter,
    VenuePlugin,
    always_room,
)
from aipx_oms.venues.market_data import MarketDataCache

NS_PER_DAY = 86_400 * 1_000_000_000
# Orders the paper venue has received, newest last: a query or a reconciliation must not send an order again
# that the venue already filled while its reports are still on their way. Bounded; oldest forgotten first.
SEEN_MAX = 200_000
STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})
MARKET_PRICED = frozenset({OrderType.MARKET, OrderType.STOP})  # a triggered STOP trades as a MARKET order


@dataclass(slots=True)
class _Working:
    order: Order
    leaves: Decimal


@dataclass(slots=True)
class _Liquidity:
    """What is left to take at the current touch (reset by each new quote)."""

    version: int
    bid: Decimal
    ask: Decimal


class PaperVenue:
    """Simulated venue over a MarketDataCache (see the module docstring for the matching rules)."""

    name = "paper"
    reconcile_while_running = False  # its book is in this process: compared with the database at startup

    def __init__(
        self,
        market: MarketDataCache,
        *,
        fee_rate: Decimal = ZERO,
        fee_currency_of: Callable[[str], str] = lambda symbol: symbol.rsplit("-", 1)[-1],
        clock: Callable[[], int] = now_ns,
        expiry_check_s: float = 1.0,
    ) -> None:
        self.market = market
        self.fee_rate = fee_rate
        self.fee_currency_of = fee_currency_of
        self.clock = clock
        self.expiry_check_s = expiry_check_s
        # Working orders by id, and two indexes over them: per symbol (matching scans only the symbol that
        # moved, in arrival order) and per creation day for DAY orders (expiry touches only expired days).
        self.working: dict[str, _Working] = {}
        self._by_symbol: dict[str, dict[str, _Working]] = {}
        self._stops: dict[str, dict[str, _Working]] = {}  # untriggered STOP / STOP_LIMIT orders per symbol
        self._day_orders: dict[int, dict[str, None]] = {}
        self._liquidity: dict[str, _Liquidity] = {}
        self._on_report: ReportHandler | None = None
        self._fill_ids = itertools.count(1)
        self._expiry_task: asyncio.Task[None] | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        market.listeners.append(self._on_market)

    async def start(self, on_report: ReportHandler, room: RoomWaiter = always_room) -> None:
        # In process: its reports are bounded by its working orders, it has no stream to slow down.
        self._on_report = on_report
        self._expiry_task = asyncio.create_task(self._expire_loop(), name="paper-day-expiry")

    async def stop(self) -> None:
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry_task

    def _report(self, report: ExecutionReport) -> None:
        if self._on_report is not None:
            self._on_report(report)

    def _receive(self, order_id: str) -> bool:
        """Remember an order as received; False when it was received before (a resend is a no-op)."""
        if order_id in self._seen:
            return False
        self._seen[order_id] = None
        if len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        return True

    async def submit(self, order: Order) -> None:
        if self._receive(order.order_id):  # the order id is the client order id: never two live orders
            self._arrive(order)

    async def query(self, order: Order) -> bool:
        """The paper book is in process: it knows an order it received; its reports were already sent."""
        return order.order_id in self._seen or order.order_id in self.working

    async def cancel(self, order: Order) -> None:
        working = self._remove(order.order_id)
        if working is None:
            self._report(
                ExecutionReport(
                    ReportKind.CANCEL_REJECTED,
                    order.order_id,
                    self.name,
                    reason=RejectReason.ORDER_NOT_OPEN,
                    message="order is not working at the paper venue",
                )
            )
            return
        self._report(ExecutionReport(ReportKind.CANCELED, order.order_id, self.name))

    async def replace(self, order: Order) -> None:
        working = self.working.get(order.order_id)
        if working is None:
            return
        working.order = order
        working.leaves = order.quantity - order.filled_quantity
        self._match_resting(order.symbol)

    async def reconcile(self, open_orders: Sequence[Order]) -> list[Order]:
        """The paper book lives in memory: after a restart, re-rest every open order the OMS has (orders this
        process already received are left alone: their reports are on their way)."""
        for order in open_orders:
            if self._receive(order.order_id):
                waiting = order.type in STOP_TYPES and order.filled_quantity == ZERO
                self._rest(_Working(order, order.quantity - order.filled_quantity), triggered=not waiting)
        for symbol in {o.symbol for o in open_orders}:
            self._match_resting(symbol)
        return []

    # --- matching -------------------------------------------------------------------------------------

    def _available(self, symbol: str) -> _Liquidity | None:
        touch = self.market.touch(symbol)
        if touch is None or touch.version == 0:
            return None
        current = self._liquidity.get(symbol)
        if current is None or current.version != touch.version:
            current = _Liquidity(touch.version, touch.bid_size, touch.ask_size)
            self._liquidity[symbol] = current
        return current

    def _touch_price(self, symbol: str, side: Side) -> Decimal | None:
        touch = self.market.touch(symbol)
        if touch is None:
            return None
        return touch.ask if side is Side.BUY else touch.bid

    def _crosses(self, order: Order, touch_price: Decimal) -> bool:
        if order.type in MARKET_PRICED:
            return True
        assert order.price is not None
        return touch_price <= order.price if order.side is Side.BUY else touch_price >= order.price

    def _take(self, order: Order, wanted: Decimal) -> tuple[Decimal, Decimal | None]:
        """(quantity available at the touch for this order, price); consumes nothing."""
        price = self._touch_price(order.symbol, order.side)
        liquidity = self._available(order.symbol)
        if price is None or liquidity is None or not self._crosses(order, price):
            return ZERO, price
        size = liquidity.ask if order.side is Side.BUY else liquidity.bid
        return min(wanted, size), price

    def _consume(self, order: Order, quantity: Decimal) -> None:
        liquidity = self._liquidity[order.symbol]
        if order.side is Side.BUY:
            liquidity.ask -= quantity
        else:
            liquidity.bid -= quantity

    def _fill(self, order: Order, quantity: Decimal, price: Decimal, liquidity: Liquidity) -> None:
        fee = quantity * price * self.fee_rate
        self._report(
            ExecutionReport(
                ReportKind.FILL,
                order.order_id,
                self.name,
                venue_order_id=order.order_id,
                quantity=quantity,
                price=price,
                fee=fee,
                fee_currency=self.fee_currency_of(order.symbol),
                liquidity=liquidity,
                venue_fill_id=f"paper-{next(self._fill_ids)}-{self.clock()}",
                time_ns=self.clock(),
            )
        )

    def _stop_reached(self, order: Order, trade_price: Decimal | None) -> bool:
        assert order.stop_price is not None
        if trade_price is None:
            return False
        return trade_price >= order.stop_price if order.side is Side.BUY else trade_price <= order.stop_price

    def _arrive(self, order: Order, *, triggered: bool = False) -> None:
        leaves = order.quantity - order.filled_quantity
        if order.type in STOP_TYPES and not triggered:
            last_trade = self.market.snapshot(order.symbol).last_trade
            if not self._stop_reached(order, last_trade):
                self._rest(_Working(order, leaves), triggered=False)
                return
        touch_price = self._touch_price(order.symbol, order.side)
        if order.type in MARKET_PRICED and (touch_price is None or self._available(order.symbol) is None):
            self._report(
                ExecutionReport(
                    ReportKind.REJECTED,
                    order.order_id,
                    self.name,
                    reason=RejectReason.NO_MARKET_DATA,
                    message=f"no quote for {order.symbol}",
                )
            )
            return
        available, price = self._take(order, leaves)
        if order.post_only and touch_price is not None and self._crosses(order, touch_price):
            self._report(
                ExecutionReport(
                    ReportKind.REJECTED,
                    order.order_id,
                    self.name,
                    reason=RejectReason.POST_ONLY_WOULD_CROSS,
                    message=f"post-only {order.side} at {order.price} would cross {price}",
                )
            )
            return
        if order.time_in_force is TimeInForce.FOK and available < leaves:
            self._report(
                ExecutionReport(
                    ReportKind.EXPIRED,
                    order.order_id,
                    self.name,
                    reason=RejectReason.FOK_NOT_FILLABLE,
                    message=f"only {available} of {leaves} available at the touch",
                )
            )
            return
        if available > ZERO:
            assert price is not None
            self._consume(order, available)
            self._fill(order, available, price, Liquidity.TAKER)
            leaves -= available
        if leaves == ZERO:
            return
        if order.time_in_force is TimeInForce.IOC:
            self._report(
                ExecutionReport(
                    ReportKind.CANCELED,
                    order.order_id,
                    self.name,
                    message=f"IOC: {leaves} not filled at once",
                )
            )
            return
        self._rest(_Working(order, leaves))

    def _rest(self, working: _Working, *, triggered: bool = True) -> None:
        order = working.order
        self.working[order.order_id] = working
        index = self._by_symbol if triggered else self._stops
        index.setdefault(order.symbol, {})[order.order_id] = working
        if order.time_in_force is TimeInForce.DAY:
            self._day_orders.setdefault(order.created_time_ns // NS_PER_DAY, {})[order.order_id] = None

    def _remove(self, order_id: str) -> _Working | None:
        working = self.working.pop(order_id, None)
        if working is not None:
            order = working.order
            for index in (self._by_symbol, self._stops):
                symbol_orders = index.get(order.symbol)
                if symbol_orders is None or order_id not in symbol_orders:
                    continue
                del symbol_orders[order_id]
                if not symbol_orders:
                    del index[order.symbol]
            day = self._day_orders.get(order.created_time_ns // NS_PER_DAY)
            if day is not None:
                day.pop(order_id, None)
        return working

    def _on_market(self, symbol: str, envelope: MarketDataEnvelope) -> None:
        kind = envelope.WhichOneof("payload")
        if kind == "trade":
            try:
                trade_price = from_pb(envelope.trade.price)
            except InvalidDecimalError:
                return  # the cache already logged the bad record
            if trade_price is None:
                return
            self._trigger_stops(symbol, trade_price)
            self._match_trade(symbol, trade_price, envelope)
        else:
            self._match_resting(symbol)

    def _match_resting(self, symbol: str) -> None:
        for order_id, working in list(self._by_symbol.get(symbol, {}).items()):
            order = working.order
            available, touch_price = self._take(order, working.leaves)
            if available <= ZERO or touch_price is None:
                continue
            self._consume(order, available)
            if order.type in MARKET_PRICED:
                price, liquidity = touch_price, Liquidity.TAKER
            else:
                assert order.price is not None
                price, liquidity = order.price, Liquidity.MAKER
            working.leaves -= available
            if working.leaves == ZERO:
                self._remove(order_id)
            self._fill(order, available, price, liquidity)

    def _trigger_stops(self, symbol: str, trade_price: Decimal) -> None:
        """Stop orders whose stop price this trade reached arrive now, in the order they were placed."""
        waiting = self._stops.get(symbol)
        if not waiting:
            return
        for order_id, working in list(waiting.items()):
            if self._stop_reached(working.order, trade_price):
                self._remove(order_id)
                self._arrive(working.order, triggered=True)

    def _match_trade(self, symbol: str, trade_price: Decimal, envelope: MarketDataEnvelope) -> None:
        try:
            remaining = from_pb(envelope.trade.quantity) or ZERO
        except InvalidDecimalError:
            return  # the cache already logged the bad record
        for order_id, working in list(self._by_symbol.get(symbol, {}).items()):
            order = working.order
            if remaining <= ZERO:
                break
            if order.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
                continue
            assert order.price is not None
            through = trade_price < order.price if order.side is Side.BUY else trade_price > order.price
            if not through:
                continue
            quantity = min(working.leaves, remaining)
            remaining -= quantity
            working.leaves -= quantity
            if working.leaves == ZERO:
                self._remove(order_id)
            self._fill(order, quantity, order.price, Liquidity.MAKER)

    # --- DAY expiry -----------------------------------------------------------------------------------

    def expire_day_orders(self, now: int | None = None) -> list[str]:
        """Expire DAY orders created before the current UTC day; returns their ids."""
        today = (self.clock() if now is None else now) // NS_PER_DAY
        expired = [
            order_id
            for day in sorted(d for d in self._day_orders if d < today)
            for order_id in self._day_orders.pop(day)
        ]
        for order_id in expired:
            self._remove(order_id)
            self._report(
                ExecutionReport(ReportKind.EXPIRED, order_id, self.name, message="DAY order expired")
            )
        return expired

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(self.expiry_check_s)
            self.expire_day_orders()


def _build(settings: OmsSettings, market: MarketDataCache) -> PaperVenue:
    return PaperVenue(market, fee_rate=settings.paper_fee_rate)


PLUGIN = VenuePlugin("paper", _build)
