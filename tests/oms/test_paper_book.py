"""The paper venue's book (pure logic, no I/O): matching looks only at the symbol that moved, DAY expiry only
at past days, canceling or filling an order removes it from every index, and STOP / STOP_LIMIT orders wait
for a trade at their stop price."""

from __future__ import annotations

from decimal import Decimal

from aipx.money import to_pb
from aipx.v1.market_data_pb2 import MarketDataEnvelope, Quote, Trade
from aipx_oms.domain.model import Liquidity, Order, OrderStatus, OrderType, Side, TimeInForce
from aipx_oms.venues.base import ExecutionReport, ReportKind
from aipx_oms.venues.market_data import MarketDataCache
from aipx_oms.venues.paper import NS_PER_DAY, PaperVenue

DAY0 = 20_000 * NS_PER_DAY  # 2024-10-04T00:00Z


def order(
    order_id: str,
    *,
    symbol: str = "BTC-USDT",
    tif: TimeInForce = TimeInForce.GTC,
    day: int = 0,
    side: Side = Side.BUY,
    type: OrderType = OrderType.LIMIT,
    price: str | None = "100",
    stop: str | None = None,
) -> Order:
    created = DAY0 + day * NS_PER_DAY + 1
    return Order(
        order_id=order_id, account_id="acc", client_order_id=f"c-{order_id}", symbol=symbol, side=side,
        type=type, time_in_force=tif, quantity=Decimal("1"), price=None if price is None else Decimal(price),
        stop_price=None if stop is None else Decimal(stop), reduce_only=False, post_only=False, venue="paper",
        status=OrderStatus.ACCEPTED, created_time_ns=created, updated_time_ns=created,
    )  # fmt: skip


def trade(symbol: str, price: str, quantity: str) -> MarketDataEnvelope:
    venue_symbol = symbol.replace("-", "")
    payload = Trade(trade_id="t", price=to_pb(Decimal(price)), quantity=to_pb(Decimal(quantity)))
    return MarketDataEnvelope(venue="paper", symbol=symbol, venue_symbol=venue_symbol, trade=payload)


def quote(symbol: str, bid: str, ask: str, size: str = "10") -> MarketDataEnvelope:
    bid_pb, ask_pb, size_pb = to_pb(Decimal(bid)), to_pb(Decimal(ask)), to_pb(Decimal(size))
    payload = Quote(bid_price=bid_pb, ask_price=ask_pb, bid_size=size_pb, ask_size=size_pb)
    return MarketDataEnvelope(venue="paper", symbol=symbol, quote=payload)


async def venue(reports: list[ExecutionReport], market: MarketDataCache | None = None) -> PaperVenue:
    paper = PaperVenue(market or MarketDataCache(), clock=lambda: DAY0, expiry_check_s=3600)
    await paper.start(reports.append)
    return paper


def fills(reports: list[ExecutionReport]) -> list[tuple[str, Decimal | None, Liquidity | None]]:
    return [(r.order_id, r.price, r.liquidity) for r in reports if r.kind is ReportKind.FILL]


async def test_day_orders_expire_by_creation_day_and_only_once() -> None:
    reports: list[ExecutionReport] = []
    paper = await venue(reports)
    await paper.reconcile([
        order("d0", tif=TimeInForce.DAY), order("g0"), order("d1", tif=TimeInForce.DAY, day=1),
        order("d0b", tif=TimeInForce.DAY),
    ])  # fmt: skip
    assert paper.expire_day_orders(DAY0 + 5) == []
    assert paper.expire_day_orders(DAY0 + NS_PER_DAY) == ["d0", "d0b"]
    assert paper.expire_day_orders(DAY0 + NS_PER_DAY) == [], "expired once"
    assert paper.expire_day_orders(DAY0 + 9 * NS_PER_DAY) == ["d1"]
    assert set(paper.working) == {"g0"}, "GTC orders never expire"
    assert [(r.kind, r.order_id) for r in reports] == [
        (ReportKind.EXPIRED, "d0"), (ReportKind.EXPIRED, "d0b"), (ReportKind.EXPIRED, "d1"),
    ]  # fmt: skip
    await paper.stop()


