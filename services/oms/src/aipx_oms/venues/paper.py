"""PaperVenue: fills orders against live market data, in process. The reference ExecutionVenue.

A thin adapter over the shared fill model `aipx.matching` (the backtester runs the same one): it turns OMS
orders into book orders, market data from the MarketDataCache into quotes and trades for the books, and the
books' events into execution reports. The matching rules (market at the touch, limits resting until crossed,
IOC/FOK/post-only, STOP / STOP_LIMIT triggered by trades, price-time priority, consumed liquidity) are
documented in `aipx.matching.book`. DAY orders expire at the end of the UTC day they were created on.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from aipx import matching
from aipx.aio import cancel_and_wait
from aipx.ids import now_ns
from aipx.money import InvalidDecimalError, from_pb
from aipx.v1.market_data_pb2 import MarketDataEnvelope

from aipx_oms.domain.model import ZERO, Liquidity, Order, OrderType, RejectReason
from aipx_oms.settings import OmsSettings
from aipx_oms.venues.base import (
    ExecutionReport,
    FeeRates,
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
_REASONS = {
    matching.RejectCode.NO_MARKET_DATA: RejectReason.NO_MARKET_DATA,
    matching.RejectCode.POST_ONLY_WOULD_CROSS: RejectReason.POST_ONLY_WOULD_CROSS,
    matching.RejectCode.FOK_NOT_FILLABLE: RejectReason.FOK_NOT_FILLABLE,
}


def book_order(
    order: Order, *, triggered: bool = False, fees: matching.FeeSchedule | None = None
) -> matching.RestingOrder:
    """The book's view of an OMS order (what is left of it), charged `fees` (None: the venue's)."""
    return matching.RestingOrder(
        order_id=order.order_id,
        symbol=order.symbol,
        side=matching.Side(order.side.value),
        kind=matching.Kind(order.type.value),
        leaves=order.quantity - order.filled_quantity,
        price=order.price,
        stop_price=order.stop_price,
        time_in_force=matching.TimeInForce(order.time_in_force.value),
        post_only=order.post_only,
        triggered=triggered,
        fees=fees,
    )


class PaperVenue:
    """Simulated venue over a MarketDataCache (see `aipx.matching.book` for the matching rules)."""

    name = "paper"
    reconcile_while_running = False  # its book is in this process: compared with the database at startup

    def __init__(
        self,
        market: MarketDataCache,
        *,
        fee_rate: Decimal = ZERO,
        slippage_bps: Decimal = ZERO,
        fee_currency_of: Callable[[str], str] = lambda symbol: symbol.rsplit("-", 1)[-1],
        clock: Callable[[], int] = now_ns,
        expiry_check_s: float = 1.0,
    ) -> None:
        self.market = market
        self.fee_rate = fee_rate
        self.fee_currency_of = fee_currency_of
        self.clock = clock
        self.expiry_check_s = expiry_check_s
        self.engine = matching.MatchingEngine(
            matching.FeeSchedule(maker_rate=fee_rate, taker_rate=fee_rate, slippage_bps=slippage_bps)
        )
        self._fee_rates: FeeRates | None = None
        # DAY orders per creation day (expiry touches only expired days).
        self._day_orders: dict[int, dict[str, None]] = {}
        self._on_report: ReportHandler | None = None
        self._fill_ids = itertools.count(1)
        self._expiry_task: asyncio.Task[None] | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        market.listeners.append(self._on_market)

    def charge_fees_with(self, rates: FeeRates) -> None:
        """FeeCharging: an order's (maker, taker) rates, or None: the venue's own (paper_fee_rate)."""
        self._fee_rates = rates

    def _fees_of(self, order: Order) -> matching.FeeSchedule | None:
        rates = self._fee_rates(order) if self._fee_rates is not None else None
        if rates is None:
            return None
        return matching.FeeSchedule(rates[0], rates[1], self.engine.fees.slippage_bps)

    @property
    def working(self) -> Mapping[str, matching.RestingOrder]:
        """The orders working at the venue, by order id."""
        return self.engine.orders

    async def start(self, on_report: ReportHandler, room: RoomWaiter = always_room) -> None:
        # In process: its reports are bounded by its working orders, it has no stream to slow down.
        self._on_report = on_report
        self._expiry_task = asyncio.create_task(self._expire_loop(), name="paper-day-expiry")

    async def stop(self) -> None:
        await cancel_and_wait(self._expiry_task, what="paper venue expiry")

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
        if not self._receive(order.order_id):  # the order id is the client order id: never two live orders
            return
        self._track_day(order)
        self._emit(self.engine.submit(book_order(order, fees=self._fees_of(order))))

    async def query(self, order: Order) -> bool:
        """The paper book is in process: it knows an order it received; its reports were already sent."""
        return order.order_id in self._seen or order.order_id in self.engine.orders

    async def cancel(self, order: Order) -> None:
        if self.engine.cancel(order.order_id) is None:
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
        leaves = order.quantity - order.filled_quantity
        self._emit(self.engine.replace(order.order_id, leaves=leaves, price=order.price))

    async def reconcile(self, open_orders: Sequence[Order]) -> list[Order]:
        """The paper book lives in memory: after a restart, re-rest every open order the OMS has (orders this
        process already received are left alone: their reports are on their way)."""
        for order in open_orders:
            if self._receive(order.order_id) and order.order_id not in self.engine.orders:
                waiting = order.type in STOP_TYPES and order.filled_quantity == ZERO
                self._track_day(order)
                self.engine.rest(book_order(order, triggered=not waiting, fees=self._fees_of(order)))
        for symbol in sorted({o.symbol for o in open_orders}):
            self._emit(self.engine.match(symbol))
        return []

    def _track_day(self, order: Order) -> None:
        if order.time_in_force.value == matching.TimeInForce.DAY:
            self._day_orders.setdefault(order.created_time_ns // NS_PER_DAY, {})[order.order_id] = None

    # --- market data and the book's events ------------------------------------------------------------

    def _on_market(self, symbol: str, envelope: MarketDataEnvelope) -> None:
        if envelope.WhichOneof("payload") == "trade":
            try:
                price = from_pb(envelope.trade.price)
                quantity = from_pb(envelope.trade.quantity) or ZERO
            except InvalidDecimalError:
                return  # the cache already logged the bad record
            if price is None:
                return
            self._emit(self.engine.on_trade(symbol, price, quantity))
            return
        touch = self.market.touch(symbol)
        if touch is None:
            return
        self._emit(self.engine.on_quote(symbol, touch.bid, touch.bid_size, touch.ask, touch.ask_size))

    def _emit(self, events: Sequence[matching.Event]) -> None:
        for event in events:
            if isinstance(event, matching.Fill):
                time_ns = self.clock()
                self._report(
                    ExecutionReport(
                        ReportKind.FILL,
                        event.order_id,
                        self.name,
                        venue_order_id=event.order_id,
                        quantity=event.quantity,
                        price=event.price,
                        fee=event.fee,
                        fee_currency=self.fee_currency_of(event.symbol),
                        liquidity=Liquidity(event.liquidity.value),
                        venue_fill_id=f"paper-{next(self._fill_ids)}-{time_ns}",
                        time_ns=time_ns,
                    )
                )
            elif isinstance(event, matching.Rejected):
                self._report(
                    ExecutionReport(
                        ReportKind.REJECTED,
                        event.order_id,
                        self.name,
                        reason=_REASONS[event.code],
                        message=event.message,
                    )
                )
            elif isinstance(event, matching.Expired):
                self._report(
                    ExecutionReport(
                        ReportKind.EXPIRED,
                        event.order_id,
                        self.name,
                        reason=_REASONS[event.code],
                        message=event.message,
                    )
                )
            else:
                self._report(
                    ExecutionReport(ReportKind.CANCELED, event.order_id, self.name, message=event.message)
                )

    # --- DAY expiry -----------------------------------------------------------------------------------

    def expire_day_orders(self, now: int | None = None) -> list[str]:
        """Expire DAY orders created before the current UTC day that still work; returns their ids."""
        today = (self.clock() if now is None else now) // NS_PER_DAY
        candidates = [
            order_id
            for day in sorted(d for d in self._day_orders if d < today)
            for order_id in self._day_orders.pop(day)
        ]
        expired = [order_id for order_id in candidates if self.engine.cancel(order_id) is not None]
        for order_id in expired:
            self._report(
                ExecutionReport(ReportKind.EXPIRED, order_id, self.name, message="DAY order expired")
            )
        return expired

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(self.expiry_check_s)
            self.expire_day_orders()


def _build(settings: OmsSettings, market: MarketDataCache) -> PaperVenue:
    return PaperVenue(market, fee_rate=settings.paper_fee_rate, slippage_bps=settings.paper_slippage_bps)


PLUGIN = VenuePlugin("paper", _build)
