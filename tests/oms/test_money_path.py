"""The money path through real orders and fills on the paper venue (PostgreSQL, Kafka, Redis of the stack):
reservations taken with the order's commit and denied when the free balance does not cover them, released on
cancel and on the last fill; every fill moves balances with its fee entry in the fill's transaction; the
ledger sums to the balances; unrealized P&L and equity follow the market's trades."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from decimal import Decimal

import asyncpg
import grpc
import pytest
from aipx.clients.admin import AdminClient
from aipx.clients.oms import OmsClient
from aipx.v1 import admin_pb2, common_pb2, orders_pb2
from aipx_oms.domain.ledger import Entry, EntryType
from aipx_oms.store.admin import (
    DEMO_INSTRUMENTS,
    add_api_key,
    add_operator_token,
    set_risk_limits,
    upsert_account,
    upsert_instrument,
)
from aipx_oms.store.ledger import post_entry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.oms.conftest import OmsEnv, eventually
from tests.oms.helpers import publish_market, quote, trade

pytestmark = pytest.mark.integration
BUY, SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL
MARKET = orders_pb2.ORDER_TYPE_MARKET
S = orders_pb2
CASH_KEY = "key-cash-account"
FEE_RATE = Decimal("0.001")
OPERATOR_TOKEN = "operator-token-money"
DEPOSIT, WITHDRAWAL = admin_pb2.LEDGER_ENTRY_TYPE_DEPOSIT, admin_pb2.LEDGER_ENTRY_TYPE_WITHDRAWAL


async def open_cash_account(dsn: str, funding: dict[str, str]) -> None:
    """A cash account (no negative balances) funded by deposits, before the OMS first loads it."""
    conn = await asyncpg.connect(dsn)
    try:
        await upsert_account(conn, "cash")
        await add_api_key(conn, "cash", CASH_KEY)
        await set_risk_limits(conn, "cash", max_open_orders=1000, rate_per_s=Decimal(1000), rate_burst=1000)
        for asset, amount in funding.items():
            entry = Entry(f"fund-{asset}", "cash", asset, EntryType.DEPOSIT, Decimal(amount), "test", "test")
            await post_entry(conn, entry)
    finally:
        await conn.close()


async def wait_status(client: OmsClient, order_id: str, status: int, what: str) -> orders_pb2.Order:
    holder: list[orders_pb2.Order] = []

    async def reached() -> bool:
        order = await client.get(order_id=order_id)
        holder[:] = [order]
        return bool(order.status == status)

    await eventually(reached, timeout_s=30, what=what)
    return holder[0]


async def totals(env: OmsEnv, account: str = "cash") -> dict[str, Decimal]:
    rows = await env.sql("SELECT asset, total FROM balances WHERE account_id = $1", account)
    return {r["asset"]: r["total"] for r in rows}


async def locked(env: OmsEnv, order_id: str) -> Decimal | None:
    rows = await env.sql("SELECT amount FROM balance_reservations WHERE order_id = $1", order_id)
    return rows[0]["amount"] if rows else None


async def assert_ledger_invariants(env: OmsEnv, account: str = "cash", *, need_fills: bool = True) -> None:
    """Per asset the entries sum to the balance; every fill has its two trade legs and exactly one fee entry
    equal to the fill's fee; a cash account is never below zero."""
    sums = {
        r["asset"]: r["s"]
        for r in await env.sql(
            "SELECT asset, sum(amount) AS s FROM ledger_entries WHERE account_id = $1 GROUP BY asset", account
        )
    }
    balances = await totals(env, account)
    assert sums == {a: t for a, t in balances.items() if t != 0 or a in sums}
    assert all(t >= 0 for t in balances.values()), balances
    fills = await env.sql("SELECT fill_id, fee FROM fills WHERE account_id = $1", account)
    assert fills or not need_fills, "the scenario has fills"
    for fill in fills:
        legs = await env.sql(
            "SELECT type, amount FROM ledger_entries WHERE fill_id = $1 ORDER BY type", fill["fill_id"]
        )
        assert [r["type"] for r in legs] == ["FEE", "TRADE", "TRADE"], fill["fill_id"]
        assert legs[0]["amount"] == -fill["fee"]


