"""Protobuf messages as the page's plain JSON rows (exact decimals as strings, enums by short name)."""

from __future__ import annotations

from typing import Any

from aipx.money import format_decimal, from_pb
from aipx.v1 import admin_pb2, common_pb2, decisions_pb2, oms_pb2, orders_pb2, signals_pb2


def enum_name(enum: Any, value: int, prefix: str) -> str:
    """SIDE_BUY -> BUY (`enum`: a generated enum such as common_pb2.Side); an unknown number as itself."""
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def dec(pb: common_pb2.Decimal) -> str | None:
    value = from_pb(pb)
    return None if value is None else format_decimal(value)


def order_view(order: orders_pb2.Order) -> dict[str, object]:
    return {
        "order_id": order.order_id,
        "account_id": order.account_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": enum_name(common_pb2.Side, order.side, "SIDE_"),
        "type": enum_name(orders_pb2.OrderType, order.type, "ORDER_TYPE_"),
        "status": enum_name(orders_pb2.OrderStatus, order.status, "ORDER_STATUS_"),
        "quantity": dec(order.quantity),
        "price": dec(order.price),
        "filled": dec(order.filled_quantity),
        "average_price": dec(order.average_fill_price),
        "venue": order.venue,
        "reject_reason": enum_name(orders_pb2.RejectReason, order.reject_reason, "REJECT_REASON_")
        if order.reject_reason
        else "",
        "reject_message": order.reject_message,
        "sequence": order.sequence,
        "created_ms": order.created_time_ns // 1_000_000,
        "updated_ms": order.updated_time_ns // 1_000_000,
    }


def fill_view(fill: orders_pb2.Fill) -> dict[str, object]:
    return {
        "fill_id": fill.fill_id,
        "order_id": fill.order_id,
        "account_id": fill.account_id,
        "symbol": fill.symbol,
        "side": enum_name(common_pb2.Side, fill.side, "SIDE_"),
        "quantity": dec(fill.quantity),
        "price": dec(fill.price),
        "fee": dec(fill.fee),
        "time_ms": fill.fill_time_ns // 1_000_000,
    }


def signal_view(signal: signals_pb2.TradingSignal) -> dict[str, object]:
    return {
        "signal_id": signal.signal_id,
        "strategy": signal.strategy_id,
        "venue": signal.venue,
        "symbol": signal.symbol,
        "interval": signal.interval,
        "direction": enum_name(signals_pb2.SignalDirection, signal.direction, "SIGNAL_DIRECTION_"),
        "strength": round(signal.strength, 3),
        "price": dec(signal.price),
        "reasons": list(signal.reasons),
        "time_ms": signal.generated_time_ns // 1_000_000,
    }


def decision_view(decision: decisions_pb2.Decision) -> dict[str, object]:
    return {
        "decision_id": decision.decision_id,
        "signal_id": decision.signal_id,
        "strategy": decision.strategy_id,
        "symbol": decision.symbol,
        "direction": enum_name(signals_pb2.SignalDirection, decision.direction, "SIGNAL_DIRECTION_"),
        "verdict": enum_name(decisions_pb2.Verdict, decision.verdict, "VERDICT_"),
        "confidence": round(decision.confidence, 3),
        "rationale": decision.rationale,
        "client_order_id": decision.client_order_id,
        "votes": [
            {
                "analyst": v.analyst,
                "vote": enum_name(decisions_pb2.Vote, v.vote, "VOTE_"),
                "confidence": round(v.confidence, 3),
                "rationale": v.rationale,
            }
            for v in decision.votes
        ],
        "time_ms": decision.decided_time_ns // 1_000_000,
    }


def account_view(account: admin_pb2.AccountSummary) -> dict[str, object]:
    return {
        "account_id": account.account_id,
        "name": account.name,
        "trading_state": enum_name(admin_pb2.TradingState, account.trading_state, "TRADING_STATE_"),
        "reason": account.trading_state_reason,
    }


def snapshot_view(snapshot: oms_pb2.AccountSnapshot) -> dict[str, object]:
    """An account's stream update: state, equity and P&L in the valuation asset, each asset's balance."""
    return {
        "account_id": snapshot.account_id,
        "trading_state": enum_name(admin_pb2.TradingState, snapshot.trading_state, "TRADING_STATE_"),
        "reason": snapshot.trading_state_reason,
        "valuation_asset": snapshot.valuation_asset,
        "equity": dec(snapshot.equity),
        "realized_pnl": dec(snapshot.realized_pnl),
        "unrealized_pnl": dec(snapshot.unrealized_pnl),
        "platform_halted": snapshot.platform_halted,
        "balances": [
            {"asset": b.asset, "total": dec(b.total), "free": dec(b.free), "locked": dec(b.locked)}
            for b in snapshot.balances
        ],
    }
