"""Translation between the domain types and the aipx.v1 protobuf messages (one place for every adapter)."""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from enum import StrEnum
from typing import Any

from aipx.money import format_decimal
from aipx.v1 import common_pb2, orders_pb2

from aipx_oms.domain.ledger import unrealized_pnl
from aipx_oms.domain.model import (
    EventType,
    Fill,
    Instrument,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    Position,
    RejectReason,
    Side,
    TimeInForce,
)


def _text(value: Decimal | None) -> str:
    """The text of an aipx.v1.Decimal ("" for None)."""
    return "" if value is None else format_decimal(value)


def dec(value: Decimal | None) -> common_pb2.Decimal:
    """Decimal -> aipx.v1.Decimal (empty when None)."""
    return common_pb2.Decimal(value=_text(value))


def side_to_pb(side: Side) -> common_pb2.Side.ValueType:
    return _SIDE_NUMBERS[side]


def _by_number(enum: Any, prefix: str, domain: type[StrEnum]) -> dict[int, Any]:
    """Protobuf enum number -> domain member, for members both sides know (UNSPECIFIED maps to nothing)."""
    table: dict[int, Any] = {}
    for value in enum.DESCRIPTOR.values:
        name = str(value.name).removeprefix(prefix)
        if name in domain.__members__:
            table[int(value.number)] = domain(name)
    return table


_SIDES: dict[int, Side] = _by_number(common_pb2.Side, "SIDE_", Side)
_TYPES: dict[int, OrderType] = _by_number(orders_pb2.OrderType, "ORDER_TYPE_", OrderType)
_TIFS: dict[int, TimeInForce] = _by_number(orders_pb2.TimeInForce, "TIME_IN_FORCE_", TimeInForce)
_STATUSES: dict[int, OrderStatus] = _by_number(orders_pb2.OrderStatus, "ORDER_STATUS_", OrderStatus)
_REASONS: dict[int, RejectReason] = _by_number(orders_pb2.RejectReason, "REJECT_REASON_", RejectReason)
_EVENTS: dict[int, EventType] = _by_number(orders_pb2.OrderEventType, "ORDER_EVENT_TYPE_", EventType)


def _numbers(by_number: dict[int, Any]) -> dict[Any, Any]:
    """The other direction of a `_by_number` table: domain member -> protobuf enum number (a dict lookup: the
    hot paths encode several per order)."""
    return {member: number for number, member in by_number.items()}


_SIDE_NUMBERS: dict[Side, common_pb2.Side.ValueType] = _numbers(_SIDES)
_TYPE_NUMBERS: dict[OrderType, orders_pb2.OrderType.ValueType] = _numbers(_TYPES)
_TIF_NUMBERS: dict[TimeInForce, orders_pb2.TimeInForce.ValueType] = _numbers(_TIFS)
_STATUS_NUMBERS: dict[OrderStatus, orders_pb2.OrderStatus.ValueType] = _numbers(_STATUSES)
_REASON_NUMBERS: dict[RejectReason, orders_pb2.RejectReason.ValueType] = _numbers(_REASONS)
_EVENT_NUMBERS: dict[EventType, orders_pb2.OrderEventType.ValueType] = _numbers(_EVENTS)


def side_from_pb(value: int) -> Side | None:
    return _SIDES.get(value)


def order_type_from_pb(value: int) -> OrderType | None:
    return _TYPES.get(value)


def tif_from_pb(value: int) -> TimeInForce | None:
    return _TIFS.get(value)


def status_from_pb(value: int) -> OrderStatus | None:
    return _STATUSES.get(value)


def status_to_pb(status: OrderStatus) -> orders_pb2.OrderStatus.ValueType:
    return _STATUS_NUMBERS[status]


def reason_to_pb(reason: RejectReason | None) -> orders_pb2.RejectReason.ValueType:
    if reason is None:
        return orders_pb2.REJECT_REASON_UNSPECIFIED
    return _REASON_NUMBERS[reason]


def reason_from_pb(value: int) -> RejectReason | None:
    return _REASONS.get(value)


def event_type_to_pb(event_type: EventType) -> orders_pb2.OrderEventType.ValueType:
    return _EVENT_NUMBERS[event_type]


def event_type_from_pb(value: int) -> EventType | None:
    return _EVENTS.get(value)


_ORDER_CACHE: OrderedDict[tuple[str, int, str, int], orders_pb2.Order] = OrderedDict()
_ORDER_CACHE_SIZE = 4096


