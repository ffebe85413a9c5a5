"""SuperTrend: trend following on flips of the SuperTrend line (hl2 +/- factor * ATR, ratcheted).

LONG when the trend flips from down to up (close crosses above the upper band), SHORT on the opposite flip.
Stop-loss is the SuperTrend line itself (the band that would flip the trend back); take-profit is `target_atr`
context ATRs from the close. Strength grows with the close's distance from the line. Bias: the trend (+1/-1).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from aipx_strategy.domain.indicators import SuperTrend
from aipx_strategy.domain.strategies.base import (
    Bar,
    Direction,
    MarketContext,
    SignalIntent,
    Strategy,
    StrategyParams,
    clamp,
    params_of,
)


class SuperTrendParams(StrategyParams):
    atr_period: int = Field(10, ge=1, description="ATR period of the bands")
    factor: float = Field(3.0, gt=0, description="band width in ATRs")
    target_atr: float = Field(4.5, gt=0, description="take-profit distance in context ATRs")


class SuperTrendStrategy(Strategy):
    id = "supertrend"
    Params = SuperTrendParams

    def __init__(self, params: StrategyParams) -> None:
        super().__init__(params)
        p = self.p = params_of(params, SuperTrendParams)
        self.supertrend = SuperTrend(p.atr_period, p.factor)

    def on_candle(self, bar: Bar, ctx: MarketContext) -> SignalIntent | None:
        before = self.supertrend.direction
        value = self.supertrend.update(bar.high, bar.low, bar.close)
        if value is None or before in (0, value.direction):
            return None
        direction = Direction.LONG if value.direction == 1 else Direction.SHORT
        reason = (
            "SuperTrend flipped to up-trend" if value.direction == 1 else "SuperTrend flipped to down-trend"
        )
        atr = ctx.atr if ctx.atr else value.atr
        target = bar.close + int(direction) * self.p.target_atr * atr
        distance = abs(bar.close - value.line) / (self.p.factor * value.atr) if value.atr > 0 else 0.0
        return SignalIntent(
            direction,
            clamp(0.5 + distance / 2.0),
            value.line,
            target,
            (reason,),
            {"supertrend": value.line, "supertrend_atr": value.atr},
        )

    def bias(self) -> float | None:
        return float(self.supertrend.direction) if self.supertrend.direction else None

    def dump(self) -> list[Any]:
        return self.supertrend.dump()

    def load(self, data: list[Any]) -> None:
        self.supertrend.load(data)
