"""Signals, decisions, orders, fills and positions as the page shows them, kept from events in order."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from aipx.money import format_decimal, from_pb
from aipx.v1 import decisions_pb2, orders_pb2, signals_pb2

from aipx_console.domain.views import decision_view, fill_view, order_view, signal_view

OPEN_STATUSES = frozenset(
    {
        orders_pb2.ORDER_STATUS_PENDING_NEW,
        orders_pb2.ORDER_STATUS_ACCEPTED,
        orders_pb2.ORDER_STATUS_PARTIALLY_FILLED,
        orders_pb2.ORDER_STATUS_PENDING_CANCEL,
    }
)


class SignalLog:
    """The latest signals and decisions, newest last; a decision is shown with its signal's reasons."""

    def __init__(self, history: int) -> None:
        self.signals: deque[dict[str, object]] = deque(maxlen=history)
        self.decisions: deque[dict[str, object]] = deque(maxlen=history)
        self._reasons: OrderedDict[str, list[str]] = OrderedDict()
        self._history = history
        self.new_signals: list[dict[str, object]] = []
        self.new_decisions: list[dict[str, object]] = []

    def on_signal(self, signal: signals_pb2.TradingSignal) -> None:
        view = signal_view(signal)
        self.signals.append(view)
        self.new_signals.append(view)
        self._reasons[signal.signal_id] = list(signal.reasons)
        while len(self._reasons) > self._history * 4:
            self._reasons.popitem(last=False)

    def on_decision(self, decision: decisions_pb2.Decision) -> None:
        view = decision_view(decision)
        view["signal_reasons"] = self._reasons.get(decision.signal_id, [])
        self.decisions.append(view)
        self.new_decisions.append(view)

    def take_new(self) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        signals, decisions = self.new_signals, self.new_decisions
        self.new_signals, self.new_decisions = [], []
        return signals, decisions


@dataclass(slots=True)
class PositionRow:
    account_id: str
    symbol: str
    quantity: Decimal
    average_price: Decimal
    realized_pnl: Decimal
    updated_ns: int

    @property
    def key(self) -> str:
        return f"{self.account_id}:{self.symbol}"

    def unrealized(self, mark: Decimal | None) -> Decimal | None:
        """(mark - average price) x signed quantity: exact, no rounding (a product of exact decimals)."""
        if mark is None or not self.quantity:
            return None if mark is None else Decimal(0)
        return (mark - self.average_price) * self.quantity

    def view(self, mark: Decimal | None) -> dict[str, object]:
        unrealized = self.unrealized(mark)
        return {
            "key": self.key,
            "account_id": self.account_id,
            "symbol": self.symbol,
            "quantity": format_decimal(self.quantity),
            "average_price": format_decimal(self.average_price),
            "realized_pnl": format_decimal(self.realized_pnl),
            "mark": None if mark is None else format_decimal(mark),
            "unrealized_pnl": None if unrealized is None else format_decimal(unrealized),
        }


class OrderBlotter:
    """Orders by id (an event older than what is shown is ignored), recent fills, positions per account."""

    def __init__(self, history: int) -> None:
        self.history = history
        self.orders: dict[str, orders_pb2.Order] = {}
        self.fills: deque[dict[str, object]] = deque(maxlen=history)
        self.positions: dict[str, PositionRow] = {}
        self._finished: deque[str] = deque()
        self._dirty_orders: set[str] = set()
        self._dirty_positions: set[str] = set()
        self.new_fills: list[dict[str, object]] = []

    def on_order(self, order: orders_pb2.Order) -> bool:
        """Take an order's state if it is newer than the one held; True when it changed."""
        held = self.orders.get(order.order_id)
        if held is not None and held.sequence >= order.sequence:
            return False
        self.orders[order.order_id] = order
        self._dirty_orders.add(order.order_id)
        if order.status not in OPEN_STATUSES:
            self._finished.append(order.order_id)
            self._forget_old()
        return True

    def _forget_old(self) -> None:
        while len(self._finished) > self.history:
            order_id = self._finished.popleft()
            order = self.orders.get(order_id)
            if order is not None and order.status not in OPEN_STATUSES:
                del self.orders[order_id]
                self._dirty_orders.add(order_id)

    def on_position(self, position: orders_pb2.Position) -> None:
        row = PositionRow(
            position.account_id,
            position.symbol,
            from_pb(position.quantity) or Decimal(0),
            from_pb(position.average_price) or Decimal(0),
            from_pb(position.realized_pnl) or Decimal(0),
            position.updated_time_ns,
        )
        held = self.positions.get(row.key)
        if held is not None and held.updated_ns > row.updated_ns:
            return
        self.positions[row.key] = row
        self._dirty_positions.add(row.key)

    def on_event(self, event: orders_pb2.OrderEvent) -> None:
        if event.HasField("order"):
            self.on_order(event.order)
        if event.HasField("fill"):
            view = fill_view(event.fill)
            self.fills.append(view)
            self.new_fills.append(view)
        if event.HasField("position"):
            self.on_position(event.position)

    def mark_positions(self, symbol: str) -> None:
        """A new price for `symbol`: its positions' unrealized P&L changed."""
        self._dirty_positions.update(k for k, p in self.positions.items() if p.symbol == symbol)

    def take_dirty(self) -> tuple[set[str], set[str], list[dict[str, object]]]:
        orders, positions, fills = self._dirty_orders, self._dirty_positions, self.new_fills
        self._dirty_orders, self._dirty_positions, self.new_fills = set(), set(), []
        return orders, positions, fills

    def order_views(self, ids: set[str] | None) -> tuple[list[dict[str, object]], list[str]]:
        """(rows of the orders still held, ids removed); None: every order, newest first."""
        chosen = self.orders.keys() if ids is None else ids
        held = sorted(
            (self.orders[i] for i in chosen if i in self.orders),
            key=lambda o: (o.created_time_ns, o.order_id),
            reverse=True,
        )
        return [order_view(o) for o in held], [i for i in chosen if i not in self.orders]

    def position_views(
        self, keys: set[str] | None, mark: Callable[[str], Decimal | None]
    ) -> list[dict[str, object]]:
        chosen = self.positions.keys() if keys is None else keys
        return [self.positions[k].view(mark(self.positions[k].symbol)) for k in sorted(chosen)]
