"""OrderStateMachine: every (from, to) pair of statuses is either in the table and allowed, or refused."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import pytest
from aipx_oms.domain.model import (
    EventType,
    Order,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from aipx_oms.domain.state_machine import TRANSITIONS, IllegalTransitionError, OrderStateMachine

S = OrderStatus
OSM = OrderStateMachine

ALLOWED = {
    (S.PENDING_NEW, S.ACCEPTED),
    (S.PENDING_NEW, S.DENIED),
    (S.PENDING_NEW, S.REJECTED),
    (S.ACCEPTED, S.ACCEPTED),
    (S.ACCEPTED, S.PARTIALLY_FILLED),
    (S.ACCEPTED, S.FILLED),
    (S.ACCEPTED, S.PENDING_CANCEL),
    (S.ACCEPTED, S.CANCELED),
    (S.ACCEPTED, S.REJECTED),
    (S.ACCEPTED, S.EXPIRED),
    (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, S.FILLED),
    (S.PARTIALLY_FILLED, S.PENDING_CANCEL),
    (S.PARTIALLY_FILLED, S.CANCELED),
    (S.PARTIALLY_FILLED, S.EXPIRED),
    (S.PENDING_CANCEL, S.PENDING_CANCEL),
    (S.PENDING_CANCEL, S.ACCEPTED),
    (S.PENDING_CANCEL, S.PARTIALLY_FILLED),
    (S.PENDING_CANCEL, S.FILLED),
    (S.PENDING_CANCEL, S.CANCELED),
    (S.PENDING_CANCEL, S.EXPIRED),
}


def order(status: OrderStatus, *, filled: str = "0", quantity: str = "10") -> Order:
    return Order(
        order_id="o-1",
        account_id="a",
        client_order_id="c-1",
        symbol="BTC-USDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        quantity=Decimal(quantity),
        price=Decimal("100"),
        stop_price=None,
        reduce_only=False,
        post_only=False,
        venue="paper",
        status=status,
        created_time_ns=1,
        updated_time_ns=1,
        filled_quantity=Decimal(filled),
        average_fill_price=Decimal("100") if filled != "0" else None,
        sequence=3,
    )


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(S, S)))
def test_transition_table_is_exactly_the_specified_one(src: OrderStatus, dst: OrderStatus) -> None:
    assert OSM.can_transition(src, dst) is ((src, dst) in ALLOWED)


def test_table_covers_every_status_and_terminal_states_lead_nowhere() -> None:
    assert set(TRANSITIONS) == set(S)
    for status in (S.FILLED, S.CANCELED, S.REJECTED, S.DENIED, S.EXPIRED):
        assert status.is_terminal and TRANSITIONS[status] == frozenset()


# Every operation from every status: allowed where the table says so, IllegalTransitionError elsewhere.
Operation = Callable[[Order], tuple[Order, EventType]]
OPERATIONS: dict[str, tuple[Operation, OrderStatus]] = {
    "accept": (lambda o: OSM.accept(o, 5), S.ACCEPTED),
    "deny": (lambda o: OSM.deny(o, RejectReason.RATE_LIMITED, "x", 5), S.DENIED),
    "reject": (lambda o: OSM.reject(o, RejectReason.VENUE_REJECTED, "x", 5), S.REJECTED),
    "cancel": (lambda o: OSM.cancel(o, 5), S.CANCELED),
    "expire": (lambda o: OSM.expire(o, 5), S.EXPIRED),
    "fill_all": (lambda o: OSM.fill(o, o.quantity - o.filled_quantity, Decimal("101"), 5), S.FILLED),
}


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_each_operation_from_each_status(status: OrderStatus, operation: str) -> None:
    apply, target = OPERATIONS[operation]
    current = order(status, filled="4" if status in (S.PARTIALLY_FILLED, S.PENDING_CANCEL) else "0")
    if OSM.can_transition(status, target):
        moved, _ = apply(current)
        assert moved.status is target
        assert moved.sequence == current.sequence + 1
        assert moved.updated_time_ns == 5
    else:
        with pytest.raises(IllegalTransitionError):
            apply(current)


def test_partial_fills_average_price_and_status() -> None:
    o = order(S.ACCEPTED)
    o, event = OSM.fill(o, Decimal("4"), Decimal("100"), 2)
    assert (o.status, event, o.filled_quantity, o.leaves_quantity) == (
        S.PARTIALLY_FILLED, EventType.PARTIALLY_FILLED, Decimal(4), Decimal(6),
    )  # fmt: skip
    o, event = OSM.fill(o, Decimal("6"), Decimal("110"), 3)
    assert (o.status, event) == (S.FILLED, EventType.FILLED)
    assert o.average_fill_price == Decimal("106")
    assert o.leaves_quantity == 0


def test_overfill_is_refused() -> None:
    with pytest.raises(IllegalTransitionError, match="exceeds leaves"):
        OSM.fill(order(S.ACCEPTED), Decimal("10.5"), Decimal("1"), 2)
    with pytest.raises(IllegalTransitionError, match="not positive"):
        OSM.fill(order(S.ACCEPTED), Decimal("0"), Decimal("1"), 2)


def test_partial_fill_while_cancel_pending_stays_pending_cancel() -> None:
    o, event = OSM.fill(order(S.PENDING_CANCEL), Decimal("1"), Decimal("100"), 2)
    assert o.status is S.PENDING_CANCEL and event is EventType.PARTIALLY_FILLED


def test_cancel_request_and_rejection_go_back_to_working() -> None:
    o, event = OSM.request_cancel(order(S.ACCEPTED), 2)
    assert (o.status, event) == (S.PENDING_CANCEL, EventType.PENDING_CANCEL)
    with pytest.raises(IllegalTransitionError, match="already pending"):
        OSM.request_cancel(o, 3)
    back, event = OSM.cancel_rejected(o, 3)
    assert (back.status, event) == (S.ACCEPTED, EventType.CANCEL_REJECTED)
    partly, _ = OSM.cancel_rejected(replace(o, filled_quantity=Decimal(2)), 3)
    assert partly.status is S.PARTIALLY_FILLED
    with pytest.raises(IllegalTransitionError):
        OSM.cancel_rejected(order(S.ACCEPTED), 3)
    for terminal in (S.FILLED, S.CANCELED, S.REJECTED, S.DENIED, S.EXPIRED):
        with pytest.raises(IllegalTransitionError):
            OSM.request_cancel(order(terminal), 2)


def test_replace_only_working_orders_and_above_filled() -> None:
    o, event = OSM.replace(order(S.ACCEPTED), Decimal("12"), Decimal("99"), 2)
    assert (o.quantity, o.price, o.status, event) == (
        Decimal(12),
        Decimal(99),
        S.ACCEPTED,
        EventType.REPLACED,
    )
    with pytest.raises(IllegalTransitionError, match="not above filled"):
        OSM.replace(order(S.PARTIALLY_FILLED, filled="4"), Decimal("4"), None, 2)
    for status in (S.PENDING_NEW, S.PENDING_CANCEL, S.FILLED, S.CANCELED, S.REJECTED, S.DENIED, S.EXPIRED):
        with pytest.raises(IllegalTransitionError):
            OSM.replace(order(status), Decimal("12"), None, 2)
    rejected, event = OSM.replace_rejected(order(S.PENDING_CANCEL), 2)
    assert (rejected.status, event, rejected.sequence) == (S.PENDING_CANCEL, EventType.REPLACE_REJECTED, 4)
    with pytest.raises(IllegalTransitionError):
        OSM.replace_rejected(order(S.FILLED), 2)
