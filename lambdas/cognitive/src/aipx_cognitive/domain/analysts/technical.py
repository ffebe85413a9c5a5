"""Technical confluence: do the other strategies and the trend filter lean the signal's way?

Reads the `bias.<strategy>` indicators the strategy function attaches to every signal (each in [-1, 1]) and
the `trend` indicator (+1/-1/0). The signal's own strategy is left out (it obviously agrees). The trend
counts as `trend_weight` voices. score = weighted mean of (bias x direction) in [-1, 1]:
score >= `threshold` votes the signal's direction, score <= -`threshold` votes against it, else NEUTRAL;
confidence = 0.5 + |score| / 2. No biases and no trend -> ABSTAIN.
"""

from __future__ import annotations

from dataclasses import dataclass

from aipx_cognitive.domain.model import Opinion, SignalView, Stance


@dataclass(frozen=True, slots=True)
class TechnicalConfluenceAnalyst:
    name: str = "technical_confluence"
    trend_weight: float = 1.0
    threshold: float = 0.2

    async def assess(self, view: SignalView) -> Opinion:
        return self.judge(view)

    def judge(self, view: SignalView) -> Opinion:
        """The synchronous core (pure)."""
        if view.direction == 0:
            return Opinion.abstain(self.name, "only LONG and SHORT signals are assessed")
        own = f"bias.{view.signal.strategy_id}"
        biases = {
            k.removeprefix("bias."): v
            for k, v in view.indicators.items()
            if k.startswith("bias.") and k != own
        }
        trend = view.trend
        weight = len(biases) + (self.trend_weight if trend is not None else 0.0)
        if weight == 0:
            return Opinion.abstain(self.name, "no strategy biases or trend in the signal")
        total = sum(b * view.direction for b in biases.values())
        if trend is not None:
            total += self.trend_weight * trend * view.direction
        score = max(-1.0, min(1.0, total / weight))
        agree = sorted(k for k, b in biases.items() if b * view.direction > 0)
        against = sorted(k for k, b in biases.items() if b * view.direction < 0)
        trend_text = {None: "unknown", 1: "up", -1: "down", 0: "flat"}[trend]
        why = (
            f"confluence score {score:+.2f}: agreeing {', '.join(agree) or 'none'}; "
            f"against {', '.join(against) or 'none'}; trend {trend_text}"
        )
        if score >= self.threshold:
            stance = view.stance
        elif score <= -self.threshold:
            stance = Stance.of_sign(-view.direction)
        else:
            stance = Stance.NEUTRAL
        return Opinion(self.name, stance, 0.5 + abs(score) / 2.0, why)
