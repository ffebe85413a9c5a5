"""Domain types of the OMS. Enum values are the protobuf enum names without their prefix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from aipx.money import weighted_average

ZERO = Decimal(0)


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for buys, -1 for sells (the direction a fill moves the position)."""
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    DAY = "DAY"


class OrderStatus(StrEnum):
    PENDING_NEW = "PENDING_NEW"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_open(self) -> bool:
        """Working at (or on its way to) the venue."""
        return self in OPEN_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.DENIED,
        OrderStatus.EXPIRED,
    }
)
OPEN_STATUSES = frozenset({OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL})


class RejectReason(StrEnum):
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    INVALID_PRICE_INCREMENT = "INVALID_PRICE_INCREMENT"
    INVALID_QUANTITY_INCREMENT = "INVALID_QUANTITY_INCREMENT"
    QUANTITY_BELOW_MINIMUM = "QUANTITY_BELOW_MINIMUM"
    MAX_NOTIONAL_EXCEEDED = "MAX_NOTIONAL_EXCEEDED"
    MAX_POSITION_EXCEEDED = "MAX_POSITION_EXCEEDED"
    MAX_OPEN_ORDERS_EXCEEDED = "MAX_OPEN_ORDERS_EXCEEDED"
    RATE_LIMITED = "RATE_LIMITED"
    PRICE_BAND_EXCEEDED = "PRICE_BAND_EXCEEDED"
    ACCOUNT_HALTED = "ACCOUNT_HALTED"
    ACCOUNT_REDUCING = "ACCOUNT_REDUCING"
    REDUCE_ONLY_VIOLATION = "REDUCE_ONLY_VIOLATION"
    POST_ONLY_WOULD_CROSS = "POST_ONLY_WOULD_CROSS"
    NO_MARKET_DATA = "NO_MARKET_DATA"
    FOK_NOT_FILLABLE = "FOK_NOT_FILLABLE"
    VENUE_REJECTED = "VENUE_REJECTED"
    ORDER_NOT_OPEN = "ORDER_NOT_OPEN"
    INSTRUMENT_NOT_TRADING = "INSTRUMENT_NOT_TRADING"
    MIN_NOTIONAL_NOT_MET = "MIN_NOTIONAL_NOT_MET"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"


class EventType(StrEnum):
    ACCEPTED = "ACCEPTED"
    DENIED = "DENIED"
    REJECTED = "REJECTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    CANCEL_REJECTED = "CANCEL_REJECTED"
    EXPIRED = "EXPIRED"
    REPLACED = "REPLACED"
    REPLACE_REJECTED = "REPLACE_REJECTED"


class AccountState(StrEnum):
    """Trading state of an account: the kill switch. Cancels are allowed in every state."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class Liquidity(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradeable instrument with its increments."""

    symbol: str
    base_asset: str
    quote_asset: str
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal
    min_notional: Decimal
    trading: bool = True
    # Fractions of a fill's notional: MAKER when a resting order is taken, TAKER when an order takes.
    maker_fee_rate: Decimal = Decimal(0)
    taker_fee_rate: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a client asks for (already parsed from the wire, not yet validated)."""

    client_order_id: str
    symbol: str
    side: Side | None
    type: OrderType | None
    time_in_force: TimeInForce | None
    quantity: Decimal | None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    reduce_only: bool = False
    post_only: bool = False
    venue: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the OMS knows it. Changed only through OrderStateMachine."""

    order_id: str
    account_id: str
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    reduce_only: bool
    post_only: bool
    venue: str
    status: OrderStatus
    created_time_ns: int
    updated_time_ns: int
    venue_order_id: str = ""
    filled_quantity: Decimal = ZERO
    average_fill_price: Decimal | None = None
    reject_reason: RejectReason | None = None
    reject_message: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    sequence: int = 0

    @property
    def leaves_quantity(self) -> Decimal:
        """Quantity still working (0 once the order is terminal)."""
        return ZERO if self.status.is_terminal else self.quantity - self.filled_quantity


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of an order."""

    fill_id: str
    order_id: str
    account_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    venue: str
    venue_fill_id: str
    fill_time_ns: int


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A state change of an order, as logged, published and streamed."""

    event_id: str
    type: EventType
    order: Order
    event_time_ns: int
    reason: RejectReason | None = None
    message: str = ""
    fill: Fill | None = None
    position: Position | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """Net position of an account in one instrument: signed quantity, average entry price, realized PnL."""

    account_id: str
    symbol: str
    quantity: Decimal = ZERO
    average_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    updated_time_ns: int = 0

    def apply_fill(
        self, side: Side, quantity: Decimal, price: Decimal, fee: Decimal, time_ns: int
    ) -> Position:
        """The position after a fill: extends at a weighted average, reduces realizing PnL, may flip.

        The fee (in the quote currency) is charged to realized PnL.
        """
        signed = quantity * side.sign
        current = self.quantity
        realized = self.realized_pnl - fee
        if current == ZERO or (current > ZERO) == (signed > ZERO):
            new_qty = current + signed
            average = weighted_average(abs(current) * self.average_price + quantity * price, abs(new_qty))
        else:
            closing = min(abs(current), quantity)
            direction = 1 if current > ZERO else -1
            realized += closing * (price - self.average_price) * direction
            new_qty = current + signed
            if new_qty == ZERO:
                average = ZERO
            elif (new_qty > ZERO) == (current > ZERO):
                average = self.average_price
            else:  # flipped: the remainder opened at this fill's price
                average = price
        return Position(self.account_id, self.symbol, new_qty, average, realized, time_ns)
