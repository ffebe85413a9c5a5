"""BinanceSpotVenue: request signing, recorded executionReport payloads, and the whole order flow through the
OMS against a local stub of the Binance API (signed REST + user-data WebSocket), including reconciliation."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from aipx.v1 import common_pb2, orders_pb2
from aipx_oms.domain.model import Liquidity, Order, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from aipx_oms.venues.base import ReportKind
from aipx_oms.venues.binance.execution import BinanceSpotVenue, order_params
from aipx_oms.venues.binance.http import sign
from aipx_oms.venues.binance.user_stream import parse_execution_report

from tests.oms.binance_stub import BinanceStub
from tests.oms.conftest import OmsEnv, eventually
from tests.oms.test_paper_venue import wait_status

FIXTURES = Path(__file__).parent / "fixtures" / "binance"
BUY = common_pb2.SIDE_BUY
S = orders_pb2
API_KEY, SECRET = "stub-api-key", "stub-secret"


def test_signature_matches_the_documented_example() -> None:
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    query = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    assert sign(secret, query) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


@pytest.mark.parametrize(
    ("order_type", "price", "expected"),
    [
        (OrderType.STOP, None, {"type": "STOP_LOSS", "stopPrice": "95"}),
        (OrderType.STOP_LIMIT, Decimal("94.5"),
         {"type": "STOP_LOSS_LIMIT", "stopPrice": "95", "price": "94.5", "timeInForce": "GTC"}),
    ],
)  # fmt: skip
def test_stop_orders_map_to_binance_stop_loss_types(
    order_type: OrderType, price: Decimal | None, expected: dict[str, str]
) -> None:
    order = Order(
        order_id="o-1", account_id="a", client_order_id="c-1", symbol="BTC-USDT", side=Side.SELL,
        type=order_type, time_in_force=TimeInForce.GTC, quantity=Decimal("0.5"), price=price,
        stop_price=Decimal("95"), reduce_only=False, post_only=False, venue="binance",
        status=OrderStatus.ACCEPTED, created_time_ns=1, updated_time_ns=1,
    )  # fmt: skip
    params = order_params(order, order.quantity)
    assert {k: params[k] for k in expected} == expected
    assert (params["symbol"], params["side"], params["quantity"]) == ("BTCUSDT", "SELL", "0.5")
    if order_type is OrderType.STOP:
        assert "price" not in params and "timeInForce" not in params


def test_recorded_execution_reports_parse() -> None:
    trade = parse_execution_report(json.loads((FIXTURES / "execution_report_trade.json").read_text()))
    assert trade is not None and trade.kind is ReportKind.FILL
    assert (trade.order_id, trade.venue_order_id, trade.quantity, trade.price) == (
        "mUvoqJxFIILMdfAW5iGSOW", "4293153", Decimal("0.40000000"), Decimal("0.10264000"),
    )  # fmt: skip
    assert (trade.fee, trade.fee_currency, trade.liquidity, trade.venue_fill_id) == (
        Decimal("0.00040000"), "ETH", Liquidity.MAKER, "718",
    )  # fmt: skip
    canceled = parse_execution_report(json.loads((FIXTURES / "execution_report_canceled.json").read_text()))
    assert canceled is not None and canceled.kind is ReportKind.CANCELED
    assert canceled.order_id == "mUvoqJxFIILMdfAW5iGSOW", "a cancel names the original client id in C"
    fok = parse_execution_report(json.loads((FIXTURES / "execution_report_fok_expired.json").read_text()))
    assert fok is not None and fok.kind is ReportKind.EXPIRED and fok.reason is RejectReason.FOK_NOT_FILLABLE
    assert parse_execution_report({"e": "outboundAccountPosition"}) is None


@pytest.fixture
async def stub() -> object:
    server = BinanceStub(API_KEY, SECRET)
    urls = await server.start()
    yield server, urls
    await server.stop()


@pytest.mark.integration
async def test_orders_through_binance_stub_with_fills_cancel_and_reconciliation(
    oms_env: OmsEnv, stub: tuple[BinanceStub, tuple[str, str]]
) -> None:
    server, (rest_url, ws_url) = stub
    binance = {
        "venues": ("paper", "binance"),
        "binance_base_url": rest_url,
        "binance_ws_url": ws_url,
        "binance_api_key": API_KEY,
        "binance_api_secret": SECRET,
    }
    app = await oms_env.start(**binance)
    venue = app.venues["binance"]
    assert isinstance(venue, BinanceSpotVenue)
    await eventually(lambda: _true(server.connected > 0), what="the user-data stream connected")
    async with oms_env.client() as c:
        order = (
            await c.submit("ETH-USDT", BUY, "2", price="1500", venue="binance", client_order_id="b1")
        ).order
        acked = await _wait(c, order.order_id, lambda o: o.venue_order_id != "", "the venue's order id")
        method, path, params = server.requests[-1]
        assert (method, path) == ("POST", "/api/v3/order")
        assert params["symbol"] == "ETHUSDT" and params["newClientOrderId"] == order.order_id
        assert (params["type"], params["timeInForce"], params["quantity"], params["price"]) == (
            "LIMIT",
            "GTC",
            "2",
            "1500",
        )
        await server.fill(order.order_id, Decimal("0.5"), Decimal("1499.5"))
        partial = await wait_status(
            c, order.order_id, S.ORDER_STATUS_PARTIALLY_FILLED, "a fill from the stream"
        )
        assert (partial.filled_quantity.value, partial.average_fill_price.value) == ("0.5", "1499.5")
        assert partial.venue_order_id == acked.venue_order_id
        canceled = await c.cancel(order_id=order.order_id)
        assert canceled.status == S.ORDER_STATUS_CANCELED and canceled.filled_quantity.value == "0.5"
        assert server.orders[order.order_id]["status"] == "CANCELED"
        # The stub refuses a LIMIT_MAKER that would take (stub market 100): REJECTED, POST_ONLY_WOULD_CROSS.
        maker = (await c.submit("ETH-USDT", BUY, "1", price="200", venue="binance", post_only=True)).order
        maker = await wait_status(c, maker.order_id, S.ORDER_STATUS_REJECTED, "the venue's rejection")
        assert maker.reject_reason == S.REJECT_REASON_POST_ONLY_WOULD_CROSS
        assert server.requests[-1][2]["type"] == "LIMIT_MAKER"
        day = (
            await c.submit(
                "ETH-USDT", BUY, "1", price="90", venue="binance", time_in_force=S.TIME_IN_FORCE_DAY
            )
        ).order
        day = await wait_status(c, day.order_id, S.ORDER_STATUS_REJECTED, "DAY refused for Binance")
        assert "DAY" in day.reject_message
        survivor = (
            await c.submit("ETH-USDT", BUY, "1", price="1400", venue="binance", client_order_id="b2")
        ).order
        await _wait(c, survivor.order_id, lambda o: o.venue_order_id != "", "acknowledged")
    await oms_env.stop()
    # While the OMS is down the venue fills b2 completely; the event is lost with the connection.
    await server.fill(survivor.order_id, Decimal("1"), Decimal("1399"), push=False)
    await oms_env.start(**binance)
    async with oms_env.client() as c:
        done = await wait_status(
            c, survivor.order_id, S.ORDER_STATUS_FILLED, "the fill found by reconciliation"
        )
        assert done.average_fill_price.value == "1399"
        [position] = await c.positions(["ETH-USDT"])
        assert Decimal(position.quantity.value) == Decimal("1.5")


async def _true(value: bool) -> bool:
    return value


async def _wait(client: object, order_id: str, predicate: object, what: str) -> orders_pb2.Order:
    holder: list[orders_pb2.Order] = []

    async def check() -> bool:
        order = await client.get(order_id=order_id)  # type: ignore[attr-defined]
        holder[:] = [order]
        return bool(predicate(order))  # type: ignore[operator]

    await eventually(check, what=what)
    return holder[0]
