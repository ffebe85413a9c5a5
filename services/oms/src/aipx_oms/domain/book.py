"""AccountBook: one account's working orders and positions, as the risk checks need them (plain code)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from aipx_oms.domain.ledger import AccountLedger
from aipx_oms.domain.model import ZERO, AccountState, Order, OrderStatus, Position, Side
from aipx_oms.domain.risk import Exposure, RiskLimits


@dataclass(slots=True)
class AccountBook:
    """Working orders (including ones reserved while their commit is in flight) and positions of an account.

    The OMS owns an account's book in one process; every change that risk depends on is applied here
    synchronously, so concurrent submits see each other's reservations.
    """

    account_id: str
    state: AccountState
    limits: RiskLimits
    orders: dict[str, Order] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    # Balances and the reservations of working orders (a reservation is released with its order).
    ledger: AccountLedger = field(default_factory=lambda: AccountLedger(""))
    # (maker, taker) fee rates overriding the instruments' (None: the instrument's rate).
    fee_rates: tuple[Decimal | None, Decimal | None] = (None, None)
    # HALTED with its working orders cancelled: an order that becomes live is cancelled too.
    cancel_working: bool = False
    # symbol -> (working buy leaves, working sell leaves), kept incrementally by track/release.
    _working: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        account_id: str,
        state: AccountState,
        limits: RiskLimits,
        open_orders: Iterable[Order],
        positions: Iterable[Position],
        *,
        ledger: AccountLedger | None = None,
    ) -> AccountBook:
        book = cls(account_id, state, limits, ledger=ledger or AccountLedger(account_id))
        for order in open_orders:
            book.track(order)
        for position in positions:
            book.positions[position.symbol] = position
        return book

    @property
    def open_order_count(self) -> int:
        return len(self.orders)

    def exposure(self, symbol: str) -> Exposure:
        position = self.positions.get(symbol)
        buy, sell = self._working.get(symbol, (ZERO, ZERO))
        return Exposure(position.quantity if position else ZERO, buy, sell)

    def _adjust(self, order: Order, sign: int) -> None:
        leaves = (order.quantity - order.filled_quantity) * sign
        buy, sell = self._working.get(order.symbol, (ZERO, ZERO))
        if order.side is Side.BUY:
            buy += leaves
        else:
            sell += leaves
        self._working[order.symbol] = (buy, sell)

    def position(self, symbol: str) -> Position:
        return self.positions.get(symbol) or Position(self.account_id, symbol)

    def track(self, order: Order) -> None:
        """Record the order's latest version: working orders are kept, finished ones dropped."""
        previous = self.orders.pop(order.order_id, None)
        if previous is not None:
            self._adjust(previous, -1)
        if not order.status.is_terminal:
            self.orders[order.order_id] = order
            self._adjust(order, +1)
        else:
            self.ledger.release(order.order_id)  # cancel, reject, expiry, last fill

    def release(self, order_id: str) -> None:
        """Forget a reservation whose order was not created (duplicate or failed write)."""
        self.ledger.release(order_id)
        previous = self.orders.pop(order_id, None)
        if previous is not None:
            self._adjust(previous, -1)

    def cancels(self, order: Order) -> bool:
        """Whether `order`, live now, must be cancelled because the account was HALTED with its working
        orders cancelled (it was committed, or acknowledged by its venue, after the halt's cancels began)."""
        return (
            self.state is AccountState.HALTED
            and self.cancel_working
            and order.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
        )

    def set_position(self, position: Position) -> None:
        self.positions[position.symbol] = position

    def position_quantity(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        return position.quantity if position else ZERO
