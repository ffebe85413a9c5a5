"""The order state machine: an explicit transition table; every change of an order goes through it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal

from aipx.money import weighted_average

from aipx_oms.domain.model import ZERO, EventType, Order, OrderStatus, RejectReason

S = OrderStatus

# from-status -> the statuses it may move to. Self-transitions are real events (a partial fill while
# partially filled, a replace, a fill while a cancel is pending). Terminal statuses lead nowhere.
TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_NEW: frozenset({S.ACCEPTED, S.DENIED, S.REJECTED}),
    S.ACCEPTED: frozenset(
        {S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.REJECTED, S.EXPIRED}
    ),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    # ACCEPTED / PARTIALLY_FILLED again when the venue refuses the cancel.
    S.PENDING_CANCEL: frozenset(
        {S.PENDING_CANCEL, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED}
    ),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.DENIED: frozenset(),
    S.EXPIRED: frozenset(),
}


class IllegalTransitionError(ValueError):
    """An order was asked to move where the transition table does not allow."""

    def __init__(self, order: Order, to: OrderStatus, why: str = "") -> None:
        self.order_id = order.order_id
        self.from_status = order.status
        self.to_status = to
        detail = f": {why}" if why else ""
        super().__init__(f"order {order.order_id}: {order.status} -> {to} is not allowed{detail}")


class OrderStateMachine:
    """Computes the next version of an order and the event that records it; refuses illegal moves."""

    @staticmethod
    def can_transition(from_status: OrderStatus, to_status: OrderStatus) -> bool:
        return to_status in TRANSITIONS[from_status]

    @classmethod
    def _move(cls, order: Order, to: OrderStatus, now_ns: int, **changes: object) -> Order:
        if not cls.can_transition(order.status, to):
            raise IllegalTransitionError(order, to)
        return replace(order, status=to, sequence=order.sequence + 1, updated_time_ns=now_ns, **changes)  # type: ignore[arg-type]

    @classmethod
    def accept(cls, order: Order, now_ns: int) -> tuple[Order, EventType]:
        return cls._move(order, S.ACCEPTED, now_ns), EventType.ACCEPTED

    @classmethod
    def deny(cls, order: Order, reason: RejectReason, message: str, now_ns: int) -> tuple[Order, EventType]:
        moved = cls._move(order, S.DENIED, now_ns, reject_reason=reason, reject_message=message)
        return moved, EventType.DENIED

    @classmethod
    def reject(cls, order: Order, reason: RejectReason, message: str, now_ns: int) -> tuple[Order, EventType]:
        moved = cls._move(order, S.REJECTED, now_ns, reject_reason=reason, reject_message=message)
        return moved, EventType.REJECTED

    @classmethod
    def fill(cls, order: Order, quantity: Decimal, price: Decimal, now_ns: int) -> tuple[Order, EventType]:
        """Apply an execution: filled quantity and volume-weighted average price; never overfills."""
        if quantity <= ZERO:
            raise IllegalTransitionError(order, order.status, f"fill quantity {quantity} is not positive")
        leaves = order.quantity - order.filled_quantity
        if quantity > leaves:
            raise IllegalTransitionError(order, S.FILLED, f"fill {quantity} exceeds leaves {leaves}")
        filled = order.filled_quantity + quantity
        previous_value = (order.average_fill_price or ZERO) * order.filled_quantity
        average = weighted_average(previous_value + price * quantity, filled)
        if filled == order.quantity:
            to, event = S.FILLED, EventType.FILLED
        else:
            event = EventType.PARTIALLY_FILLED
            to = S.PENDING_CANCEL if order.status is S.PENDING_CANCEL else S.PARTIALLY_FILLED
        return cls._move(order, to, now_ns, filled_quantity=filled, average_fill_price=average), event

    @classmethod
    def reopen_rejected(cls, order: Order, now_ns: int) -> tuple[Order, EventType]:
        """The venue has an order the OMS rejected as never received (its request arrived after all): the one
        move out of a terminal status. It is working there, so it becomes PENDING_CANCEL (the send path
        cancels it at the venue) and its fills are recorded on it."""
        if order.status is not S.REJECTED:
            raise IllegalTransitionError(order, S.PENDING_CANCEL, "only a rejected order is reopened")
        moved = replace(
            order,
            status=S.PENDING_CANCEL,
            sequence=order.sequence + 1,
            updated_time_ns=now_ns,
            reject_reason=None,
            reject_message="",
        )
        return moved, EventType.PENDING_CANCEL

    @classmethod
    def request_cancel(cls, order: Order, now_ns: int) -> tuple[Order, EventType]:
        if order.status is S.PENDING_CANCEL:
            raise IllegalTransitionError(order, S.PENDING_CANCEL, "a cancel is already pending")
        return cls._move(order, S.PENDING_CANCEL, now_ns), EventType.PENDING_CANCEL

    @classmethod
    def cancel(
        cls, order: Order, now_ns: int, reason: RejectReason | None = None, message: str = ""
    ) -> tuple[Order, EventType]:
        changes: dict[str, object] = {}
        if reason is not None:
            changes = {"reject_reason": reason, "reject_message": message}
        return cls._move(order, S.CANCELED, now_ns, **changes), EventType.CANCELED

    @classmethod
    def cancel_rejected(cls, order: Order, now_ns: int) -> tuple[Order, EventType]:
        """The venue refused a pending cancel: the order goes back to working."""
        if order.status is not S.PENDING_CANCEL:
            raise IllegalTransitionError(order, order.status, "no cancel is pending")
        back = S.PARTIALLY_FILLED if order.filled_quantity > ZERO else S.ACCEPTED
        return cls._move(order, back, now_ns), EventType.CANCEL_REJECTED

    @classmethod
    def expire(
        cls, order: Order, now_ns: int, reason: RejectReason | None = None, message: str = ""
    ) -> tuple[Order, EventType]:
        changes: dict[str, object] = {}
        if reason is not None:
            changes = {"reject_reason": reason, "reject_message": message}
        return cls._move(order, S.EXPIRED, now_ns, **changes), EventType.EXPIRED

    @classmethod
    def replace(
        cls, order: Order, quantity: Decimal, price: Decimal | None, now_ns: int
    ) -> tuple[Order, EventType]:
        """Modify quantity/price in place; only a working order not waiting for a cancel."""
        if order.status not in (S.ACCEPTED, S.PARTIALLY_FILLED):
            raise IllegalTransitionError(order, order.status, "only a working order can be replaced")
        if quantity <= order.filled_quantity:
            raise IllegalTransitionError(
                order, order.status, f"new quantity {quantity} is not above filled {order.filled_quantity}"
            )
        return cls._move(order, order.status, now_ns, quantity=quantity, price=price), EventType.REPLACED

    @classmethod
    def replace_rejected(cls, order: Order, now_ns: int) -> tuple[Order, EventType]:
        """A replace was refused: the order is unchanged but the refusal is an event of its own."""
        if order.status.is_terminal:
            raise IllegalTransitionError(order, order.status, "the order is finished")
        return cls._move(order, order.status, now_ns), EventType.REPLACE_REJECTED