async def test_canceled_and_filled_orders_leave_every_index() -> None:
    reports: list[ExecutionReport] = []
    paper = await venue(reports)
    await paper.reconcile([
        order("b1", tif=TimeInForce.DAY), order("b2", tif=TimeInForce.DAY), order("e1", symbol="ETH-USDT"),
    ])  # fmt: skip
    await paper.cancel(order("b1"))
    assert paper.expire_day_orders(DAY0 + NS_PER_DAY) == ["b2"], "the canceled DAY order is not expired"

    await paper.reconcile([order("b3")])
    # A BTC trade through the limit fills the BTC order and leaves the ETH order alone.
    paper._on_market("BTC-USDT", trade("BTC-USDT", "99", "5"))
    assert set(paper.working) == {"e1"}
    assert [r.order_id for r in reports if r.kind is ReportKind.FILL] == ["b3"]
    paper._on_market("BTC-USDT", trade("BTC-USDT", "98", "5"))
    assert [r.order_id for r in reports if r.kind is ReportKind.FILL] == ["b3"], "a filled order is gone"
    await paper.stop()


async def test_stop_orders_wait_for_a_trade_at_their_stop_price_then_trade() -> None:
    reports: list[ExecutionReport] = []
    market = MarketDataCache()
    paper = await venue(reports, market)
    market.apply(quote("BTC-USDT", "99", "101"))
    market.apply(trade("BTC-USDT", "100", "1"))
    await paper.submit(order("buy-stop", type=OrderType.STOP, price=None, stop="105"))
    await paper.submit(
        order("sell-stop-limit", side=Side.SELL, type=OrderType.STOP_LIMIT, price="94", stop="95")
    )
    market.apply(trade("BTC-USDT", "104", "1"))
    market.apply(trade("BTC-USDT", "96", "1"))
    assert reports == [], "no stop reached yet"
    assert set(paper.working) == {"buy-stop", "sell-stop-limit"}

    # The buy stop is reached from below: it trades as a MARKET order, at the ask.
    market.apply(trade("BTC-USDT", "105", "1"))
    assert fills(reports) == [("buy-stop", Decimal("101"), Liquidity.TAKER)]

    # The sell stop-limit is reached from above: a LIMIT sell at 94 arrives; the bid (93) does not reach it,
    # so it rests, and the 95 print through its price fills it there.
    market.apply(quote("BTC-USDT", "93", "97"))
    market.apply(trade("BTC-USDT", "95", "1"))
    assert fills(reports)[1:] == [("sell-stop-limit", Decimal("94"), Liquidity.MAKER)]
    assert paper.working == {}
    await paper.stop()


async def test_a_stop_already_reached_triggers_on_arrival_and_untriggered_ones_cancel_and_expire() -> None:
    reports: list[ExecutionReport] = []
    market = MarketDataCache()
    paper = await venue(reports, market)
    market.apply(quote("BTC-USDT", "99", "101"))
    market.apply(trade("BTC-USDT", "100", "1"))
    await paper.submit(order("late", type=OrderType.STOP, price=None, stop="90"))  # 100 >= 90: at once
    assert fills(reports) == [("late", Decimal("101"), Liquidity.TAKER)]

    await paper.submit(order("cancel-me", type=OrderType.STOP, price=None, stop="110"))
    await paper.submit(order("day", type=OrderType.STOP, price=None, stop="120", tif=TimeInForce.DAY))
    await paper.cancel(order("cancel-me"))
    assert paper.expire_day_orders(DAY0 + NS_PER_DAY) == ["day"]
    market.apply(trade("BTC-USDT", "130", "1"))
    assert [(r.kind, r.order_id) for r in reports[1:]] == [
        (ReportKind.CANCELED, "cancel-me"), (ReportKind.EXPIRED, "day"),
    ], "a canceled or expired stop never triggers"  # fmt: skip

    # After a restart, an open stop order that never filled waits for its trigger again.
    await paper.reconcile([order("again", side=Side.SELL, type=OrderType.STOP, price=None, stop="80")])
    market.apply(trade("BTC-USDT", "81", "1"))
    assert "again" in paper.working
    market.apply(trade("BTC-USDT", "80", "1"))
    assert fills(reports)[-1] == ("again", Decimal("99"), Liquidity.TAKER)
    await paper.stop()


