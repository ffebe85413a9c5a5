"""Donchian channel breakout: trend following on a close beyond the last `period` bars' range.

LONG when the close is above the highest high of the previous `period` bars, SHORT when it is below their
lowest low. Stop-loss and take-profit are `stop_atr` / `target_atr` context ATRs from the close. Strength
grows with how far beyond the channel the close is, relative to the channel's width. Bias: where the close
sits in the channel, from -1 (at the low) to +1 (at the high).

What a strategy provides (aipx_strategy.domain.strategies.base): `id`, a frozen `Params` model (unknown
fields rejected), `on_candle` once per closed candle, `bias`, and `dump`/`load` of its state as JSON-able
lists (kept in Redis between the live function's invocations; the backtester never needs them).
"""

from __future__ import annotations

from typing import Any

from aipx_strategy.domain.indicators import RollingWindow
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
from pydantic import Field


class DonchianParams(StrategyParams):
    period: int = Field(20, ge=2, description="bars in the channel")
    stop_atr: float = Field(2.0, gt=0, description="stop-loss distance in ATRs")
    target_atr: float = Field(4.0, gt=0, description="take-profit distance in ATRs")


class DonchianBreakoutStrategy(Strategy):
    id = "donchian_breakout"
    Params = DonchianParams

    def __init__(self, params: StrategyParams) -> None:
        super().__init__(params)
        p = self.p = params_of(params, DonchianParams)
        self.highs = RollingWindow(p.period)
        self.lows = RollingWindow(p.period)
        self.position: float | None = None  # where the last close sat in the channel, in [-1, 1]

    def on_candle(self, bar: Bar, ctx: MarketContext) -> SignalIntent | None:
        intent = None
        if self.highs.full:
            high, low = self.highs.max(), self.lows.min()
            width = high - low
            if width > 0:
                self.position = clamp((bar.close - low) / width * 2 - 1, -1.0, 1.0)
                if bar.close > high:
                    intent = self._intent(
                        Direction.LONG, bar, ctx, excess=(bar.close - high) / width, high=high, low=low
                    )
                elif bar.close < low:
                    intent = self._intent(
                        Direction.SHORT, bar, ctx, excess=(low - bar.close) / width, high=high, low=low
                    )
        self.highs.push(bar.high)
        self.lows.push(bar.low)
        return intent

    def _intent(
        self, direction: Direction, bar: Bar, ctx: MarketContext, *, excess: float, high: float, low: float
    ) -> SignalIntent:
        stop, target = atr_levels(direction, bar.close, ctx.atr, self.p.stop_atr, self.p.target_atr)
        side = "above the high" if direction is Direction.LONG else "below the low"
        return SignalIntent(
            direction,
            clamp(0.5 + excess),
            stop,
            target,
            (f"close broke {side} of the last {self.p.period} bars",),
            {"donchian_high": high, "donchian_low": low},
        )

    def bias(self) -> float | None:
        return self.position

    def dump(self) -> list[Any]:
        return [self.highs.dump(), self.lows.dump(), self.position]

    def load(self, data: list[Any]) -> None:
        self.highs.load(data[0])
        self.lows.load(data[1])
        self.position = data[2]
