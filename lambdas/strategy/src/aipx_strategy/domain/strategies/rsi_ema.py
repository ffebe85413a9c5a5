"""RSI + EMA: buy oversold dips in an up-trend, sell overbought rallies in a down-trend.

LONG when RSI crosses back up through `oversold` while the close is above the EMA; SHORT when RSI crosses back
down through `overbought` while the close is below the EMA. Stop-loss / take-profit are `stop_atr` /
`target_atr` context ATRs from the close. Strength grows with the distance from the EMA in ATRs.
Bias: +1 when close > EMA and RSI > 50, -1 when close < EMA and RSI < 50, else 0.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from aipx_strategy.domain.indicators import EMA, RSI
from aipx_strategy.domain.strategies.base import (
    Bar,
    Direction,
    MarketContext,
    SignalIntent,
    Strategy,
    StrategyParams,
    atr_levels,
    clamp,
    params_of,
)


class RsiEmaParams(StrategyParams):
    rsi_period: int = Field(14, ge=2, description="RSI period")
    ema_period: int = Field(50, ge=1, description="trend EMA period")
    oversold: float = Field(30.0, gt=0, lt=100, description="RSI level a LONG must cross back above")
    overbought: float = Field(70.0, gt=0, lt=100, description="RSI level a SHORT must cross back below")
    stop_atr: float = Field(1.5, gt=0, description="stop-loss distance in ATRs")
    target_atr: float = Field(3.0, gt=0, description="take-profit distance in ATRs")

    @model_validator(mode="after")
    def _ordered(self) -> RsiEmaParams:
        if self.oversold >= self.overbought:
            raise ValueError("oversold must be below overbought")
        return self


class RsiEmaStrategy(Strategy):
    id = "rsi_ema"
    Params = RsiEmaParams

    def __init__(self, params: StrategyParams) -> None:
        super().__init__(params)
        p = self.p = params_of(params, RsiEmaParams)
        self.rsi = RSI(p.rsi_period)
        self.ema = EMA(p.ema_period)
        self.close: float | None = None

    def on_candle(self, bar: Bar, ctx: MarketContext) -> SignalIntent | None:
        prev_rsi = self.rsi.value
        rsi = self.rsi.update(bar.close)
        ema = self.ema.update(bar.close)
        self.close = bar.close
        if rsi is None or ema is None or prev_rsi is None:
            return None
        p = self.p
        if prev_rsi < p.oversold <= rsi and bar.close > ema:
            direction = Direction.LONG
            reason = f"RSI crossed above {p.oversold:g} with close above EMA{p.ema_period}"
        elif prev_rsi > p.overbought >= rsi and bar.close < ema:
            direction = Direction.SHORT
            reason = f"RSI crossed below {p.overbought:g} with close below EMA{p.ema_period}"
        else:
            return None
        stop, target = atr_levels(direction, bar.close, ctx.atr, p.stop_atr, p.target_atr)
        distance = abs(bar.close - ema) / ctx.atr if ctx.atr else 0.0
        return SignalIntent(
            direction, clamp(0.5 + distance / 4.0), stop, target, (reason,), {"rsi": rsi, "ema": ema}
        )

    def bias(self) -> float | None:
        rsi, ema, close = self.rsi.value, self.ema.value, self.close
        if rsi is None or ema is None or close is None:
            return None
        if close > ema and rsi > 50:
            return 1.0
        if close < ema and rsi < 50:
            return -1.0
        return 0.0

    def dump(self) -> list[Any]:
        return [self.rsi.dump(), self.ema.dump(), self.close]

    def load(self, data: list[Any]) -> None:
        self.rsi.load(data[0])
        self.ema.load(data[1])
        self.close = data[2]