def order_to_pb(order: Order) -> orders_pb2.Order:
    """The order as protobuf. Recent versions are cached: an order is encoded for its event and again for
    the response (callers copy it into their messages and must not modify it)."""
    key = (order.order_id, order.sequence, order.venue_order_id, order.updated_time_ns)
    cached = _ORDER_CACHE.get(key)
    if cached is not None:
        return cached
    message = _order_to_pb(order)
    _ORDER_CACHE[key] = message
    if len(_ORDER_CACHE) > _ORDER_CACHE_SIZE:
        _ORDER_CACHE.popitem(last=False)
    return message


def _order_to_pb(order: Order) -> orders_pb2.Order:
    # Scalars through the constructor, decimals set in place: building six aipx.v1.Decimal messages to have
    # the constructor copy them in cost about three times as much (this runs for every order event).
    message = orders_pb2.Order(
        order_id=order.order_id,
        account_id=order.account_id,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=_SIDE_NUMBERS[order.side],
        type=_TYPE_NUMBERS[order.type],
        time_in_force=_TIF_NUMBERS[order.time_in_force],
        reduce_only=order.reduce_only,
        post_only=order.post_only,
        venue=order.venue,
        venue_order_id=order.venue_order_id,
        status=_STATUS_NUMBERS[order.status],
        reject_reason=reason_to_pb(order.reject_reason),
        reject_message=order.reject_message,
        tags=dict(order.tags),
        sequence=order.sequence,
        created_time_ns=order.created_time_ns,
        updated_time_ns=order.updated_time_ns,
    )
    message.quantity.value = format_decimal(order.quantity)
    message.price.value = _text(order.price)
    message.stop_price.value = _text(order.stop_price)
    message.filled_quantity.value = format_decimal(order.filled_quantity)
    message.leaves_quantity.value = format_decimal(order.leaves_quantity)
    message.average_fill_price.value = _text(order.average_fill_price)
    return message


def fill_to_pb(fill: Fill) -> orders_pb2.Fill:
    return orders_pb2.Fill(
        fill_id=fill.fill_id,
        order_id=fill.order_id,
        account_id=fill.account_id,
        symbol=fill.symbol,
        side=side_to_pb(fill.side),
        quantity=dec(fill.quantity),
        price=dec(fill.price),
        fee=dec(fill.fee),
        fee_currency=fill.fee_currency,
        liquidity=orders_pb2.Liquidity.Value(f"LIQUIDITY_{fill.liquidity}"),
        venue=fill.venue,
        venue_fill_id=fill.venue_fill_id,
        fill_time_ns=fill.fill_time_ns,
    )


def position_to_pb(position: Position, mark: Decimal | None = None) -> orders_pb2.Position:
    """A position; with its mark, also its unrealized P&L (quantity x (mark - average price))."""
    return orders_pb2.Position(
        account_id=position.account_id,
        symbol=position.symbol,
        quantity=dec(position.quantity),
        average_price=dec(position.average_price),
        realized_pnl=dec(position.realized_pnl),
        updated_time_ns=position.updated_time_ns,
        mark_price=dec(mark),
        unrealized_pnl=dec(
            None if mark is None else unrealized_pnl(position.quantity, position.average_price, mark)
        ),
    )


def instrument_to_pb(instrument: Instrument) -> orders_pb2.Instrument:
    return orders_pb2.Instrument(
        symbol=instrument.symbol,
        base_asset=instrument.base_asset,
        quote_asset=instrument.quote_asset,
        tick_size=dec(instrument.tick_size),
        lot_size=dec(instrument.lot_size),
        min_quantity=dec(instrument.min_quantity),
        min_notional=dec(instrument.min_notional),
        trading=instrument.trading,
        maker_fee_rate=dec(instrument.maker_fee_rate),
        taker_fee_rate=dec(instrument.taker_fee_rate),
    )


def event_to_pb(event: OrderEvent, log_sequence: int = 0) -> orders_pb2.OrderEvent:
    """The event as logged and published; log_sequence is the event's place in the OMS's log."""
    message = orders_pb2.OrderEvent(
        event_id=event.event_id,
        type=event_type_to_pb(event.type),
        account_id=event.order.account_id,
        order_id=event.order.order_id,
        client_order_id=event.order.client_order_id,
        sequence=event.order.sequence,
        log_sequence=log_sequence,
        reason=reason_to_pb(event.reason),
        reason_message=event.message,
        order=order_to_pb(event.order),
        event_time_ns=event.event_time_ns,
    )
    if event.fill is not None:
        message.fill.CopyFrom(fill_to_pb(event.fill))
    if event.position is not None:
        message.position.CopyFrom(position_to_pb(event.position))
    return message


def event_payload(event: OrderEvent, log_sequence: int) -> bytes:
    """The bytes an event is stored and published as (the writer's EventEncoder)."""
    return event_to_pb(event, log_sequence).SerializeToString()
