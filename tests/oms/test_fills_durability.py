"""Fills are never dropped: PostgreSQL (the real server) is stopped for 20 s while the paper venue and the
Binance stub deliver fills. Reports wait (retried until stored, the Binance stream paused by backpressure),
reconciliation runs periodically meanwhile; after recovery every fill is stored exactly once and positions
are right."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from aipx.clients.oms import OmsClient
from aipx.v1 import common_pb2, orders_pb2
from aipx_stack.base import Stack

from tests.oms.binance_stub import BinanceStub
from tests.oms.conftest import OmsEnv, eventually
from tests.oms.helpers import publish_market, quote

pytestmark = [pytest.mark.integration, pytest.mark.disruptive]

BUY, SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL
S = orders_pb2
API_KEY, SECRET = "stub-api-key", "stub-secret"
OUTAGE_S = 20.0


@pytest.fixture
async def binance() -> AsyncIterator[tuple[BinanceStub, str, str]]:
    server = BinanceStub(API_KEY, SECRET)
    rest_url, ws_url = await server.start()
    yield server, rest_url, ws_url
    await server.stop()


async def _get(client: OmsClient, order_id: str) -> orders_pb2.Order:
    return await client.get(order_id=order_id)


async def test_fills_during_a_postgres_outage_are_stored_exactly_once(
    oms_env: OmsEnv, binance: tuple[BinanceStub, str, str], stack: Stack
) -> None:
    server, rest_url, ws_url = binance
    settings: dict[str, Any] = {
        "venues": ("paper", "binance"),
        "binance_base_url": rest_url,
        "binance_ws_url": ws_url,
        "binance_api_key": API_KEY,
        "binance_api_secret": SECRET,
        "reconcile_interval_s": 1.0,  # reconciliation runs through the outage and right after it
        "send_sweep_grace_s": 0.5,
        "report_queue_max": 2,  # the Binance stream is paused by backpressure during the outage
        "report_retry_max_s": 1.0,
    }
    app = await oms_env.start(**settings)
    await publish_market(oms_env.kafka, oms_env.market_topic, [quote("BTC-USDT", "49990", "1", "50010", "1")])

    async def ready() -> bool:
        return server.connected > 0 and app.market.touch("BTC-USDT") is not None

    await eventually(ready, what="the user-data stream and the first quote")
    async with oms_env.client() as c:
        sells = [
            (await c.submit("BTC-USDT", SELL, "0.1", price=str(price), client_order_id=f"p{price}")).order
            for price in (50100, 50200, 50300)
        ]
        b1 = (await c.submit("ETH-USDT", BUY, "3", price="1500", venue="binance", client_order_id="b1")).order
        b2 = (await c.submit("ETH-USDT", BUY, "3", price="1500", venue="binance", client_order_id="b2")).order
        for order in (b1, b2):

            async def acked(order_id: str = order.order_id) -> bool:
                return (await _get(c, order_id)).venue_order_id != ""

            await eventually(acked, what="Binance orders acknowledged")

        await asyncio.to_thread(stack.stop, "postgres")
        loop = asyncio.get_running_loop()
        outage_until = loop.time() + OUTAGE_S
        try:
            # Fills at both venues while the database is down.
            await server.fill(b1.order_id, Decimal("1"), Decimal("1499"))
            await server.fill(b1.order_id, Decimal("1"), Decimal("1498"))
            await server.fill(b2.order_id, Decimal("3"), Decimal("1497"))
            await publish_market(
                oms_env.kafka,
                oms_env.market_topic,
                [quote("BTC-USDT", str(bid), "1", str(bid + 10), "1") for bid in (50150, 50250, 50350)],
            )

            async def paper_filled() -> bool:
                return not any(o.order_id in app.venues["paper"].working for o in sells)  # type: ignore[attr-defined]

            await eventually(paper_filled, what="the paper venue filled the sells (in memory)")
            await asyncio.sleep(max(0.0, outage_until - loop.time()))  # the outage lasts OUTAGE_S
        finally:
            await asyncio.to_thread(stack.start, "postgres")

        async def all_stored() -> bool:
            try:
                orders = [await _get(c, o.order_id) for o in (*sells, b1, b2)]
            except Exception:  # the OMS is reconnecting
                return False
            return [o.status for o in orders] == [S.ORDER_STATUS_FILLED] * 3 + [
                S.ORDER_STATUS_PARTIALLY_FILLED,
                S.ORDER_STATUS_FILLED,
            ]

        await eventually(all_stored, timeout_s=60, what="every fill stored after the outage")
        await asyncio.sleep(2.5)  # two more reconciliation rounds: they must not add anything
        fills = await oms_env.sql("SELECT order_id, quantity, price FROM fills ORDER BY fill_time_ns")
        by_order: dict[str, list[tuple[Decimal, Decimal]]] = {}
        for r in fills:
            by_order.setdefault(r["order_id"], []).append((r["quantity"], r["price"]))
        assert sorted(by_order[b1.order_id]) == [(Decimal(1), Decimal(1498)), (Decimal(1), Decimal(1499))]
        assert by_order[b2.order_id] == [(Decimal(3), Decimal(1497))]
        for order, price in zip(sells, (50100, 50200, 50300), strict=True):
            assert by_order[order.order_id] == [(Decimal("0.1"), Decimal(price))]
        assert len(fills) == 6, "each execution stored exactly once"
        positions = {p.symbol: p for p in await c.positions(["BTC-USDT", "ETH-USDT"])}
        assert Decimal(positions["ETH-USDT"].quantity.value) == Decimal(5)
        assert (
            Decimal(positions["ETH-USDT"].average_price.value)
            == (Decimal(1499) + Decimal(1498) + 3 * Decimal(1497)) / 5
        )
        assert Decimal(positions["BTC-USDT"].quantity.value) == Decimal("-0.3")
        b1_now = await _get(c, b1.order_id)
        assert b1_now.filled_quantity.value == "2"
