"""Plain domain rules: validation (field violations), pre-trade risk (each reason), positions, the book."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from aipx_oms.domain.book import AccountBook
from aipx_oms.domain.model import (
    AccountState,
    Instrument,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    RejectReason,
    Side,
    TimeInForce,
)
from aipx_oms.domain.risk import Exposure, MarketSnapshot, RateVerdict, RiskCheck, RiskLimits, check_order
from aipx_oms.domain.validation import validate_order

D = Decimal
BTC = Instrument("BTC-USDT", "BTC", "USDT", D("0.01"), D("0.001"), D("0.001"), D("5"))
INSTRUMENTS = {BTC.symbol: BTC}
LIMITS = RiskLimits(
    max_order_notional=D("100000"),
    max_position_notional=D("200000"),
    max_open_orders=3,
    rate_per_s=D("10"),
    rate_burst=10,
    price_band_bps=D("500"),
)
NO_EXPOSURE = Exposure()
MARKET = MarketSnapshot(last_trade=D("50000"), bid=D("49999"), ask=D("50001"))


def request(**changes: object) -> OrderRequest:
    fields: dict[str, object] = {
        "client_order_id": "c-1",
        "symbol": "BTC-USDT",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "time_in_force": TimeInForce.GTC,
        "quantity": D("0.5"),
        "price": D("50000.00"),
    }
    fields.update(changes)
    return OrderRequest(**fields)  # type: ignore[arg-type]


def fields_of(req: OrderRequest) -> dict[str, str]:
    return {v.field: v.description for v in validate_order(req, INSTRUMENTS, {"paper"})}


def test_a_well_formed_request_has_no_violations() -> None:
    assert fields_of(request()) == {}
    assert fields_of(request(type=OrderType.MARKET, price=None)) == {}
    assert fields_of(request(type=OrderType.STOP, price=None, stop_price=D("49000"))) == {}
    assert fields_of(request(type=OrderType.STOP_LIMIT, stop_price=D("49000"))) == {}


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"client_order_id": ""}, "order.client_order_id", "required"),
        ({"client_order_id": "x" * 65}, "order.client_order_id", "longer than 64"),
        ({"client_order_id": "bad id!"}, "order.client_order_id", "may contain only"),
        ({"symbol": "DOGE-USDT"}, "order.symbol", "UNKNOWN_INSTRUMENT"),
        ({"symbol": ""}, "order.symbol", "required"),
        ({"quantity": D("0")}, "order.quantity", "must be positive"),
        ({"quantity": D("-1")}, "order.quantity", "must be positive"),
        ({"quantity": None}, "order.quantity", "required"),
        ({"quantity": D("0.0015")}, "order.quantity", "INVALID_QUANTITY_INCREMENT"),
        ({"price": D("50000.005")}, "order.price", "INVALID_PRICE_INCREMENT"),
        ({"price": None}, "order.price", "required"),
        ({"type": OrderType.MARKET}, "order.price", "must be empty"),
        ({"side": None}, "order.side", "required"),
        ({"type": None, "price": None}, "order.type", "required"),
        ({"time_in_force": None}, "order.time_in_force", "required"),
        ({"venue": "nyse"}, "order.venue", "unknown or disabled venue"),
        ({"type": OrderType.MARKET, "price": None, "post_only": True}, "order.post_only", "only LIMIT"),
        ({"stop_price": D("1")}, "order.stop_price", "only for STOP"),
        ({"type": OrderType.STOP, "price": None}, "order.stop_price", "required"),
        ({"type": OrderType.STOP, "stop_price": D("49000")}, "order.price", "must be empty"),
        ({"type": OrderType.STOP_LIMIT, "stop_price": D("-1")}, "order.stop_price", "must be positive"),
        (
            {"type": OrderType.STOP_LIMIT, "stop_price": D("49000.001")},
            "order.stop_price",
            "INVALID_PRICE_INCR",
        ),
        ({"type": OrderType.STOP_LIMIT, "price": None, "stop_price": D("49000")}, "order.price", "required"),
        ({"tags": {f"k{i}": "v" for i in range(40)}}, "order.tags", "more than"),
    ],
)
def test_each_invalid_field_is_named(changes: dict[str, object], field: str, text: str) -> None:
    violations = fields_of(request(**changes))
    assert field in violations, violations
    assert text in violations[field]


def risk(
    check: RiskCheck | None = None,
    *,
    state: AccountState = AccountState.ACTIVE,
    exposure: Exposure = NO_EXPOSURE,
    open_orders: int = 0,
    market: MarketSnapshot = MARKET,
    rate: RateVerdict = RateVerdict.ALLOWED,
    limits: RiskLimits = LIMITS,
    instrument: Instrument = BTC,
) -> RejectReason | None:
    check = check or RiskCheck("BTC-USDT", Side.BUY, OrderType.LIMIT, D("0.5"), D("50000"), False)
    denial = check_order(
        check,
        instrument=instrument,
        account_state=state,
        limits=limits,
        exposure=exposure,
        open_orders=open_orders,
        market=market,
        rate=rate,
    )
    return None if denial is None else denial.reason


def test_risk_passes_an_ordinary_order() -> None:
    assert risk() is None


def test_each_risk_reason() -> None:
    buy = RiskCheck("BTC-USDT", Side.BUY, OrderType.LIMIT, D("0.5"), D("50000"), False)
    assert risk(state=AccountState.HALTED) is RejectReason.ACCOUNT_HALTED
    assert risk(state=AccountState.REDUCING) is RejectReason.ACCOUNT_REDUCING
    assert risk(
        instrument=Instrument("BTC-USDT", "BTC", "USDT", D("0.01"), D("0.001"), D("0.001"), D("5"), False)
    ) is (RejectReason.INSTRUMENT_NOT_TRADING)
    assert risk(rate=RateVerdict.LIMITED) is RejectReason.RATE_LIMITED
    tiny = RiskCheck("BTC-USDT", Side.BUY, OrderType.LIMIT, D("0.0001"), D("50000"), False)
    assert risk(tiny) is RejectReason.QUANTITY_BELOW_MINIMUM
    cheap = RiskCheck("BTC-USDT", Side.BUY, OrderType.LIMIT, D("0.001"), D("4000"), False)
    assert risk(cheap, market=MarketSnapshot()) is RejectReason.MIN_NOTIONAL_NOT_MET
    big = RiskCheck("BTC-USDT", Side.BUY, OrderType.LIMIT, D("3"), D("50000"), False)
    assert risk(big) is RejectReason.MAX_NOTIONAL_EXCEEDED
    far = RiskCheck("BTC-USDT", Side.BUY, OrderType.LIMIT, D("0.5"), D("56000"), False)
    assert risk(far) is RejectReason.PRICE_BAND_EXCEEDED
    assert risk(far, market=MarketSnapshot()) is None  # no last trade: no band to apply
    assert risk(open_orders=3) is RejectReason.MAX_OPEN_ORDERS_EXCEEDED
    assert risk(exposure=Exposure(position=D("3"), open_buy=D("0.6"))) is RejectReason.MAX_POSITION_EXCEEDED
    capped = replace(LIMITS, max_position_quantity={"BTC-USDT": D("0.4")})
    assert risk(buy, limits=capped) is RejectReason.MAX_POSITION_EXCEEDED
    reduce_buy = RiskCheck("BTC-USDT", Side.BUY, OrderType.LIMIT, D("0.5"), D("50000"), True)
    assert risk(reduce_buy) is RejectReason.REDUCE_ONLY_VIOLATION
    assert risk(reduce_buy, exposure=Exposure(position=D("-1"))) is None
    assert risk(reduce_buy, exposure=Exposure(position=D("-1"), open_buy=D("0.6"))) is (
        RejectReason.REDUCE_ONLY_VIOLATION
    )
    market_buy = RiskCheck("BTC-USDT", Side.BUY, OrderType.MARKET, D("0.5"), None, False)
    assert risk(market_buy, market=MarketSnapshot()) is RejectReason.NO_MARKET_DATA
    assert risk(market_buy) is None


def test_stop_orders_are_valued_at_their_stop_or_limit_price() -> None:
    # 1.9 BTC is 95,000 at the market (50,000) but 114,000 at a 60,000 stop: over the 100,000 notional cap.
    stop = RiskCheck("BTC-USDT", Side.BUY, OrderType.STOP, D("1.9"), None, False, stop_price=D("60000"))
    assert risk(stop) is RejectReason.MAX_NOTIONAL_EXCEEDED
    assert risk(replace(stop, stop_price=D("51000"))) is None
    assert risk(replace(stop, stop_price=D("51000")), market=MarketSnapshot()) is None, "no quote needed"
    # A STOP_LIMIT's limit price is checked against the band like a LIMIT's; its stop price is not.
    stop_limit = RiskCheck("BTC-USDT", Side.SELL, OrderType.STOP_LIMIT, D("0.5"), D("44000"), False, D("4e4"))
    assert risk(stop_limit) is RejectReason.PRICE_BAND_EXCEEDED
    assert risk(replace(stop_limit, price=D("48000"), stop_price=D("30000"))) is None


def test_reducing_account_may_reduce_and_halted_may_not_trade_at_all() -> None:
    sell = RiskCheck("BTC-USDT", Side.SELL, OrderType.LIMIT, D("0.5"), D("50000"), False)
    assert risk(sell, state=AccountState.REDUCING, exposure=Exposure(position=D("1"))) is None
    assert (
        risk(sell, state=AccountState.HALTED, exposure=Exposure(position=D("1")))
        is RejectReason.ACCOUNT_HALTED
    )


def test_position_average_price_realized_pnl_and_flip() -> None:
    p = Position("a", "BTC-USDT")
    p = p.apply_fill(Side.BUY, D("1"), D("100"), D("0"), 1)
    p = p.apply_fill(Side.BUY, D("1"), D("110"), D("0"), 2)
    assert (p.quantity, p.average_price, p.realized_pnl) == (D(2), D(105), D(0))
    p = p.apply_fill(Side.SELL, D("0.5"), D("120"), D("0.1"), 3)
    assert (p.quantity, p.average_price, p.realized_pnl) == (D("1.5"), D(105), D("7.4"))
    p = p.apply_fill(Side.SELL, D("2.5"), D("100"), D("0"), 4)  # closes 1.5 at -5 each, opens 1 short at 100
    assert (p.quantity, p.average_price, p.realized_pnl) == (D("-1"), D(100), D("-0.1"))
    p = p.apply_fill(Side.BUY, D("1"), D("90"), D("0"), 5)
    assert (p.quantity, p.average_price, p.realized_pnl) == (D(0), D(0), D("9.9"))


def _order(order_id: str, side: Side, quantity: str, status: OrderStatus = OrderStatus.ACCEPTED) -> Order:
    return Order(
        order_id, "a", order_id, "BTC-USDT", side, OrderType.LIMIT, TimeInForce.GTC, D(quantity), D("1"),
        None,
        False, False, "paper", status, 1, 1,
    )  # fmt: skip


def test_book_tracks_working_leaves_incrementally() -> None:
    book = AccountBook("a", AccountState.ACTIVE, LIMITS)
    book.track(_order("1", Side.BUY, "2"))
    book.track(_order("2", Side.SELL, "3"))
    assert book.exposure("BTC-USDT") == Exposure(D(0), D(2), D(3))
    book.track(_order("1", Side.BUY, "2", OrderStatus.FILLED))
    book.release("2")
    assert book.exposure("BTC-USDT") == Exposure(D(0), D(0), D(0))
    assert book.open_order_count == 0


def test_a_book_halted_with_cancel_all_cancels_what_goes_live() -> None:
    book = AccountBook("a", AccountState.HALTED, LIMITS)
    live = _order("1", Side.BUY, "2", OrderStatus.ACCEPTED)
    assert not book.cancels(live), "halted without cancel-all: working orders stay"
    book.cancel_working = True
    assert book.cancels(live)
    assert book.cancels(_order("1", Side.BUY, "2", OrderStatus.PARTIALLY_FILLED))
    for status in (OrderStatus.PENDING_CANCEL, OrderStatus.CANCELED, OrderStatus.FILLED, OrderStatus.DENIED):
        assert not book.cancels(_order("1", Side.BUY, "2", status)), status
    book.state = AccountState.ACTIVE  # a later state change clears the flag in the store; memory follows
    assert not book.cancels(live)