async def test_reservations_fills_fees_and_marks(oms_env: OmsEnv) -> None:
    await open_cash_account(oms_env.dsn, {"USDT": "10000"})
    await oms_env.start(paper_fee_rate=FEE_RATE)
    assert oms_env.app is not None
    market = oms_env.app.market
    await publish_market(oms_env.kafka, oms_env.market_topic, [quote("BTC-USDT", "49990", "1", "50010", "1")])

    async def quoted() -> bool:
        touch = market.touch("BTC-USDT")
        return touch is not None and touch.ask == Decimal("50010")

    await eventually(quoted, what="the quote consumed from Kafka")
    async with OmsClient(oms_env.target, CASH_KEY, timeout_s=10.0) as c:
        # A resting buy holds its notional plus its fee (the paper rate: no instrument rates) in USDT.
        resting = (await c.submit("BTC-USDT", BUY, "0.1", price="49000", client_order_id="r1")).order
        assert resting.status == S.ORDER_STATUS_ACCEPTED
        assert await locked(oms_env, resting.order_id) == Decimal("4904.9")
        # 5095.1 USDT free: a buy of 9000 is denied, nothing held.
        big = (await c.submit("BTC-USDT", BUY, "0.3", price="30000", client_order_id="big")).order
        assert big.status == S.ORDER_STATUS_DENIED
        assert big.reject_reason == S.REJECT_REASON_INSUFFICIENT_BALANCE
        assert await locked(oms_env, big.order_id) is None
        snapshot = await c.account()
        [usdt] = [b for b in snapshot.balances if b.asset == "USDT"]
        assert Decimal(usdt.locked.value) == Decimal("4904.9")
        assert Decimal(usdt.free.value) == Decimal("5095.1")
        # A sell needs the base asset: none held.
        sell = (await c.submit("BTC-USDT", SELL, "0.01", price="50000", client_order_id="s0")).order
        assert sell.reject_reason == S.REJECT_REASON_INSUFFICIENT_BALANCE
        # Cancel releases the reservation; the 9000 buy then fits.
        await c.cancel(order_id=resting.order_id)
        await wait_status(c, resting.order_id, S.ORDER_STATUS_CANCELED, "the cancel")
        await eventually(
            lambda: _released(oms_env, resting.order_id), what="the reservation released on cancel"
        )
        # A market buy reserves at the ask plus the price band, fills at the ask (taker), releases the rest.
        mkt = (await c.submit("BTC-USDT", BUY, "0.1", order_type=MARKET, client_order_id="m1")).order
        assert mkt.status == S.ORDER_STATUS_ACCEPTED
        filled = await wait_status(c, mkt.order_id, S.ORDER_STATUS_FILLED, "the market buy filled")
        assert filled.average_fill_price.value == "50010"
        await eventually(lambda: _released(oms_env, mkt.order_id), what="released on the last fill")
        fee = Decimal("5001.0") * FEE_RATE
        balances = await totals(oms_env)
        assert balances["USDT"] == Decimal("10000") - Decimal("5001.0") - fee
        assert balances["BTC"] == Decimal("0.1")
        [fill] = await oms_env.sql("SELECT fee, liquidity FROM fills WHERE order_id = $1", mkt.order_id)
        assert (fill["fee"], fill["liquidity"]) == (fee, "TAKER")

        # Unrealized P&L follows the market's trades; equity values the BTC at the mark.
        await publish_market(oms_env.kafka, oms_env.market_topic, [trade("BTC-USDT", "51000")])

        async def marked() -> bool:
            account = await c.account()
            return account.unrealized_pnl.value not in ("", "0") and Decimal(
                account.unrealized_pnl.value
            ) != Decimal(0)

        await eventually(marked, what="unrealized P&L at the new mark")
        account = await c.account()
        [position] = [p for p in account.positions if p.symbol == "BTC-USDT"]
        average = Decimal(position.average_price.value)
        assert Decimal(account.unrealized_pnl.value) == Decimal("0.1") * (Decimal("51000") - average)
        assert (position.mark_price.value, Decimal(position.unrealized_pnl.value)) == (
            "51000",
            Decimal("99.0"),
        )
        [listed] = await c.positions(["BTC-USDT"])
        assert listed.mark_price.value == "51000" and Decimal(listed.unrealized_pnl.value) == Decimal("99.0")
        usdt_total = balances["USDT"]
        assert Decimal(account.equity.value) == usdt_total + Decimal("0.1") * Decimal("51000")

        # A resting sell holds the BTC; it fills as maker when the market crosses it.
        await publish_market(
            oms_env.kafka, oms_env.market_topic, [quote("BTC-USDT", "50990", "1", "51010", "1")]
        )
        await eventually(lambda: _touch_ask(oms_env, "51010"), what="the new quote")
        ask = (await c.submit("BTC-USDT", SELL, "0.1", price="51500", client_order_id="s1")).order
        assert ask.status == S.ORDER_STATUS_ACCEPTED
        assert await locked(oms_env, ask.order_id) == Decimal("0.1")
        more = (await c.submit("BTC-USDT", SELL, "0.05", price="51500", client_order_id="s2")).order
        assert more.reject_reason == S.REJECT_REASON_INSUFFICIENT_BALANCE, "the BTC is held by s1"
        await publish_market(
            oms_env.kafka, oms_env.market_topic, [quote("BTC-USDT", "51600", "1", "51610", "1")]
        )
        await wait_status(c, ask.order_id, S.ORDER_STATUS_FILLED, "the resting sell crossed")
        await eventually(lambda: _released(oms_env, ask.order_id), what="released on the sell's fill")
        [maker] = await oms_env.sql("SELECT fee, liquidity FROM fills WHERE order_id = $1", ask.order_id)
        assert maker["liquidity"] == "MAKER" and maker["fee"] == Decimal("5150.0") * FEE_RATE
        balances = await totals(oms_env)
        assert balances["BTC"] == 0
        assert balances["USDT"] == usdt_total + Decimal("5150.0") - maker["fee"]
        await assert_ledger_invariants(oms_env)
        # Memory agrees with the database: a fresh OMS (rebuilt from the store) sees the same free balance.
    await oms_env.stop()
    await oms_env.start(paper_fee_rate=FEE_RATE)
    async with OmsClient(oms_env.target, CASH_KEY, timeout_s=10.0) as c:
        free = Decimal(next(b for b in (await c.account()).balances if b.asset == "USDT").free.value)
        assert free == usdt_total + Decimal("5150.0") - maker["fee"]
        too_much = (await c.submit("BTC-USDT", BUY, "0.3", price="51000")).order  # 15300 > ~10139 free
        assert too_much.reject_reason == S.REJECT_REASON_INSUFFICIENT_BALANCE
        fits = (await c.submit("BTC-USDT", BUY, "0.19", price="51000")).order  # 9690
        assert fits.status == S.ORDER_STATUS_ACCEPTED


