"""MACD + Stochastic: MACD crossovers confirmed by stochastic momentum that is not yet exhausted.

LONG when the MACD line crosses above its signal line while stochastic %K is above %D and below
`overbought`; SHORT when MACD crosses below its signal while %K is below %D and above `oversold`.
Stop-loss is the lowest low (LONG) / highest high (SHORT) of the stochastic window when that is at least half
an ATR away, else `stop_atr` ATRs from the close; take-profit is `target_atr` context ATRs from the close.
Strength grows with the MACD histogram relative to the ATR. Bias: sign of the MACD histogram.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from aipx_strategy.domain.indicators import MACD, Stochastic
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


class MacdStochasticParams(StrategyParams):
    macd_fast: int = Field(12, ge=1, description="MACD fast EMA period")
    macd_slow: int = Field(26, ge=2, description="MACD slow EMA period")
    macd_signal: int = Field(9, ge=1, description="MACD signal EMA period")
    stoch_k: int = Field(14, ge=1, description="stochastic look-back (fast %K)")
    stoch_k_smooth: int = Field(3, ge=1, description="%K smoothing (SMA)")
    stoch_d: int = Field(3, ge=1, description="%D period (SMA of %K)")
    oversold: float = Field(20.0, ge=0, le=100, description="%K floor for a SHORT")
    overbought: float = Field(80.0, ge=0, le=100, description="%K ceiling for a LONG")
    stop_atr: float = Field(1.5, gt=0, description="fallback stop-loss distance in ATRs")
    target_atr: float = Field(3.0, gt=0, description="take-profit distance in ATRs")

    @model_validator(mode="after")
    def _ordered(self) -> MacdStochasticParams:
        if self.macd_fast >= self.macd_slow:
            raise ValueError("macd_fast must be shorter than macd_slow")
        if self.oversold >= self.overbought:
            raise ValueError("oversold must be below overbought")
        return self


class MacdStochasticStrategy(Strategy):
    id = "macd_stochastic"
    Params = MacdStochasticParams

    def __init__(self, params: StrategyParams) -> None:
        super().__init__(params)
        p = self.p = params_of(params, MacdStochasticParams)
        self.macd = MACD(p.macd_fast, p.macd_slow, p.macd_signal)
        self.stochastic = Stochastic(p.stoch_k, p.stoch_k_smooth, p.stoch_d)

    def on_candle(self, bar: Bar, ctx: MarketContext) -> SignalIntent | None:
        prev = self.macd.value
        macd = self.macd.update(bar.close)
        stoch = self.stochastic.update(bar.high, bar.low, bar.close)
        if macd is None or stoch is None or prev is None:
            return None
        line, signal, hist = macd
        k, d = stoch
        p = self.p
        if crossed_above(prev[0], prev[1], line, signal) and k > d and k < p.overbought:
            direction, reason = Direction.LONG, f"MACD crossed above signal; %K {k:.1f} > %D {d:.1f}"
        elif crossed_below(prev[0], prev[1], line, signal) and k < d and k > p.oversold:
            direction, reason = Direction.SHORT, f"MACD crossed below signal; %K {k:.1f} < %D {d:.1f}"
        else:
            return None
        stop, target = atr_levels(direction, bar.close, ctx.atr, p.stop_atr, p.target_atr)
        swing = self.stochastic.lows.min() if direction is Direction.LONG else self.stochastic.highs.max()
        if ctx.atr and abs(bar.close - swing) >= ctx.atr / 2.0:
            stop = swing
        strength = clamp(0.5 + abs(hist) / ctx.atr) if ctx.atr else 0.5
        return SignalIntent(
            direction,
            strength,
            stop,
            target,
            (reason,),
            {"macd": line, "macd_signal": signal, "macd_hist": hist, "stoch_k": k, "stoch_d": d},
        )

    def bias(self) -> float | None:
        value = self.macd.value
        if value is None:
            return None
        return 1.0 if value[2] > 0 else -1.0 if value[2] < 0 else 0.0

    def dump(self) -> list[Any]:
        return [self.macd.dump(), self.stochastic.dump()]

    def load(self, data: list[Any]) -> None:
        self.macd.load(data[0])
        self.stochastic.load(data[1])
