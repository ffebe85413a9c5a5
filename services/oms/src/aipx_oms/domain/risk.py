"""Pre-trade risk: the checks a well-formed order must pass, each failing with a RejectReason.

Plain code: the caller supplies the account's state, limits and exposure, the market snapshot and the
rate-limit verdict (obtained from the rate limiter adapter through the RateLimiter interface).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Protocol

from aipx_oms.domain.ledger import AccountLedger, InsufficientBalanceError, order_reservation
from aipx_oms.domain.model import ZERO, AccountState, Instrument, OrderType, RejectReason, Side

BPS = Decimal(10_000)


class RateVerdict(Enum):
    ALLOWED = "allowed"
    LIMITED = "limited"


class RateLimiter(Protocol):
    """Grants or refuses one order of an account under a token bucket of `rate_per_s` refilling to `burst`."""

    async def acquire(self, account_id: str, rate_per_s: Decimal, burst: int) -> RateVerdict: ...


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """An account's limits. Position limits are per symbol: a quantity where set, else a notional."""

    max_order_notional: Decimal
    max_position_notional: Decimal
    max_open_orders: int
    rate_per_s: Decimal
    rate_burst: int
    price_band_bps: Decimal
    max_position_quantity: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """What the OMS last saw of an instrument's market (None: not seen)."""

    last_trade: Decimal | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Exposure:
    """An account's exposure in one symbol: its position and the leaves of its working orders."""

    position: Decimal = ZERO
    open_buy: Decimal = ZERO
    open_sell: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class RiskCheck:
    """The order under test, already validated."""

    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None
    reduce_only: bool
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Denial:
    reason: RejectReason
    message: str


def reference_price(check: RiskCheck, market: MarketSnapshot) -> Decimal | None:
    """The price a notional is valued at: the limit price, else the stop price (a STOP order trades about
    there once triggered), else the touch the order would take, else the last trade."""
    if check.price is not None:
        return check.price
    if check.stop_price is not None:
        return check.stop_price
    touch = market.ask if check.side is Side.BUY else market.bid
    return touch if touch is not None else market.last_trade


def reduces_position(check: RiskCheck, exposure: Exposure) -> bool:
    """True when the order can only shrink the position (never flip or extend it)."""
    if check.side is Side.BUY:
        return exposure.position < ZERO and check.quantity + exposure.open_buy <= -exposure.position
    return exposure.position > ZERO and check.quantity + exposure.open_sell <= exposure.position


