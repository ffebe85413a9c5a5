"""The paper venue against market data from Kafka: market orders at the touch (partial when the quote is
smaller), resting limits filled when crossed, IOC/FOK/post-only, DAY expiry, positions and realized PnL,
STOP / STOP_LIMIT orders triggered by trades."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aipx.clients.oms import OmsClient
from aipx.ids import now_ns
from aipx.v1 import common_pb2, orders_pb2
from aipx_oms.venues.paper import NS_PER_DAY, PaperVenue

from tests.oms.conftest import OmsEnv, eventually
from tests.oms.helpers import publish_market, quote, trade

pytestmark = pytest.mark.integration
BUY, SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL
MARKET, LIMIT = orders_pb2.ORDER_TYPE_MARKET, orders_pb2.ORDER_TYPE_LIMIT
S = orders_pb2


async def wait_status(client: OmsClient, order_id: str, status: int, what: str) -> orders_pb2.Order:
    holder: list[orders_pb2.Order] = []

    async def reached() -> bool:
        order = await client.get(order_id=order_id)
        holder[:] = [order]
        return bool(order.status == status)

    await eventually(reached, what=what)
    return holder[0]


async def test_paper_fills_partial_resting_and_positions(oms: OmsEnv) -> None:
    assert oms.app is not None
    market = oms.app.market
    await publish_market(oms.kafka, oms.market_topic, [quote("BTC-USDT", "49990", "1", "50010", "0.3")])

    async def quoted() -> bool:
        touch = market.touch("BTC-USDT")
        return touch is not None and touch.ask == Decimal("50010")

    await eventually(quoted, what="the quote consumed from Kafka")
    async with oms.client() as c:
        mkt = (await c.submit("BTC-USDT", BUY, "0.5", order_type=MARKET, client_order_id="m1")).order
        partial = await wait_status(
            c, mkt.order_id, S.ORDER_STATUS_PARTIALLY_FILLED, "a partial fill (0.3 quoted)"
        )
        assert (partial.filled_quantity.value, partial.average_fill_price.value) == ("0.3", "50010")
        resting = (await c.submit("BTC-USDT", SELL, "0.4", price="50100", client_order_id="l1")).order
        assert resting.status == S.ORDER_STATUS_ACCEPTED
        await publish_market(oms.kafka, oms.market_topic, [quote("BTC-USDT", "49995", "1", "50020", "1")])
        filled = await wait_status(
            c, mkt.order_id, S.ORDER_STATUS_FILLED, "the rest filled at the next quote"
        )
        assert Decimal(filled.average_fill_price.value) == Decimal("50014")
        await publish_market(oms.kafka, oms.market_topic, [quote("BTC-USDT", "50150", "1", "50160", "1")])
        sold = await wait_status(c, resting.order_id, S.ORDER_STATUS_FILLED, "the resting sell crossed")
        assert sold.average_fill_price.value == "50100", "a resting limit fills at its own price (maker)"
        [position] = await c.positions(["BTC-USDT"])
        assert Decimal(position.quantity.value) == Decimal("0.1")
        assert Decimal(position.average_price.value) == Decimal("50014")
        assert Decimal(position.realized_pnl.value) == Decimal("0.4") * (Decimal("50100") - Decimal("50014"))

        await publish_market(oms.kafka, oms.market_topic, [quote("BTC-USDT", "50190", "1", "50200", "0.1")])
        await eventually(lambda: _ask_is(oms, "50200"), what="new quote")
        fok = (await c.submit("BTC-USDT", BUY, "0.5", price="50300", time_in_force=S.TIME_IN_FORCE_FOK)).order
        fok = await wait_status(c, fok.order_id, S.ORDER_STATUS_EXPIRED, "FOK not fillable")
        assert fok.reject_reason == S.REJECT_REASON_FOK_NOT_FILLABLE and fok.filled_quantity.value == "0"
        ioc = (await c.submit("BTC-USDT", BUY, "0.5", price="50300", time_in_force=S.TIME_IN_FORCE_IOC)).order
        ioc = await wait_status(c, ioc.order_id, S.ORDER_STATUS_CANCELED, "IOC remainder canceled")
        assert ioc.filled_quantity.value == "0.1"
        post = (await c.submit("BTC-USDT", BUY, "0.1", price="50300", post_only=True)).order
        post = await wait_status(c, post.order_id, S.ORDER_STATUS_REJECTED, "post-only would cross")
        assert post.reject_reason == S.REJECT_REASON_POST_ONLY_WOULD_CROSS
        day = (await c.submit("BTC-USDT", BUY, "0.1", price="49000", time_in_force=S.TIME_IN_FORCE_DAY)).order
        paper = oms.app.venues["paper"]
        assert isinstance(paper, PaperVenue)
        assert paper.expire_day_orders(now_ns()) == [], "not before the UTC day ends"
        assert paper.expire_day_orders(now_ns() + NS_PER_DAY) == [day.order_id]
        await wait_status(c, day.order_id, S.ORDER_STATUS_EXPIRED, "DAY order expired")
        nodata = (await c.submit("SOL-USDT", BUY, "1", price="10")).order
        assert nodata.status == S.ORDER_STATUS_ACCEPTED, "a limit order without market data rests"
        event_types = [e["type"] for e in await oms.sql(
            "SELECT type FROM order_events WHERE order_id = $1 ORDER BY sequence", mkt.order_id
        )]  # fmt: skip
        assert event_types == ["ACCEPTED", "PARTIALLY_FILLED", "FILLED"]
        fills = await oms.sql(
            "SELECT quantity, price, liquidity FROM fills WHERE order_id = $1 ORDER BY price", mkt.order_id
        )
        assert [(f["quantity"], f["price"], f["liquidity"]) for f in fills] == [
            (Decimal("0.3"), Decimal("50010"), "TAKER"), (Decimal("0.2"), Decimal("50020"), "TAKER"),
        ]  # fmt: skip


async def _ask_is(env: OmsEnv, price: str) -> bool:
    assert env.app is not None
    touch = env.app.market.touch("BTC-USDT")
    return touch is not None and touch.ask == Decimal(price)


async def test_open_orders_are_reconciled_into_the_paper_book_after_restart(oms: OmsEnv) -> None:
    async with oms.client() as c:
        order = (await c.submit("ETH-USDT", BUY, "1", price="1000", client_order_id="survivor")).order
    await oms.stop()
    app = await oms.start()
    paper = app.venues["paper"]
    assert isinstance(paper, PaperVenue)
    assert order.order_id in paper.working, "startup reconciliation re-rested the open order"
    await publish_market(oms.kafka, oms.market_topic, [quote("ETH-USDT", "990", "5", "999", "5")])
    async with oms.client() as c:
        filled = await wait_status(c, order.order_id, S.ORDER_STATUS_FILLED, "the reconciled order filled")
        assert filled.average_fill_price.value == "1000"


async def test_stop_orders_through_the_api_trigger_on_trades_from_kafka(oms: OmsEnv) -> None:
    assert oms.app is not None
    await publish_market(
        oms.kafka,
        oms.market_topic,
        [quote("BTC-USDT", "49990", "1", "50010", "1"), trade("BTC-USDT", "50000")],
    )
    await eventually(lambda: _ask_is(oms, "50010"), what="the quote consumed from Kafka")
    async with oms.client() as c:
        stop = (
            await c.submit("BTC-USDT", SELL, "0.2", order_type=S.ORDER_TYPE_STOP, stop_price="49500")
        ).order
        stop_limit = (
            await c.submit(
                "BTC-USDT", BUY, "0.1", order_type=S.ORDER_TYPE_STOP_LIMIT, price="50600", stop_price="50500"
            )
        ).order
        assert (stop.status, stop.stop_price.value, stop.price.value) == (
            S.ORDER_STATUS_ACCEPTED,
            "49500",
            "",
        )
        assert (stop_limit.status, stop_limit.stop_price.value) == (S.ORDER_STATUS_ACCEPTED, "50500")

        # A print at the buy stop-limit's stop: it arrives as a LIMIT buy at 50,600 and takes the 50,010 ask.
        await publish_market(oms.kafka, oms.market_topic, [trade("BTC-USDT", "50500")])
        bought = await wait_status(c, stop_limit.order_id, S.ORDER_STATUS_FILLED, "the stop-limit triggered")
        assert bought.average_fill_price.value == "50010"
        assert (await c.get(order_id=stop.order_id)).status == S.ORDER_STATUS_ACCEPTED, "not reached: waits"

        # A print at the sell stop: it sells at the bid as a MARKET order would.
        await publish_market(oms.kafka, oms.market_topic, [trade("BTC-USDT", "49400")])
        sold = await wait_status(c, stop.order_id, S.ORDER_STATUS_FILLED, "the stop triggered")
        assert sold.average_fill_price.value == "49990"
