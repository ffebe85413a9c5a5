"""The protobuf translation of the domain (aipx_oms.wire): every enum member by name, exact decimals, and an
order event that decodes back to what was encoded."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aipx.v1 import common_pb2, orders_pb2
from aipx_oms import wire
from aipx_oms.domain.model import (
    EventType,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)


@pytest.mark.parametrize(
    ("domain", "enum", "prefix", "to_pb", "from_pb"),
    [
        (Side, common_pb2.Side, "SIDE_", wire.side_to_pb, wire.side_from_pb),
        (OrderStatus, orders_pb2.OrderStatus, "ORDER_STATUS_", wire.status_to_pb, wire.status_from_pb),
        (RejectReason, orders_pb2.RejectReason, "REJECT_REASON_", wire.reason_to_pb, wire.reason_from_pb),
        (
            EventType,
            orders_pb2.OrderEventType,
            "ORDER_EVENT_TYPE_",
            wire.event_type_to_pb,
            wire.event_type_from_pb,
        ),
        (
            OrderType,
            orders_pb2.OrderType,
            "ORDER_TYPE_",
            lambda t: wire.order_to_pb(order(order_id=f"o-{t}", type=t)).type,
            wire.order_type_from_pb,
        ),
        (
            TimeInForce,
            orders_pb2.TimeInForce,
            "TIME_IN_FORCE_",
            lambda t: wire.order_to_pb(order(order_id=f"o-{t}", time_in_force=t)).time_in_force,
            wire.tif_from_pb,
        ),
    ],
)
def test_every_enum_member_maps_by_name_both_ways(
    domain: type, enum: object, prefix: str, to_pb: object, from_pb: object
) -> None:
    for member in domain:  # type: ignore[attr-defined]
        number = to_pb(member)  # type: ignore[operator]
        assert enum.Name(number) == f"{prefix}{member}"  # type: ignore[attr-defined]
        assert from_pb(number) is member  # type: ignore[operator]


def order(**changes: object) -> Order:
    values: dict[str, object] = {
        "order_id": "o-1",
        "account_id": "acct-1",
        "client_order_id": "c-1",
        "symbol": "BTC-USDT",
        "side": Side.SELL,
        "type": OrderType.STOP_LIMIT,
        "time_in_force": TimeInForce.IOC,
        "quantity": Decimal("0.00100"),
        "price": Decimal("65000.10"),
        "stop_price": Decimal("64000"),
        "reduce_only": True,
        "post_only": False,
        "venue": "paper",
        "status": OrderStatus.PARTIALLY_FILLED,
        "created_time_ns": 1,
        "updated_time_ns": 2,
        "venue_order_id": "v-9",
        "filled_quantity": Decimal("0.0004"),
        "average_fill_price": Decimal("65000.05"),
        "tags": {"strategy": "ema"},
        "sequence": 3,
    }
    values.update(changes)
    return Order(**values)  # type: ignore[arg-type]


def test_an_order_event_round_trips_with_exact_decimals() -> None:
    o = order()
    event = OrderEvent("e-1", EventType.PARTIALLY_FILLED, o, 5, RejectReason.PRICE_BAND_EXCEEDED, "why")
    pb = orders_pb2.OrderEvent.FromString(wire.event_to_pb(event, log_sequence=42).SerializeToString())
    assert (pb.event_id, pb.log_sequence, pb.event_time_ns, pb.reason_message) == ("e-1", 42, 5, "why")
    assert wire.event_type_from_pb(pb.type) is EventType.PARTIALLY_FILLED
    assert wire.reason_from_pb(pb.reason) is RejectReason.PRICE_BAND_EXCEEDED
    m = pb.order
    assert (m.order_id, m.account_id, m.client_order_id, m.symbol, m.venue, m.venue_order_id) == (
        "o-1", "acct-1", "c-1", "BTC-USDT", "paper", "v-9",
    )  # fmt: skip
    assert wire.side_from_pb(m.side) is Side.SELL and wire.order_type_from_pb(m.type) is OrderType.STOP_LIMIT
    assert wire.tif_from_pb(m.time_in_force) is TimeInForce.IOC
    assert wire.status_from_pb(m.status) is OrderStatus.PARTIALLY_FILLED
    assert (m.quantity.value, m.price.value, m.stop_price.value) == ("0.00100", "65000.10", "64000")
    assert (m.filled_quantity.value, m.leaves_quantity.value, m.average_fill_price.value) == (
        "0.0004", "0.00060", "65000.05",
    )  # fmt: skip
    assert m.reduce_only and not m.post_only and dict(m.tags) == {"strategy": "ema"}
    assert (m.sequence, m.created_time_ns, m.updated_time_ns) == (3, 1, 2)


def test_absent_values_are_empty_not_zero() -> None:
    m = wire.order_to_pb(order(order_id="o-2", price=None, stop_price=None, average_fill_price=None))
    assert (m.price.value, m.stop_price.value, m.average_fill_price.value) == ("", "", "")
    m = wire.order_to_pb(order(order_id="o-3", status=OrderStatus.REJECTED, reject_reason=None))
    assert m.leaves_quantity.value == "0" and m.reject_reason == orders_pb2.REJECT_REASON_UNSPECIFIED
