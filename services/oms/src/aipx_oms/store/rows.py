"""Rows <-> domain objects, and the column lists the statements share."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import asyncpg

from aipx_oms.domain.model import (
    Instrument,
    Order,
    OrderStatus,
    OrderType,
    Position,
    RejectReason,
    Side,
    TimeInForce,
)

ORDER_COLUMNS = (
    "order_id, account_id, client_order_id, symbol, side, type, time_in_force, quantity, price, stop_price, "
    "reduce_only, post_only, venue, venue_order_id, status, filled_quantity, average_fill_price, "
    "reject_reason, reject_message, tags, sequence, created_time_ns, updated_time_ns"
)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup: jsonb as Python objects."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def order_from_row(row: asyncpg.Record | Mapping[str, Any]) -> Order:
    return Order(
        order_id=row["order_id"],
        account_id=row["account_id"],
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        type=OrderType(row["type"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        quantity=row["quantity"],
        price=row["price"],
        stop_price=row["stop_price"],
        reduce_only=row["reduce_only"],
        post_only=row["post_only"],
        venue=row["venue"],
        venue_order_id=row["venue_order_id"],
        status=OrderStatus(row["status"]),
        filled_quantity=row["filled_quantity"],
        average_fill_price=row["average_fill_price"],
        reject_reason=RejectReason(row["reject_reason"]) if row["reject_reason"] else None,
        reject_message=row["reject_message"],
        tags=dict(row["tags"] or {}),
        sequence=row["sequence"],
        created_time_ns=row["created_time_ns"],
        updated_time_ns=row["updated_time_ns"],
    )


def order_columns(order: Order) -> tuple[Any, ...]:
    """The order as a tuple in ORDER_COLUMNS order."""
    return (
        order.order_id,
        order.account_id,
        order.client_order_id,
        order.symbol,
        order.side.value,
        order.type.value,
        order.time_in_force.value,
        order.quantity,
        order.price,
        order.stop_price,
        order.reduce_only,
        order.post_only,
        order.venue,
        order.venue_order_id,
        order.status.value,
        order.filled_quantity,
        order.average_fill_price,
        order.reject_reason.value if order.reject_reason else None,
        order.reject_message,
        dict(order.tags),
        order.sequence,
        order.created_time_ns,
        order.updated_time_ns,
    )


def instrument_from_row(row: asyncpg.Record | Mapping[str, Any]) -> Instrument:
    return Instrument(
        symbol=row["symbol"],
        base_asset=row["base_asset"],
        quote_asset=row["quote_asset"],
        tick_size=row["tick_size"],
        lot_size=row["lot_size"],
        min_quantity=row["min_quantity"],
        min_notional=row["min_notional"],
        trading=row["trading"],
        maker_fee_rate=row.get("maker_fee_rate") or Decimal(0),
        taker_fee_rate=row.get("taker_fee_rate") or Decimal(0),
    )


def position_from_row(row: asyncpg.Record | Mapping[str, Any]) -> Position:
    return Position(
        account_id=row["account_id"],
        symbol=row["symbol"],
        quantity=row["quantity"],
        average_price=row["average_price"],
        realized_pnl=row["realized_pnl"],
        updated_time_ns=row["updated_time_ns"],
    )
