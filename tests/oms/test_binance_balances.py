"""Binance balance reconciliation: the account endpoint and the user stream's outboundAccountPosition against
the ledger of the mirroring account (real PostgreSQL/Kafka/Redis, the Binance stub): a divergence is logged,
counted and adjusted (actor `reconciler`); balances that agree after a fill adjust nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aipx.v1 import common_pb2, orders_pb2
from aipx_oms.domain.ledger import divergences
from aipx_oms.venues.binance.user_stream import parse_account, parse_account_position
from prometheus_client import REGISTRY

from tests.oms.binance_stub import BinanceStub
from tests.oms.conftest import OmsEnv, eventually
from tests.oms.test_paper_venue import wait_status

FIXTURES = Path(__file__).parent / "fixtures" / "binance"
API_KEY, SECRET = "stub-api-key", "stub-secret"


def test_recorded_account_position_and_account_parse() -> None:
    event = json.loads((FIXTURES / "outbound_account_position.json").read_text())
    assert parse_account_position(event) == {"ETH": Decimal("10000"), "USDT": Decimal("100")}
    assert parse_account_position({"e": "executionReport"}) is None
    body = {
        "balances": [
            {"asset": "BTC", "free": "0.5", "locked": "0.25"},
            {"asset": "BNB", "free": "0", "locked": "0"},
        ]
    }
    assert parse_account(body) == {"BTC": Decimal("0.75"), "BNB": Decimal(0)}
    with pytest.raises(ValueError, match="list"):
        parse_account({"balances": "nope"})


def test_divergences_complete_and_partial() -> None:
    ledger = {"USDT": Decimal("100"), "BTC": Decimal("1"), "ETH": Decimal("2")}
    venue = {"USDT": Decimal("100"), "BTC": Decimal("0.9")}
    partial = divergences(ledger, venue, complete=False)
    assert [(d.asset, d.adjustment) for d in partial] == [("BTC", Decimal("-0.1"))]
    complete = divergences(ledger, venue, complete=True)
    assert [(d.asset, d.adjustment) for d in complete] == [("BTC", Decimal("-0.1")), ("ETH", Decimal("-2"))]


def _divergences(asset: str) -> float:
    return (
        REGISTRY.get_sample_value("aipx_oms_balance_divergences_total", {"venue": "binance", "asset": asset})
        or 0.0
    )


@pytest.fixture
async def stub() -> AsyncIterator[tuple[BinanceStub, tuple[str, str]]]:
    server = BinanceStub(API_KEY, SECRET)
    urls = await server.start()
    yield server, urls
    await server.stop()


@pytest.mark.integration
async def test_binance_balances_reconciled_into_the_ledger(
    oms_env: OmsEnv, stub: tuple[BinanceStub, tuple[str, str]]
) -> None:
    server, (rest_url, ws_url) = stub
    server.balances = {"USDT": (Decimal("9000"), Decimal("1000")), "BNB": (Decimal("0"), Decimal("0"))}
    usdt_before = _divergences("USDT")
    await oms_env.start(
        venues=("paper", "binance"),
        binance_base_url=rest_url,
        binance_ws_url=ws_url,
        binance_api_key=API_KEY,
        binance_api_secret=SECRET,
        binance_account_id="acct-a",
        binance_balance_reconcile_s=3600,  # the account endpoint at start; then the stream's updates
    )

    async def total(asset: str) -> Decimal | None:
        rows = await oms_env.sql(
            "SELECT total FROM balances WHERE account_id = 'acct-a' AND asset = $1", asset
        )
        return rows[0]["total"] if rows else None

    async def has(asset: str, amount: str) -> bool:
        return await total(asset) == Decimal(amount)

    await eventually(lambda: has("USDT", "10000"), timeout_s=30, what="USDT from the account endpoint")
    [adjustment] = await oms_env.sql(
        "SELECT amount, actor, reason, type FROM ledger_entries WHERE account_id = 'acct-a'"
        " AND asset = 'USDT'"
    )
    assert (adjustment["type"], adjustment["actor"], adjustment["amount"]) == (
        "ADJUSTMENT", "reconciler", Decimal("10000")
    )  # fmt: skip
    assert "venue 10000" in adjustment["reason"] and "ledger 0" in adjustment["reason"]
    assert "GET /api/v3/account" in adjustment["reason"]
    assert _divergences("USDT") == usdt_before + 1
    assert await total("BNB") in (None, Decimal(0)), "a zero balance at both ends is no divergence"

    # The stream's account update: only the assets it lists.
    await eventually(lambda: _connected(server), what="the user stream")
    await server.push_balances({"ETH": (Decimal("2"), Decimal("0"))})
    await eventually(lambda: has("ETH", "2"), timeout_s=30, what="ETH from outboundAccountPosition")
    [eth] = await oms_env.sql(
        "SELECT reason FROM ledger_entries WHERE account_id = 'acct-a' AND asset = 'ETH'"
    )
    assert "outboundAccountPosition" in eth["reason"]

    # A fill moves the ledger; the venue's balances after it agree: no adjustment.
    entries_before = await oms_env.sql("SELECT count(*) AS n FROM ledger_entries WHERE type = 'ADJUSTMENT'")
    async with oms_env.client() as c:
        order = (await c.submit("ETH-USDT", common_pb2.SIDE_BUY, "1", price="1500", venue="binance")).order
        await eventually(lambda: _venue_has(server, order.order_id), what="the order at the stub")
        await server.fill(order.order_id, Decimal("1"), Decimal("1500"))
        await wait_status(c, order.order_id, orders_pb2.ORDER_STATUS_FILLED, "the fill")
    await server.push_balances(
        {"ETH": (Decimal("3"), Decimal("0")), "USDT": (Decimal("8498.5"), Decimal("0"))}
    )  # 10000 - 1500 - fee 1.5 (the stub charges 0.1% in USDT)
    await eventually(lambda: has("USDT", "8498.5"), timeout_s=30, what="the fill's quote leg and fee")
    assert await total("ETH") == Decimal("3")
    await server.push_balances({"USDT": (Decimal("8400"), Decimal("0"))})  # a withdrawal outside the OMS
    await eventually(lambda: has("USDT", "8400"), timeout_s=30, what="the divergence reconciled")
    entries_after = await oms_env.sql("SELECT count(*) AS n FROM ledger_entries WHERE type = 'ADJUSTMENT'")
    assert entries_after[0]["n"] == entries_before[0]["n"] + 1, "only the withdrawal needed an adjustment"


async def _connected(server: BinanceStub) -> bool:
    return server.connected > 0


async def _venue_has(server: BinanceStub, order_id: str) -> bool:
    return order_id in server.orders


@pytest.mark.integration
async def test_a_balance_push_before_its_fills_report_adjusts_nothing(
    oms_env: OmsEnv, stub: tuple[BinanceStub, tuple[str, str]]
) -> None:
    server, (rest_url, ws_url) = stub
    server.balances = {"USDT": (Decimal("10000"), Decimal("0"))}
    await oms_env.start(
        venues=("paper", "binance"),
        binance_base_url=rest_url,
        binance_ws_url=ws_url,
        binance_api_key=API_KEY,
        binance_api_secret=SECRET,
        binance_account_id="acct-a",
        binance_balance_reconcile_s=3600,
    )

    async def total(asset: str) -> Decimal | None:
        rows = await oms_env.sql(
            "SELECT total FROM balances WHERE account_id = 'acct-a' AND asset = $1", asset
        )
        return rows[0]["total"] if rows else None

    async def usdt_funded() -> bool:
        return await total("USDT") == Decimal("10000")

    async def adjustments() -> list[tuple[str, Decimal]]:
        rows = await oms_env.sql(
            "SELECT asset, amount FROM ledger_entries WHERE account_id = 'acct-a' AND type = 'ADJUSTMENT'"
            " ORDER BY time_ns"
        )
        return [(r["asset"], r["amount"]) for r in rows]

    await eventually(usdt_funded, timeout_s=30, what="USDT from the account endpoint")
    await eventually(lambda: _connected(server), what="the user stream")
    assert await adjustments() == [("USDT", Decimal("10000"))]
    async with oms_env.client() as c:
        for n, price in enumerate(("1500", "1400")):
            order = (await c.submit("ETH-USDT", common_pb2.SIDE_BUY, "1", price=price, venue="binance")).order
            await eventually(_at_venue(server, order.order_id), what="the order at the stub")
            usdt = Decimal(10000) - Decimal("1501.5") - (Decimal("1401.4") if n else 0)
            # Binance pushes the balances the trade leaves a second before the trade's executionReport.
            await server.fill(
                order.order_id,
                Decimal("1"),
                Decimal(price),
                balances_first={"ETH": (Decimal(n + 1), Decimal(0)), "USDT": (usdt, Decimal(0))},
                report_delay_s=1.0,
            )
            await wait_status(c, order.order_id, orders_pb2.ORDER_STATUS_FILLED, "the fill")

            async def settled(eth: Decimal = Decimal(n + 1), usdt: Decimal = usdt) -> bool:
                return await total("ETH") == eth and await total("USDT") == usdt

            await eventually(settled, what="the ledger after the fill")
    await server.push_balances({"USDT": (Decimal("8000"), Decimal(0))})  # a deposit: reconciled
    await eventually(lambda: _usdt_is(total, "8000"), timeout_s=30, what="the deposit reconciled")
    assert await adjustments() == [("USDT", Decimal("10000")), ("USDT", Decimal("8000") - Decimal("7097.1"))]
    assert await total("ETH") == Decimal(2)


async def _usdt_is(total: Any, amount: str) -> bool:
    return bool(await total("USDT") == Decimal(amount))


def _at_venue(server: BinanceStub, order_id: str) -> Callable[[], Awaitable[bool]]:
    return lambda: _venue_has(server, order_id)
