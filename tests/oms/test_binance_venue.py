"""BinanceSpotVenue: request signing, recorded executionReport payloads, and the whole order flow through the
OMS against a local stub of the Binance API (signed REST + user-data WebSocket), including reconciliation."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from aipx.v1 import common_pb2, orders_pb2
from aipx_oms.domain.executions import fill_to_store
from aipx_oms.domain.model import Liquidity, Order, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from aipx_oms.venues.base import ReportKind
from aipx_oms.venues.binance.chain import Chain, Leg, in_order_terms
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


def test_a_replaced_orders_figures_continue_from_what_the_earlier_binance_orders_executed() -> None:
    chain = Chain(Leg("10"))
    first = chain.current
    second = chain.replaced(first, Decimal("1.5"), Decimal("2247"), "11")
    assert (second.base_quantity, second.base_quote, chain.current) == (
        Decimal("1.5"),
        Decimal("2247"),
        second,
    )
    fill = parse_execution_report({"e": "executionReport", "x": "TRADE", "c": "o-1", "i": 11, "l": "1",
                                   "L": "1495", "t": 7, "z": "1", "Z": "1495"})  # fmt: skip
    assert fill is not None
    translated = in_order_terms(fill, second)
    assert (translated.cumulative_quantity, translated.cumulative_quote) == (Decimal("2.5"), Decimal("3742"))
    # The OMS has 1.5 at 1498: the new execution is exactly the report's (1 at 1495).
    assert fill_to_store(Decimal("1.5"), Decimal("1498"), Decimal("1"), Decimal("1495"),
                         translated.cumulative_quantity, translated.cumulative_quote) == (
        Decimal("1"), Decimal("1495"))  # fmt: skip
    # Binance's own figures would make it a duplicate (z 1 <= 1.5 filled).
    assert fill_to_store(Decimal("1.5"), Decimal("1498"), Decimal("1"), Decimal("1495"), Decimal("1"),
                         Decimal("1495")) is None  # fmt: skip
    assert chain.earlier(second) == [(first, Decimal("1.5"))] and chain.earlier(first) == []
    assert chain.leg("12") is None and chain.earlier(Leg("12")) == []
    assert in_order_terms(replace(fill, cumulative_quantity=None), second).cumulative_quantity is None


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


def _binance(urls: tuple[str, str]) -> dict[str, object]:
    rest_url, ws_url = urls
    return {
        "venues": ("paper", "binance"),
        "binance_base_url": rest_url,
        "binance_ws_url": ws_url,
        "binance_api_key": API_KEY,
        "binance_api_secret": SECRET,
    }


async def _fills(oms_env: OmsEnv, order_id: str) -> list[tuple[Decimal, Decimal, Decimal, str]]:
    rows = await oms_env.sql(
        "SELECT quantity, price, fee, fee_currency FROM fills WHERE order_id = $1"
        " ORDER BY venue_fill_id::int",
        order_id,
    )
    return [(r["quantity"], r["price"], r["fee"], r["fee_currency"]) for r in rows]


async def _ledger(oms_env: OmsEnv, order_id: str) -> dict[str, Decimal]:
    rows = await oms_env.sql(
        "SELECT asset, sum(amount) AS s FROM ledger_entries WHERE order_id = $1 GROUP BY asset", order_id
    )
    return {r["asset"]: r["s"] for r in rows}


def _venue_fills(trades: list[tuple[str, str]]) -> list[tuple[Decimal, Decimal, Decimal, str]]:
    """The stub's fills (quantity, price) with its fee: 0.1% of the quote, in USDT."""
    return [(Decimal(q), Decimal(p), Decimal(q) * Decimal(p) * Decimal("0.001"), "USDT") for q, p in trades]


@pytest.mark.integration
async def test_replace_continues_the_fill_count_on_the_new_binance_order(
    oms_env: OmsEnv, stub: tuple[BinanceStub, tuple[str, str]]
) -> None:
    """cancelReplace makes a new Binance order whose z/Z restart from 0: the OMS order still ends FILLED with
    exactly the venue's fills, those of the replaced Binance order reported late included (once)."""
    server, urls = stub
    await oms_env.start(**_binance(urls))
    await eventually(lambda: _true(server.connected > 0), what="the user-data stream connected")
    async with oms_env.client() as c:
        order = (
            await c.submit("ETH-USDT", BUY, "3", price="1500", venue="binance", client_order_id="r1")
        ).order
        first = await _wait(c, order.order_id, lambda o: o.venue_order_id != "", "acknowledged")
        await server.fill(order.order_id, Decimal("1"), Decimal("1499"))
        await wait_status(c, order.order_id, S.ORDER_STATUS_PARTIALLY_FILLED, "1 of 3 filled")
        # A trade of the old Binance order just before the cancel; its report comes after the replace.
        late = await server.fill(order.order_id, Decimal("0.5"), Decimal("1498"), push=False)
        old_id = server.orders[order.order_id]["orderId"]
        await c.replace(order_id=order.order_id, quantity="3", price="1495")
        replaced = await _wait(
            c,
            order.order_id,
            lambda o: o.venue_order_id not in ("", first.venue_order_id),
            "the new order id",
        )
        new = server.orders[order.order_id]
        assert new["orderId"] != old_id and str(new["orderId"]) == replaced.venue_order_id
        assert server.requests_for("POST", "/api/v3/order/cancelReplace", order.order_id) == 1
        assert server.by_id[old_id]["executedQty"] == Decimal("1.5")
        await server.push_raw(late)
        await _wait(
            c,
            order.order_id,
            lambda o: Decimal(o.filled_quantity.value or "0") == Decimal("1.5"),
            "the late old-order fill",
        )
        await server.push_raw(late)  # seen twice: stored once
        await server.fill(order.order_id, Decimal("1"), Decimal("1495"))
        await _wait(
            c,
            order.order_id,
            lambda o: Decimal(o.filled_quantity.value or "0") == Decimal("2.5"),
            "the new order's fill",
        )
        await server.fill(order.order_id, Decimal("0.5"), Decimal("1494"))
        done = await wait_status(c, order.order_id, S.ORDER_STATUS_FILLED, "the rest filled")
        expected = _venue_fills([("1", "1499"), ("0.5", "1498"), ("1", "1495"), ("0.5", "1494")])
        assert Decimal(done.filled_quantity.value) == Decimal("3")
        cost = sum((q * p for q, p, _, _ in expected), Decimal(0))
        assert abs(Decimal(done.average_fill_price.value) - cost / 3) < Decimal("1e-9")  # as the wire rounds
        assert await _fills(oms_env, order.order_id) == expected
        [position] = await c.positions(["ETH-USDT"])
        assert Decimal(position.quantity.value) == Decimal("3")
        fees = sum((f for _, _, f, _ in expected), Decimal(0))
        assert await _ledger(oms_env, order.order_id) == {"ETH": Decimal("3"), "USDT": -cost - fees}


