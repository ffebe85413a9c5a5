"""The paper venue's book indexes (pure logic, no I/O): matching looks only at the symbol that moved, DAY
expiry only at past days, and canceling or filling an order removes it from every index."""

from __future__ import annotations

from decimal import Decimal

from aipx.money import to_pb
from aipx.v1.market_data_pb2 import MarketDataEnvelope, Trade
from aipx_oms.domain.model import Order, OrderStatus, OrderType, Side, TimeInForce
from aipx_oms.venues.base import ExecutionReport, ReportKind
from aipx_oms.venues.market_data import MarketDataCache
from aipx_oms.venues.paper import NS_PER_DAY, PaperVenue

DAY0 = 20_000 * NS_PER_DAY  # 2024-10-04T00:00Z


def order(
    order_id: str, *, symbol: str = "BTC-USDT", tif: TimeInForce = TimeInForce.GTC, day: int = 0
) -> Order:
    created = DAY0 + day * NS_PER_DAY + 1
    return Order(
        order_id=order_id, account_id="acc", client_order_id=f"c-{order_id}", symbol=symbol, side=Side.BUY,
        type=OrderType.LIMIT, time_in_force=tif, quantity=Decimal("1"), price=Decimal("100"), stop_price=None,
        reduce_only=False, post_only=False, venue="paper", status=OrderStatus.ACCEPTED,
        created_time_ns=created, updated_time_ns=created,
    )  # fmt: skip


def trade(symbol: str, price: str, quantity: str) -> MarketDataEnvelope:
    venue_symbol = symbol.replace("-", "")
    payload = Trade(trade_id="t", price=to_pb(Decimal(price)), quantity=to_pb(Decimal(quantity)))
    return MarketDataEnvelope(venue="paper", symbol=symbol, venue_symbol=venue_symbol, trade=payload)


async def venue(reports: list[ExecutionReport]) -> PaperVenue:
    paper = PaperVenue(MarketDataCache(), clock=lambda: DAY0, expiry_check_s=3600)
    await paper.start(reports.append)
    return paper


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