def check_order(
    check: RiskCheck,
    *,
    instrument: Instrument,
    account_state: AccountState,
    limits: RiskLimits,
    exposure: Exposure,
    open_orders: int,
    market: MarketSnapshot,
    rate: RateVerdict,
    platform_halted: bool = False,
) -> Denial | None:
    """The first risk rule the order breaks, or None when it may go to the venue."""
    if platform_halted:
        return Denial(RejectReason.ACCOUNT_HALTED, "the platform is halted: only cancels are accepted")
    if account_state is AccountState.HALTED:
        return Denial(RejectReason.ACCOUNT_HALTED, "account is halted: only cancels are accepted")
    if not instrument.trading:
        return Denial(RejectReason.INSTRUMENT_NOT_TRADING, f"{instrument.symbol} is not trading")
    if rate is RateVerdict.LIMITED:
        return Denial(
            RejectReason.RATE_LIMITED,
            f"more than {limits.rate_per_s}/s orders (burst {limits.rate_burst}) for this account",
        )
    if check.quantity < instrument.min_quantity:
        return Denial(
            RejectReason.QUANTITY_BELOW_MINIMUM,
            f"quantity {check.quantity} is below the minimum {instrument.min_quantity}",
        )
    reduces = reduces_position(check, exposure)
    if account_state is AccountState.REDUCING and not reduces:
        return Denial(RejectReason.ACCOUNT_REDUCING, "account is reducing: only position-reducing orders")
    if check.reduce_only and not reduces:
        return Denial(
            RejectReason.REDUCE_ONLY_VIOLATION,
            f"reduce-only {check.side} {check.quantity} would not reduce position {exposure.position} "
            f"(working buys {exposure.open_buy}, sells {exposure.open_sell})",
        )
    price = reference_price(check, market)
    if price is None:
        return Denial(
            RejectReason.NO_MARKET_DATA, f"no market data for {check.symbol} to value a market order"
        )
    notional = price * check.quantity
    if notional < instrument.min_notional:
        return Denial(
            RejectReason.MIN_NOTIONAL_NOT_MET,
            f"notional {notional} is below the minimum {instrument.min_notional}",
        )
    if notional > limits.max_order_notional:
        return Denial(
            RejectReason.MAX_NOTIONAL_EXCEEDED,
            f"notional {notional} exceeds the per-order limit {limits.max_order_notional}",
        )
    limit_priced = check.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    if limit_priced and check.price is not None and market.last_trade is not None:
        band = abs(check.price - market.last_trade) * BPS / market.last_trade
        if band > limits.price_band_bps:
            return Denial(
                RejectReason.PRICE_BAND_EXCEEDED,
                f"price {check.price} is {band:.1f} bps from the last trade {market.last_trade} "
                f"(band {limits.price_band_bps} bps)",
            )
    if open_orders >= limits.max_open_orders:
        return Denial(
            RejectReason.MAX_OPEN_ORDERS_EXCEEDED,
            f"{open_orders} open orders (limit {limits.max_open_orders})",
        )
    if not reduces:
        # Worst case: every working order on this side fills too.
        if check.side is Side.BUY:
            worst = exposure.position + exposure.open_buy + check.quantity
        else:
            worst = exposure.position - exposure.open_sell - check.quantity
        cap_quantity = limits.max_position_quantity.get(check.symbol)
        if cap_quantity is not None:
            if abs(worst) > cap_quantity:
                return Denial(
                    RejectReason.MAX_POSITION_EXCEEDED,
                    f"position could reach {worst} {check.symbol} (limit {cap_quantity})",
                )
        elif abs(worst) * price > limits.max_position_notional:
            return Denial(
                RejectReason.MAX_POSITION_EXCEEDED,
                f"position could reach {worst} {check.symbol}, notional {abs(worst) * price} "
                f"(limit {limits.max_position_notional})",
            )
    return None


def reservation_price(check: RiskCheck, market: MarketSnapshot, price_band_bps: Decimal) -> Decimal | None:
    """The price an order's funds are reserved at: its limit price; for a market (or stop) order the
    reference price (`reference_price`) moved against the order by the price band, i.e. x (1 + band/10^4)
    for a buy (the most the band lets it pay). Dividing by 10^4 is exact in decimal (a power of ten); the
    product is at the decimal context's 28 significant digits, ROUND_HALF_EVEN."""
    if check.price is not None:
        return check.price
    price = reference_price(check, market)
    if price is None or check.side is Side.SELL:
        return price
    return price * (1 + price_band_bps / BPS)


def check_funds(
    ledger: AccountLedger, order_id: str, check: RiskCheck, *, instrument: Instrument, price: Decimal,
    fee_rate: Decimal,
) -> Denial | None:  # fmt: skip
    """Reserve the order's funds in `ledger` (a buy: quote notional plus its fee at `fee_rate`; a sell: the
    base quantity), or the INSUFFICIENT_BALANCE denial when the free balance does not cover them. Accounts
    that may go negative hold nothing (their orders are not limited by balance)."""
    if ledger.allow_negative:
        return None
    reservation = order_reservation(
        order_id,
        check.side,
        check.quantity,
        price,
        base_asset=instrument.base_asset,
        quote_asset=instrument.quote_asset,
        fee_rate=fee_rate,
    )
    try:
        ledger.reserve(reservation)
    except InsufficientBalanceError as exc:
        return Denial(RejectReason.INSUFFICIENT_BALANCE, str(exc))
    return None