async def test_replace_reserves_the_new_leaves(oms_env: OmsEnv) -> None:
    await open_cash_account(oms_env.dsn, {"USDT": "1000"})
    await oms_env.start()
    async with OmsClient(oms_env.target, CASH_KEY, timeout_s=10.0) as c:
        order = (await c.submit("ETH-USDT", BUY, "0.2", price="3000", client_order_id="e1")).order
        assert await locked(oms_env, order.order_id) == Decimal("600.0")
        with pytest.raises(Exception, match=r"INSUFFICIENT_BALANCE|insufficient"):
            await c.replace(order_id=order.order_id, quantity="0.4")
        assert await locked(oms_env, order.order_id) == Decimal("600.0"), (
            "a refused replace holds what it held"
        )
        await c.replace(order_id=order.order_id, quantity="0.3")
        assert await locked(oms_env, order.order_id) == Decimal("900.0")
        other = (await c.submit("ETH-USDT", BUY, "0.04", price="3000", client_order_id="e2")).order
        assert other.reject_reason == S.REJECT_REASON_INSUFFICIENT_BALANCE, "100 free, 120 needed"


async def _released(env: OmsEnv, order_id: str) -> bool:
    return await locked(env, order_id) is None


async def _touch_ask(env: OmsEnv, ask: str) -> bool:
    assert env.app is not None
    touch = env.app.market.touch("BTC-USDT")
    return touch is not None and touch.ask == Decimal(ask)


