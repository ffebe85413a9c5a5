"""The order path's money rules without I/O: the price a reservation is held at, the funds check (reserve or
INSUFFICIENT_BALANCE), the book releasing a finished order's reservation, and an order's fee rates."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from aipx_oms.domain.book import AccountBook
from aipx_oms.domain.ledger import AccountLedger, Reservation, fill_entries
from aipx_oms.domain.model import (
    AccountState,
    Instrument,
    Order,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from aipx_oms.domain.risk import MarketSnapshot, RiskCheck, RiskLimits, check_funds, reservation_price

BTC = Instrument(
    "BTC-USDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), Decimal(5)
)
MARKET = MarketSnapshot(last_trade=Decimal(100), bid=Decimal(99), ask=Decimal(101))
LIMITS = RiskLimits(Decimal(10**9), Decimal(10**9), 100, Decimal(100), 100, Decimal(500))


def check(side: Side, quantity: str, price: str | None = None) -> RiskCheck:
    kind = OrderType.LIMIT if price else OrderType.MARKET
    return RiskCheck("BTC-USDT", side, kind, Decimal(quantity), Decimal(price) if price else None, False)


def test_reservation_price_limit_market_buy_and_sell() -> None:
    assert reservation_price(check(Side.BUY, "1", "95"), MARKET, Decimal(500)) == Decimal(95)
    # A market buy: the ask moved up by the 500 bps band.
    assert reservation_price(check(Side.BUY, "1"), MARKET, Decimal(500)) == Decimal("106.05")
    assert reservation_price(check(Side.SELL, "1"), MARKET, Decimal(500)) == Decimal(99)
    assert reservation_price(check(Side.BUY, "1"), MarketSnapshot(), Decimal(500)) is None


def test_check_funds_reserves_or_denies_and_margin_accounts_skip() -> None:
    ledger = AccountLedger("a", totals={"USDT": Decimal(1000), "BTC": Decimal("0.5")})
    assert check_funds(ledger, "o1", check(Side.BUY, "5", "100"), instrument=BTC, price=Decimal(100),
                       fee_rate=Decimal("0.001")) is None  # fmt: skip
    assert ledger.reservations["o1"] == Reservation("o1", "USDT", Decimal("500.5"))
    denial = check_funds(ledger, "o2", check(Side.BUY, "5", "100"), instrument=BTC, price=Decimal(100),
                         fee_rate=Decimal("0.001"))  # fmt: skip
    assert denial is not None and denial.reason is RejectReason.INSUFFICIENT_BALANCE
    assert "o2" not in ledger.reservations and ledger.free("USDT") == Decimal("499.5")
    assert check_funds(ledger, "o3", check(Side.SELL, "0.5", "100"), instrument=BTC, price=Decimal(100),
                       fee_rate=Decimal(0)) is None  # fmt: skip
    assert ledger.free("BTC") == 0
    margin = AccountLedger("m", allow_negative=True)
    assert check_funds(margin, "o", check(Side.BUY, "5", "100"), instrument=BTC, price=Decimal(100),
                       fee_rate=Decimal(0)) is None  # fmt: skip
    assert margin.reservations == {}


def test_book_releases_a_finished_orders_reservation_and_fills_draw_from_it() -> None:
    book = AccountBook(
        "a", AccountState.ACTIVE, LIMITS, ledger=AccountLedger("a", totals={"USDT": Decimal(1000)})
    )
    book.ledger.reserve(Reservation("o1", "USDT", Decimal(500)))
    order = Order("o1", "a", "c1", "BTC-USDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, Decimal(5),
                  Decimal(100), None, False, False, "paper", OrderStatus.ACCEPTED, 1, 1)  # fmt: skip
    book.track(order)
    entries = fill_entries(account_id="a", order_id="o1", fill_id="f1", side=Side.BUY, base_asset="BTC",
                           quote_asset="USDT", quantity=Decimal(2), price=Decimal(99), fee=Decimal("0.2"),
                           fee_asset="USDT", time_ns=1)  # fmt: skip
    book.ledger.settle_fill(entries, final=False)
    assert book.ledger.total("USDT") == Decimal("801.8") and book.ledger.locked("USDT") == Decimal("301.8")
    book.track(replace(order, status=OrderStatus.CANCELED))
    assert book.ledger.locked("USDT") == 0 and book.ledger.free("USDT") == Decimal("801.8")
