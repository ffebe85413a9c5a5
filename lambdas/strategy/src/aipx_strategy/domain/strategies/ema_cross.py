"""EMA crossover: trend following on the cross of a fast and a slow exponential moving average.

LONG when the fast EMA crosses above the slow EMA, SHORT when it crosses below. Stop-loss and take-profit are
`stop_atr` / `target_atr` context ATRs from the close. Strength grows with the spread between the EMAs
relative to the ATR. Bias: sign of (fast - slow).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from aipx_strategy.domain.indicators import EMA
from aipx_strategy.domain.strategies.base import (
    Bar,
    Direction,
    MarketContext,
    SignalIntent,
    Strategy,
    StrategyParams,
    atr_levels,
    clamp,
    crossed_above,
    crossed_below,
    params_of,
)


class EmaCrossParams(StrategyParams):
    fast: int = Field(9, ge=1, description="fast EMA period")
    slow: int = Field(21, ge=2, description="slow EMA period")
    stop_atr: float = Field(1.5, gt=0, description="stop-loss distance in ATRs")
    target_atr: float = Field(3.0, gt=0, description="take-profit distance in ATRs")

    @model_validator(mode="after")
    def _ordered(self) -> EmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be shorter than slow")
        return self


class EmaCrossStrategy(Strategy):
    id = "ema_cross"
    Params = EmaCrossParams

    def __init__(self, params: StrategyParams) -> None:
        super().__init__(params)
        p = self.p = params_of(params, EmaCrossParams)
        self.fast = EMA(p.fast)
        self.slow = EMA(p.slow)

    def on_candle(self, bar: Bar, ctx: MarketContext) -> SignalIntent | None:
        prev_fast, prev_slow = self.fast.value, self.slow.value
        fast = self.fast.update(bar.close)
        slow = self.slow.update(bar.close)
        if fast is None or slow is None:
            return None
        if crossed_above(prev_fast, prev_slow, fast, slow):
            direction, reason = Direction.LONG, f"EMA{self.p.fast} crossed above EMA{self.p.slow}"
        elif crossed_below(prev_fast, prev_slow, fast, slow):
            direction, reason = Direction.SHORT, f"EMA{self.p.fast} crossed below EMA{self.p.slow}"
        else:
            return None
        stop, target = atr_levels(direction, bar.close, ctx.atr, self.p.stop_atr, self.p.target_atr)
        spread = abs(fast - slow) / ctx.atr if ctx.atr else 0.0
        return SignalIntent(
            direction,
            clamp(0.5 + spread),
            stop,
            target,
            (reason,),
            {"ema_fast": fast, "ema_slow": slow},
        )

    def bias(self) -> float | None:
        fast, slow = self.fast.value, self.slow.value
        if fast is None or slow is None:
            return None
        return 1.0 if fast > slow else -1.0 if fast < slow else 0.0

    def dump(self) -> list[Any]:
        return [self.fast.dump(), self.slow.dump()]

    def load(self, data: list[Any]) -> None:
        self.fast.load(data[0])
        self.slow.load(data[1])
