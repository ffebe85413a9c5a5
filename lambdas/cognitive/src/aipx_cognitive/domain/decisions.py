"""Decisions and the orders they lead to: deterministic ids, the Decision message, the OMS order request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from aipx.ids import deterministic_id
from aipx.money import to_pb
from aipx.v1.common_pb2 import Side
from aipx.v1.decisions_pb2 import Decision, Verdict
from aipx.v1.orders_pb2 import OrderRequest, OrderType, TimeInForce
from aipx.v1.signals_pb2 import TradingSignal

from aipx_cognitive.domain.ensemble import Assessment


def decision_id(signal_id: str) -> str:
    """One decision per signal: the same signal always gets the same decision id."""
    return deterministic_id("decision", signal_id)


def client_order_id(signal_id: str, account: str) -> str:
    """The OMS idempotency key of the order for a signal in an account (a replay re-submits the same id)."""
    return "sig-" + deterministic_id("order", account, signal_id).replace("-", "")


def build_decision(signal: TradingSignal, assessment: Assessment, *, decided_time_ns: int) -> Decision:
    return Decision(
        decision_id=decision_id(signal.signal_id),
        signal_id=signal.signal_id,
        strategy_id=signal.strategy_id,
        venue=signal.venue,
        symbol=signal.symbol,
        direction=signal.direction,
        verdict=Verdict.VERDICT_APPROVE if assessment.approved else Verdict.VERDICT_REJECT,
        confidence=assessment.confidence,
        votes=[o.to_pb() for o in assessment.opinions],
        rationale=assessment.rationale,
        decided_time_ns=decided_time_ns,
    )


@dataclass(frozen=True, slots=True)
class AutoTradingPolicy:
    """When an approved decision becomes an order, and what order."""

    enabled: bool
    account: str
    strategies: frozenset[str]  # "*" = every strategy
    quantities: Mapping[str, Decimal]  # symbol -> order quantity
    order_type: Literal["market", "limit"] = "market"
    venue: str = "paper"

    def why_not(self, signal: TradingSignal) -> str | None:
        """None when the signal's strategy/symbol may trade, else the reason it may not."""
        if not self.enabled:
            return "auto-trading is disabled"
        if "*" not in self.strategies and signal.strategy_id not in self.strategies:
            return f"auto-trading is not enabled for strategy {signal.strategy_id}"
        if signal.symbol not in self.quantities:
            return f"no order quantity configured for {signal.symbol}"
        return None


def order_request(signal: TradingSignal, policy: AutoTradingPolicy, decision: Decision) -> OrderRequest:
    """The order for an approved LONG/SHORT decision (MARKET IOC, or LIMIT GTC at the signal's price)."""
    side = Side.SIDE_BUY if decision.direction == 1 else Side.SIDE_SELL
    request = OrderRequest(
        client_order_id=client_order_id(signal.signal_id, policy.account),
        symbol=signal.symbol,
        side=side,
        quantity=to_pb(policy.quantities[signal.symbol]),
        venue=policy.venue,
        tags={
            "strategy_id": signal.strategy_id,
            "signal_id": signal.signal_id,
            "decision_id": decision.decision_id,
            # exchange time of the market data the signal was computed from: end-to-end latency is
            # measured from it (bench/e2e_bench.py)
            "market_data_time_ns": str(signal.watermark.exchange_time_ns),
        },
    )
    if policy.order_type == "limit":
        request.type = OrderType.ORDER_TYPE_LIMIT
        request.time_in_force = TimeInForce.TIME_IN_FORCE_GTC
        request.price.CopyFrom(signal.price)
    else:
        request.type = OrderType.ORDER_TYPE_MARKET
        request.time_in_force = TimeInForce.TIME_IN_FORCE_IOC
    return request
