"""Risk/reward: is the suggested trade worth its risk?

risk = |price - stop_loss|, reward = |take_profit - price| (levels must be on the protective/profit side).
R/R >= `min_risk_reward` votes the signal's direction with confidence min(1, 0.5 + 0.25 x R/R / minimum)
(0.75 at the minimum, 1.0 at twice it); below the minimum votes NEUTRAL with confidence growing as R/R
shrinks. Missing levels -> ABSTAIN; levels on the wrong side -> NEUTRAL (0.9).
"""

from __future__ import annotations

from dataclasses import dataclass

from aipx_cognitive.domain.model import Opinion, SignalView, Stance


@dataclass(frozen=True, slots=True)
class RiskRewardAnalyst:
    min_risk_reward: float = 1.5
    name: str = "risk_reward"

    async def assess(self, view: SignalView) -> Opinion:
        return self.judge(view)

    def judge(self, view: SignalView) -> Opinion:
        """The synchronous core (pure)."""
        if view.direction == 0:
            return Opinion.abstain(self.name, "only LONG and SHORT signals are assessed")
        if view.stop_loss is None or view.take_profit is None:
            return Opinion.abstain(self.name, "the signal has no stop-loss or take-profit")
        rr = view.risk_reward()
        if rr is None:
            return Opinion(
                self.name, Stance.NEUTRAL, 0.9, "stop-loss or take-profit is on the wrong side of the price"
            )
        ratio = rr / self.min_risk_reward
        if rr >= self.min_risk_reward:
            return Opinion(
                self.name,
                view.stance,
                min(1.0, 0.5 + 0.25 * ratio),
                f"risk/reward {rr:.2f} >= {self.min_risk_reward:g}",
            )
        return Opinion(
            self.name,
            Stance.NEUTRAL,
            0.5 + 0.5 * (1.0 - ratio),
            f"risk/reward {rr:.2f} < {self.min_risk_reward:g}",
        )