@pytest.mark.integration
async def test_fills_of_a_replaced_order_found_by_the_resync_after_a_stream_gap(
    oms_env: OmsEnv, stub: tuple[BinanceStub, tuple[str, str]]
) -> None:
    """Fills of both Binance orders of a replaced order missed on the stream: the query after the gap
    (myTrades of each) records each once, in the OMS order's terms."""
    server, urls = stub
    await oms_env.start(**_binance(urls))
    await eventually(lambda: _true(server.connected > 0), what="the user-data stream connected")
    async with oms_env.client() as c:
        order = (
            await c.submit("ETH-USDT", BUY, "2", price="1500", venue="binance", client_order_id="r2")
        ).order
        await _wait(c, order.order_id, lambda o: o.venue_order_id != "", "acknowledged")
        await server.fill(order.order_id, Decimal("0.5"), Decimal("1499"))
        await wait_status(c, order.order_id, S.ORDER_STATUS_PARTIALLY_FILLED, "0.5 of 2 filled")
        old_id = server.orders[order.order_id]["orderId"]
        await server.fill(order.order_id, Decimal("0.25"), Decimal("1498"), push=False)  # missed
        await c.replace(order_id=order.order_id, price="1490")
        await _wait(
            c, order.order_id, lambda o: o.venue_order_id not in ("", str(old_id)), "the new order id"
        )
        connections = server.connections_total
        await server.drop_connections()
        await server.fill(order.order_id, Decimal("1"), Decimal("1490"), push=False)  # missed too
        await eventually(lambda: _true(server.connections_total > connections), what="the stream reconnected")
        await _wait(
            c,
            order.order_id,
            lambda o: Decimal(o.filled_quantity.value or "0") == Decimal("1.75"),
            "the resync's fills",
        )
        expected = _venue_fills([("0.5", "1499"), ("0.25", "1498"), ("1", "1490")])
        assert await _fills(oms_env, order.order_id) == expected
        await server.fill(order.order_id, Decimal("0.25"), Decimal("1489"))
        done = await wait_status(c, order.order_id, S.ORDER_STATUS_FILLED, "the rest on the stream")
        assert Decimal(done.filled_quantity.value) == Decimal("2")
        expected += _venue_fills([("0.25", "1489")])
        assert await _fills(oms_env, order.order_id) == expected


@pytest.mark.integration
async def test_chain_of_a_replaced_order_rebuilt_after_a_restart(
    oms_env: OmsEnv, stub: tuple[BinanceStub, tuple[str, str]]
) -> None:
    """After a restart the chain of an order replaced before it is rebuilt from allOrders: a fill of its new
    Binance order made while the OMS was down, and the next one on the stream, are recorded exactly."""
    server, urls = stub
    await oms_env.start(**_binance(urls))
    await eventually(lambda: _true(server.connected > 0), what="the user-data stream connected")
    async with oms_env.client() as c:
        order = (
            await c.submit("ETH-USDT", BUY, "3", price="1500", venue="binance", client_order_id="r3")
        ).order
        first = await _wait(c, order.order_id, lambda o: o.venue_order_id != "", "acknowledged")
        await server.fill(order.order_id, Decimal("1"), Decimal("1499"))
        await wait_status(c, order.order_id, S.ORDER_STATUS_PARTIALLY_FILLED, "1 of 3 filled")
        await c.replace(order_id=order.order_id, price="1495")
        await _wait(
            c,
            order.order_id,
            lambda o: o.venue_order_id not in ("", first.venue_order_id),
            "the new order id",
        )
    await oms_env.stop()
    await server.fill(order.order_id, Decimal("1"), Decimal("1495"), push=False)
    await oms_env.start(**_binance(urls))
    async with oms_env.client() as c:
        await _wait(
            c, order.order_id, lambda o: Decimal(o.filled_quantity.value or "0") == 2, "the reconciled fill"
        )
        assert any(path == "/api/v3/allOrders" for _, path, _ in server.requests)
        await eventually(lambda: _true(server.connected > 0), what="the user-data stream connected")
        await server.fill(order.order_id, Decimal("1"), Decimal("1494"))
        done = await wait_status(c, order.order_id, S.ORDER_STATUS_FILLED, "the last fill on the stream")
        assert Decimal(done.filled_quantity.value) == 3
        expected = _venue_fills([("1", "1499"), ("1", "1495"), ("1", "1494")])
        assert await _fills(oms_env, order.order_id) == expected
