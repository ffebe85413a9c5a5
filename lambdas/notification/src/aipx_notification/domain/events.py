"""The events a notification is about, flattened to a type and text fields for routing and templates.

Event types: "order.<type>" for order-events (order.accepted, order.filled, order.partially_filled,
order.denied, order.rejected, order.canceled, order.expired, ...) and "decision.approve" /
"decision.reject" for trading-decisions. Every field of a family is always present (empty when unset), so a
template validated once renders for every event.
"""

from __future__ import annotations

from dataclasses import dataclass

from aipx.money import format_decimal, parse_decimal
from aipx.v1.common_pb2 import Decimal as PbDecimal
from aipx.v1.common_pb2 import Side
from aipx.v1.decisions_pb2 import Decision, Verdict, Vote
from aipx.v1.orders_pb2 import OrderEvent, OrderEventType, OrderStatus, OrderType, RejectReason
from aipx.v1.signals_pb2 import SignalDirection

ORDER_FIELDS = (
    "event_id", "event", "account_id", "order_id", "client_order_id", "symbol", "side", "order_type",
    "quantity", "price", "status", "filled_quantity", "average_fill_price", "fill_quantity", "fill_price",
    "fee", "fee_currency", "reason", "reason_message", "venue",
)  # fmt: skip
DECISION_FIELDS = (
    "event_id", "decision_id", "signal_id", "strategy_id", "venue", "symbol", "direction", "verdict",
    "confidence", "rationale", "client_order_id", "votes",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class NotifiableEvent:
    """An event id (the dedupe key), its type (the routing key) and its fields (the template values)."""

    event_id: str
    event_type: str
    fields: dict[str, str]

    @property
    def family(self) -> str:
        return self.event_type.split(".", 1)[0]


def _name(enum_name: str, prefix: str) -> str:
    return enum_name.removeprefix(prefix)


def from_order_event(event: OrderEvent) -> NotifiableEvent:
    if not event.event_id:
        raise ValueError("order event without event_id")
    kind = _name(OrderEventType.Name(event.type), "ORDER_EVENT_TYPE_")
    order, fill = event.order, event.fill
    fields = {
        "event_id": event.event_id,
        "event": kind,
        "account_id": event.account_id,
        "order_id": event.order_id or order.order_id,
        "client_order_id": event.client_order_id or order.client_order_id,
        "symbol": order.symbol or fill.symbol,
        "side": _name(Side.Name(order.side), "SIDE_") if order.side else "",
        "order_type": _name(OrderType.Name(order.type), "ORDER_TYPE_") if order.type else "",
        "quantity": _decimal(order.quantity, "order.quantity"),
        "price": _decimal(order.price, "order.price"),
        "status": _name(OrderStatus.Name(order.status), "ORDER_STATUS_") if order.status else "",
        "filled_quantity": _decimal(order.filled_quantity, "order.filled_quantity"),
        "average_fill_price": _decimal(order.average_fill_price, "order.average_fill_price"),
        "fill_quantity": _decimal(fill.quantity, "fill.quantity"),
        "fill_price": _decimal(fill.price, "fill.price"),
        "fee": _decimal(fill.fee, "fill.fee"),
        "fee_currency": fill.fee_currency,
        "reason": _name(RejectReason.Name(event.reason), "REJECT_REASON_") if event.reason else "",
        "reason_message": event.reason_message,
        "venue": order.venue,
    }
    return NotifiableEvent(event.event_id, f"order.{kind.lower()}", fields)


def _decimal(value: PbDecimal, field: str) -> str:
    """The decimal's positional text ('' when unset), checked by the strict parser: an unbounded or malformed
    number (InvalidDecimalError, a ValueError) makes the event unusable and it is dead-lettered."""
    if not value.value:
        return ""
    return format_decimal(parse_decimal(value.value, field=field))


def from_decision(decision: Decision) -> NotifiableEvent:
    if not decision.decision_id:
        raise ValueError("decision without decision_id")
    verdict = _name(Verdict.Name(decision.verdict), "VERDICT_")
    votes = ", ".join(f"{v.analyst}={_vote(v.vote)}({v.confidence:.2f})" for v in decision.votes)
    fields = {
        "event_id": decision.decision_id,
        "decision_id": decision.decision_id,
        "signal_id": decision.signal_id,
        "strategy_id": decision.strategy_id,
        "venue": decision.venue,
        "symbol": decision.symbol,
        "direction": _name(SignalDirection.Name(decision.direction), "SIGNAL_DIRECTION_"),
        "verdict": verdict,
        "confidence": f"{decision.confidence:.2f}",
        "rationale": decision.rationale,
        "client_order_id": decision.client_order_id,
        "votes": votes,
    }
    return NotifiableEvent(decision.decision_id, f"decision.{verdict.lower()}", fields)


def _vote(value: Vote.ValueType) -> str:
    return _name(Vote.Name(value), "VOTE_")


def sample(family: str) -> dict[str, str]:
    """Fields of a family with placeholder values (to validate templates)."""
    names = ORDER_FIELDS if family == "order" else DECISION_FIELDS
    return {name: name for name in names}