async def test_a_better_priced_resting_order_fills_first_and_equal_prices_by_time() -> None:
    reports: list[ExecutionReport] = []
    market = MarketDataCache()
    paper = await venue(reports, market)
    market.apply(quote("BTC-USDT", "90", "110"))
    # Placed worst first: 100 (t1), 102 (t2), 101 (t3), 102 (t4).
    for oid, price in (("b100", "100"), ("b102-first", "102"), ("b101", "101"), ("b102-second", "102")):
        await paper.submit(order(oid, price=price))
    assert fills(reports) == []
    # An ask at 100 with size 2.5: the two 102s by time, then half of the 101; the 100 waits.
    market.apply(quote("BTC-USDT", "90", "100", "2.5"))
    assert [(r.order_id, r.quantity, r.price) for r in reports if r.kind is ReportKind.FILL] == [
        ("b102-first", Decimal("1"), Decimal("102")),
        ("b102-second", Decimal("1"), Decimal("102")),
        ("b101", Decimal("0.5"), Decimal("101")),
    ]
    # A sell print at 99.5 for 1: the rest of the 101, then the 100 (price-time again, trade through).
    market.apply(trade("BTC-USDT", "99.5", "1"))
    assert [(r.order_id, r.quantity) for r in reports if r.kind is ReportKind.FILL][3:] == [
        ("b101", Decimal("0.5")),
        ("b100", Decimal("0.5")),
    ]
    assert set(paper.working) == {"b100"}
    await paper.stop()


async def test_sell_side_priority_and_stops_trigger_by_stop_price() -> None:
    reports: list[ExecutionReport] = []
    market = MarketDataCache()
    paper = await venue(reports, market)
    market.apply(quote("BTC-USDT", "90", "110"))
    market.apply(trade("BTC-USDT", "100", "1"))
    await paper.submit(order("s120", side=Side.SELL, price="120"))
    await paper.submit(order("s103", side=Side.SELL, price="103"))
    market.apply(quote("BTC-USDT", "104", "111", "1"))
    assert fills(reports) == [("s103", Decimal("103"), Liquidity.MAKER)], "the lower ask first"
    # Two buy stops placed high first: a trade at 107 reaches both; the lower stop price triggers first.
    await paper.submit(order("stop-106", type=OrderType.STOP, price=None, stop="106"))
    await paper.submit(order("stop-104", type=OrderType.STOP, price=None, stop="104"))
    market.apply(quote("BTC-USDT", "100", "110", "1.5"))
    market.apply(trade("BTC-USDT", "107", "1"))
    assert [(r.order_id, r.quantity) for r in reports if r.kind is ReportKind.FILL][1:] == [
        ("stop-104", Decimal("1")),
        ("stop-106", Decimal("0.5")),
    ], "stops by trigger price; the second takes what is left of the ask"
    await paper.stop()


async def test_many_canceled_orders_leave_the_book_consistent() -> None:
    reports: list[ExecutionReport] = []
    market = MarketDataCache()
    paper = await venue(reports, market)
    market.apply(quote("BTC-USDT", "50", "150"))
    for i in range(500):
        await paper.submit(order(f"o{i}", price=str(60 + i % 30)))
    for i in range(0, 500, 2):
        await paper.cancel(order(f"o{i}"))
    assert len(paper.working) == 250
    market.apply(quote("BTC-USDT", "50", "89", "1000"))
    filled = [r.order_id for r in reports if r.kind is ReportKind.FILL]
    assert len(filled) == len(set(filled)) and all(int(o[1:]) % 2 == 1 for o in filled)
    assert {int(o[1:]) % 30 for o in filled} == {29}, "only the orders at 89 cross"
