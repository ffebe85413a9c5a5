"""aipx.matching directly: maker/taker fees, slippage, time priority lost on replace, bad orders refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aipx.matching import (
    FeeSchedule,
    Fill,
    Kind,
    Liquidity,
    MatchingEngine,
    RejectCode,
    Rejected,
    RestingOrder,
    Side,
    TimeInForce,
)

D = Decimal


def limit(order_id: str, side: Side, price: str, qty: str = "1") -> RestingOrder:
    return RestingOrder(order_id, "X-USDT", side, Kind.LIMIT, D(qty), price=D(price))


def test_taker_fills_pay_slippage_and_the_taker_rate_makers_their_price_and_rate() -> None:
    engine = MatchingEngine(FeeSchedule(maker_rate=D("0.0001"), taker_rate=D("0.001"), slippage_bps=D(10)))
    assert engine.on_quote("X-USDT", D(99), D(5), D(101), D(5)) == []
    [buy] = engine.submit(
        RestingOrder("m", "X-USDT", Side.BUY, Kind.MARKET, D(2), time_in_force=TimeInForce.IOC)
    )
    assert isinstance(buy, Fill) and buy.liquidity is Liquidity.TAKER
    assert buy.price == D("101.101")  # 101 x (1 + 10 bps), exact
    assert buy.fee == D(2) * D("101.101") * D("0.001")
    assert engine.submit(limit("rest", Side.SELL, "102")) == []
    [maker] = engine.on_quote("X-USDT", D(102), D(1), D(103), D(1))
    assert isinstance(maker, Fill) and (maker.price, maker.liquidity) == (D(102), Liquidity.MAKER)
    assert maker.fee == D(102) * D("0.0001") and maker.leaves == 0


def test_slippage_never_moves_a_crossing_limit_order_past_its_own_price() -> None:
    """A marketable limit buy at 101.05 against an ask of 101 with 10 bps of slippage would pay 101.101: it
    pays its limit instead (it never pays more than it said, nor spends more than its cash reservation); a
    limit with room pays the slipped price; the same holds for sells."""
    engine = MatchingEngine(FeeSchedule(taker_rate=D("0.001"), slippage_bps=D(10)))
    engine.on_quote("X-USDT", D(99), D(10), D(101), D(10))
    [capped] = engine.submit(limit("buy-tight", Side.BUY, "101.05"))
    assert isinstance(capped, Fill) and capped.price == D("101.05") and capped.liquidity is Liquidity.TAKER
    [room] = engine.submit(limit("buy-loose", Side.BUY, "102"))
    assert isinstance(room, Fill) and room.price == D("101.101")
    [floor] = engine.submit(limit("sell-tight", Side.SELL, "98.95"))
    assert isinstance(floor, Fill) and floor.price == D("98.95")  # 99 x (1 - 10 bps) = 98.901 < 98.95
    [slipped] = engine.submit(limit("sell-loose", Side.SELL, "98"))
    assert isinstance(slipped, Fill) and slipped.price == D("98.901")


def test_a_replaced_order_goes_behind_orders_at_its_price() -> None:
    engine = MatchingEngine()
    engine.on_quote("X-USDT", D(90), D(1), D(110), D(1))
    engine.submit(limit("a", Side.BUY, "100"))
    engine.submit(limit("b", Side.BUY, "100"))
    assert engine.replace("a", leaves=D(1), price=D(100)) == []
    fills = engine.on_trade("X-USDT", D(99), D(1))
    assert [f.order_id for f in fills if isinstance(f, Fill)] == ["b"]


def test_market_orders_without_a_quote_are_rejected_and_bad_orders_refused() -> None:
    engine = MatchingEngine()
    [rejected] = engine.submit(RestingOrder("m", "X-USDT", Side.BUY, Kind.MARKET, D(1)))
    assert isinstance(rejected, Rejected) and rejected.code is RejectCode.NO_MARKET_DATA
    with pytest.raises(ValueError, match="needs a price"):
        RestingOrder("l", "X-USDT", Side.BUY, Kind.LIMIT, D(1))
    with pytest.raises(ValueError, match="must be > 0"):
        limit("z", Side.BUY, "100", qty="0")
    with pytest.raises(ValueError, match="finite Decimal"):
        FeeSchedule(taker_rate=D("NaN"))
    engine.submit(limit("dup", Side.BUY, "1"))
    with pytest.raises(ValueError, match="already in the book"):
        engine.submit(limit("dup", Side.BUY, "1"))