_ACTION = st.tuples(
    st.sampled_from(["limit", "market"]),
    st.sampled_from([BUY, SELL]),
    st.sampled_from(["0.01", "0.05", "0.1", "0.25"]),
    st.integers(min_value=-3, max_value=3),  # limit price: ticks of 10 from the touch (> 0 crosses)
)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # fmt: skip
@given(actions=st.lists(_ACTION, min_size=1, max_size=6))
async def test_ledger_invariants_hold_through_random_orders(
    oms: OmsEnv, actions: list[tuple[str, common_pb2.Side.ValueType, str, int]]
) -> None:
    """Random orders of a fresh cash account on the paper venue (some filled, some denied, the rest canceled):
    every asset's entries sum to its balance, every fill has its fee entry, nothing stays held, nothing is
    negative."""
    account = f"prop-{uuid.uuid4().hex[:12]}"
    key = f"key-{account}"
    conn = await asyncpg.connect(oms.dsn)
    try:
        await upsert_account(conn, account)
        await add_api_key(conn, account, key)
        await set_risk_limits(conn, account, max_open_orders=1000, rate_per_s=Decimal(1000), rate_burst=1000)
        for asset, amount in (("USDT", "8000"), ("BTC", "0.2")):
            await post_entry(
                conn,
                Entry(f"{account}-{asset}", account, asset, EntryType.DEPOSIT, Decimal(amount), "t", "t"),
            )
    finally:
        await conn.close()
    assert oms.app is not None
    ask = Decimal(50010) + len(actions)  # a new quote per example: fresh paper liquidity
    await publish_market(
        oms.kafka, oms.market_topic, [quote("BTC-USDT", str(ask - 20), "0.3", str(ask), "0.3")]
    )
    await eventually(lambda: _touch_ask(oms, str(ask)), what="the example's quote")
    async with OmsClient(oms.target, key, timeout_s=10.0) as c:
        ids = []
        for kind, side, quantity, ticks in actions:
            if kind == "market":
                order = (await c.submit("BTC-USDT", side, quantity, order_type=MARKET)).order
            else:
                touch = ask if side == BUY else ask - 20
                price = touch + Decimal(10 * ticks) * (1 if side == BUY else -1)
                order = (await c.submit("BTC-USDT", side, quantity, price=str(price))).order
            ids.append(order.order_id)
        for order_id in ids:
            current = await c.get(order_id=order_id)
            if current.status in (S.ORDER_STATUS_ACCEPTED, S.ORDER_STATUS_PARTIALLY_FILLED):
                try:
                    await c.cancel(order_id=order_id)
                except grpc.aio.AioRpcError as exc:  # it finished meanwhile (filled)
                    assert exc.code() is grpc.StatusCode.FAILED_PRECONDITION, exc

        async def all_done() -> bool:
            for order_id in ids:
                order = await c.get(order_id=order_id)
                if order.status not in (
                    S.ORDER_STATUS_FILLED, S.ORDER_STATUS_CANCELED, S.ORDER_STATUS_DENIED,
                    S.ORDER_STATUS_REJECTED, S.ORDER_STATUS_EXPIRED,
                ):  # fmt: skip
                    return False
            return True

        await eventually(all_done, timeout_s=30, what="every order finished")
    held = await oms.sql("SELECT count(*) AS n FROM balance_reservations WHERE account_id = $1", account)
    assert held[0]["n"] == 0, "finished orders hold nothing"
    await assert_ledger_invariants(oms, account, need_fills=False)


async def test_instrument_and_account_fee_rates_and_paper_slippage(oms_env: OmsEnv) -> None:
    await open_cash_account(oms_env.dsn, {"USDT": "10000"})
    conn = await asyncpg.connect(oms_env.dsn)
    try:
        btc = next(i for i in DEMO_INSTRUMENTS if i.symbol == "BTC-USDT")
        await upsert_instrument(
            conn, replace(btc, maker_fee_rate=Decimal("0.0002"), taker_fee_rate=Decimal("0.001"))
        )
        # The account's override: taker only (maker stays the instrument's).
        await conn.execute("UPDATE accounts SET taker_fee_rate = 0.0005 WHERE account_id = 'cash'")
    finally:
        await conn.close()
    await oms_env.start(paper_slippage_bps=Decimal(10), paper_fee_rate=Decimal("0.1"))
    assert oms_env.app is not None
    await publish_market(oms_env.kafka, oms_env.market_topic, [quote("BTC-USDT", "49990", "1", "50010", "1")])
    await eventually(lambda: _touch_ask(oms_env, "50010"), what="the quote")
    async with OmsClient(oms_env.target, CASH_KEY, timeout_s=10.0) as c:
        [listed] = [i for i in await c.instruments() if i.symbol == "BTC-USDT"]
        assert (listed.maker_fee_rate.value, listed.taker_fee_rate.value) == ("0.0002", "0.001")
        # A resting buy holds its notional plus the fee at the higher of its rates (0.0005), rounded up.
        resting = (await c.submit("BTC-USDT", BUY, "0.1", price="49000", client_order_id="r")).order
        assert await locked(oms_env, resting.order_id) == Decimal("4900.0") + Decimal("2.45")
        await c.cancel(order_id=resting.order_id)
        # A taker fill: 10 bps of slippage from the touch, the account's taker rate.
        taken = (await c.submit("BTC-USDT", BUY, "0.1", order_type=MARKET, client_order_id="t")).order
        taken = await wait_status(c, taken.order_id, S.ORDER_STATUS_FILLED, "the market buy")
        slipped = Decimal("50010") * Decimal("1.001")
        assert Decimal(taken.average_fill_price.value) == slipped
        [fill] = await oms_env.sql("SELECT fee, liquidity FROM fills WHERE order_id = $1", taken.order_id)
        assert (fill["liquidity"], fill["fee"]) == ("TAKER", Decimal("0.1") * slipped * Decimal("0.0005"))
        # A maker fill: the instrument's maker rate, no slippage.
        ask = (await c.submit("BTC-USDT", SELL, "0.1", price="50500", client_order_id="m")).order
        await publish_market(
            oms_env.kafka, oms_env.market_topic, [quote("BTC-USDT", "50600", "1", "50610", "1")]
        )
        ask = await wait_status(c, ask.order_id, S.ORDER_STATUS_FILLED, "the resting sell")
        assert ask.average_fill_price.value == "50500"
        [maker] = await oms_env.sql("SELECT fee, liquidity FROM fills WHERE order_id = $1", ask.order_id)
        assert (maker["liquidity"], maker["fee"]) == ("MAKER", Decimal("5050.0") * Decimal("0.0002"))
    await assert_ledger_invariants(oms_env)


