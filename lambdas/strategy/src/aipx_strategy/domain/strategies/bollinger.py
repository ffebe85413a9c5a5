"""Bollinger Bands mean reversion: fade closes that return inside the bands.

LONG when the previous close was below the lower band and this close is back above it; SHORT when the previous
close was above the upper band and this close is back below it. Take-profit is the middle band (the mean the
price reverts to); stop-loss is `stop_atr` context ATRs beyond the close. Strength grows with how far outside
the band the previous close was, relative to the band width. Bias (contrarian): +1 when %B < 0.2, -1 when
%B > 0.8, else 0.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from aipx_strategy.domain.indicators import BollingerBands
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


class BollingerParams(StrategyParams):
    period: int = Field(20, ge=2, description="SMA period of the middle band")
    k: float = Field(2.0, gt=0, description="band width in standard deviations")
    stop_atr: float = Field(1.5, gt=0, description="stop-loss distance in ATRs")


class BollingerStrategy(Strategy):
    id = "bollinger"
    Params = BollingerParams

    def __init__(self, params: StrategyParams) -> None:
        super().__init__(params)
        p = self.p = params_of(params, BollingerParams)
        self.bands = BollingerBands(p.period, p.k)
        self.prev: list[float] | None = None  # previous [close, lower, upper]
        self.percent_b: float | None = None

    def on_candle(self, bar: Bar, ctx: MarketContext) -> SignalIntent | None:
        value = self.bands.update(bar.close)
        prev = self.prev
        if value is None:
            return None
        lower, middle, upper = value
        self.prev = [bar.close, lower, upper]
        width = upper - lower
        self.percent_b = (bar.close - lower) / width if width > 0 else 0.5
        if prev is None or width <= 0:
            return None
        prev_close, prev_lower, prev_upper = prev
        if prev_close < prev_lower and bar.close > lower and bar.close < middle:
            direction, reason, excess = (
                Direction.LONG,
                "close returned above the lower band",
                prev_lower - prev_close,
            )
        elif prev_close > prev_upper and bar.close < upper and bar.close > middle:
            direction, reason, excess = (
                Direction.SHORT,
                "close returned below the upper band",
                prev_close - prev_upper,
            )
        else:
            return None
        stop = bar.close - int(direction) * self.p.stop_atr * ctx.atr if ctx.atr else None
        return SignalIntent(
            direction,
            clamp(0.5 + excess / width * 2.0),
            stop,
            middle,
            (reason,),
            {"bb_lower": lower, "bb_middle": middle, "bb_upper": upper, "bb_percent_b": self.percent_b},
        )

    def bias(self) -> float | None:
        if self.percent_b is None:
            return None
        return 1.0 if self.percent_b < 0.2 else -1.0 if self.percent_b > 0.8 else 0.0

    def dump(self) -> list[Any]:
        return [self.bands.dump(), self.prev, self.percent_b]

    def load(self, data: list[Any]) -> None:
        self.bands.load(data[0])
        self.prev, self.percent_b = data[1], data[2]
