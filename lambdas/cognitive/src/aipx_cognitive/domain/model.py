"""What the analysts look at (`SignalView`) and what they say (`Opinion`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from aipx.money import from_pb
from aipx.v1.decisions_pb2 import AnalystVote, Vote
from aipx.v1.signals_pb2 import SignalDirection, TradingSignal


class Stance(Enum):
    LONG = "LONG"
    SHORT = "SHORT"
    NEUTRAL = "NEUTRAL"
    ABSTAIN = "ABSTAIN"

    @property
    def sign(self) -> int:
        return 1 if self is Stance.LONG else -1 if self is Stance.SHORT else 0

    @classmethod
    def of_sign(cls, sign: int) -> Stance:
        return cls.LONG if sign > 0 else cls.SHORT if sign < 0 else cls.NEUTRAL


_VOTES = {
    Stance.LONG: Vote.VOTE_LONG,
    Stance.SHORT: Vote.VOTE_SHORT,
    Stance.NEUTRAL: Vote.VOTE_NEUTRAL,
    Stance.ABSTAIN: Vote.VOTE_ABSTAIN,
}


@dataclass(frozen=True, slots=True)
class Opinion:
    """One analyst's vote with its confidence in [0, 1] and why."""

    analyst: str
    stance: Stance
    confidence: float
    rationale: str

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")

    @classmethod
    def abstain(cls, analyst: str, why: str) -> Opinion:
        return cls(analyst, Stance.ABSTAIN, 0.0, why)

    def to_pb(self) -> AnalystVote:
        return AnalystVote(
            analyst=self.analyst,
            vote=_VOTES[self.stance],
            confidence=self.confidence,
            rationale=self.rationale,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "analyst": self.analyst,
            "vote": self.stance.value,
            "confidence": round(self.confidence, 4),
            "rationale": self.rationale,
        }


@dataclass(frozen=True, slots=True)
class SignalView:
    """A trading signal as the analysts see it: exact levels, the direction as a sign, the indicators."""

    signal: TradingSignal
    direction: int  # +1 LONG, -1 SHORT, 0 anything else (CLOSE)
    price: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None

    @classmethod
    def of(cls, signal: TradingSignal) -> SignalView:
        """Build the view; ValueError when the signal has no valid reference price."""
        direction = {
            SignalDirection.SIGNAL_DIRECTION_LONG: 1,
            SignalDirection.SIGNAL_DIRECTION_SHORT: -1,
        }.get(signal.direction, 0)
        price = from_pb(signal.price, field="price")
        if price is None or price <= 0:
            raise ValueError(f"signal {signal.signal_id}: reference price must be a positive decimal")
        return cls(
            signal,
            direction,
            price,
            from_pb(signal.stop_loss, field="stop_loss"),
            from_pb(signal.take_profit, field="take_profit"),
        )

    @property
    def stance(self) -> Stance:
        return Stance.of_sign(self.direction)

    @property
    def indicators(self) -> dict[str, float]:
        return dict(self.signal.indicators)

    @property
    def trend(self) -> int | None:
        value = self.signal.indicators.get("trend")
        return None if value is None else (1 if value > 0 else -1 if value < 0 else 0)

    def risk_reward(self) -> float | None:
        """Reward / risk from the protective levels (None when a level is missing or on the wrong side)."""
        if self.stop_loss is None or self.take_profit is None or self.direction == 0:
            return None
        risk = (self.price - self.stop_loss) * self.direction
        reward = (self.take_profit - self.price) * self.direction
        if risk <= 0 or reward <= 0:
            return None
        return float(reward / risk)

    def summary(self) -> dict[str, object]:
        """A JSON-able description (what the LLM analysts are shown)."""
        s = self.signal
        return {
            "strategy": s.strategy_id,
            "venue": s.venue,
            "symbol": s.symbol,
            "interval": s.interval,
            "direction": SignalDirection.Name(s.direction).removeprefix("SIGNAL_DIRECTION_"),
            "strength": round(s.strength, 4),
            "price": str(self.price),
            "stop_loss": None if self.stop_loss is None else str(self.stop_loss),
            "take_profit": None if self.take_profit is None else str(self.take_profit),
            "risk_reward": None if (rr := self.risk_reward()) is None else round(rr, 3),
            "reasons": list(s.reasons),
            "indicators": {k: round(v, 6) for k, v in sorted(s.indicators.items())},
        }