async def test_withdrawals_racing_reservations_never_take_free_below_zero(oms_env: OmsEnv) -> None:
    """An operator's withdrawal fired among concurrent orders of a cash account: whichever wins, the funds are
    never promised twice - no order reserves what a withdrawal took, no withdrawal takes what an order holds
    (also while that order's commit is still in flight). Checked in the database after every round."""
    await open_cash_account(oms_env.dsn, {})
    conn = await asyncpg.connect(oms_env.dsn)
    try:
        await add_operator_token(conn, "ops", OPERATOR_TOKEN)
    finally:
        await conn.close()
    await oms_env.start()
    withdrawn = accepted = 0
    async with AdminClient(oms_env.target, OPERATOR_TOKEN) as ops, oms_env.client(CASH_KEY) as c:

        async def buy() -> bool:  # holds 100 USDT (no fee rate set)
            response = await c.submit("ETH-USDT", BUY, "0.1", price="1000")
            assert response.order.status in (S.ORDER_STATUS_ACCEPTED, S.ORDER_STATUS_DENIED)
            if response.order.status == S.ORDER_STATUS_DENIED:
                assert response.order.reject_reason == S.REJECT_REASON_INSUFFICIENT_BALANCE
            return bool(response.order.status == S.ORDER_STATUS_ACCEPTED)

        async def withdraw(amount: str) -> bool:
            try:
                await ops.post_ledger_entry("cash", "USDT", WITHDRAWAL, amount, "race")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() is grpc.StatusCode.FAILED_PRECONDITION, exc
                assert "insufficient USDT" in (exc.details() or "")
                return False
            return True

        for round_ in range(20):
            await ops.post_ledger_entry("cash", "USDT", DEPOSIT, "1000", "round")
            calls = [buy() for _ in range(5)] + [withdraw("600")] + [buy() for _ in range(5)]
            outcomes = await asyncio.gather(*calls)
            took = outcomes.pop(5)
            withdrawn += took
            accepted += sum(outcomes)
            # The round started with 1000 free: 10 x 100 held, or the withdrawal and at most 4 orders.
            assert sum(outcomes) * 100 + (600 if took else 0) <= 1000, (round_, took, outcomes)
            [row] = await oms_env.sql(
                "SELECT b.total, coalesce((SELECT sum(amount) FROM balance_reservations r"
                " WHERE r.account_id = b.account_id AND r.asset = b.asset), 0) AS locked"
                " FROM balances b WHERE b.account_id = 'cash' AND b.asset = 'USDT'"
            )
            assert row["total"] - row["locked"] >= 0, (round_, row["total"], row["locked"])
            # What is left free is taken out, so that every round starts from 1000 free.
            left = row["total"] - row["locked"]
            if left > 0:
                assert await withdraw(str(left)), "the free balance can be withdrawn"
            assert Decimal((await c.account()).balances[0].free.value) == 0
    print(f"{withdrawn} withdrawals and {accepted} orders won their rounds")
    assert withdrawn and accepted, "both sides won some rounds: the race was run"
    await assert_ledger_invariants(oms_env, need_fills=False)
