"""Ichimoku cloud: breakouts from the cloud (kumo) confirmed by the tenkan/kijun relation.

LONG when the close breaks above the cloud with tenkan >= kijun, or when tenkan crosses above kijun while
the close is already above the cloud; SHORT mirrors both. Stop-loss is the kijun-sen when it lies on the
protective side of the close, else the far edge of the cloud; take-profit is `target_atr` context ATRs from
the close.
Strength grows with the close's distance from the cloud in ATRs. Bias: +1 above the cloud, -1 below, 0 inside.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from aipx_strategy.domain.indicators import Ichimoku
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


class IchimokuParams(StrategyParams):
    tenkan: int = Field(9, ge=1, description="conversion line period")
    kijun: int = Field(26, ge=1, description="base line period")
    senkou_b: int = Field(52, ge=1, description="leading span B period")
    displacement: int = Field(26, ge=1, description="bars the cloud is drawn ahead (current bar counts)")
    target_atr: float = Field(3.0, gt=0, description="take-profit distance in ATRs")


class IchimokuStrategy(Strategy):
    id = "ichimoku"
    Params = IchimokuParams

    def __init__(self, params: StrategyParams) -> None:
        super().__init__(params)
        p = self.p = params_of(params, IchimokuParams)
        self.ichimoku = Ichimoku(p.tenkan, p.kijun, p.senkou_b, p.displacement)
        # Previous bar's close position relative to the cloud (+1 above, -1 below, 0 inside) and TK sign.
        self.position: int | None = None
        self.tk: int | None = None

    def on_candle(self, bar: Bar, ctx: MarketContext) -> SignalIntent | None:
        value = self.ichimoku.update(bar.high, bar.low)
        if value is None or value.cloud_a is None or value.cloud_b is None:
            return None
        top, bottom = max(value.cloud_a, value.cloud_b), min(value.cloud_a, value.cloud_b)
        position = 1 if bar.close > top else -1 if bar.close < bottom else 0
        tk = 1 if value.tenkan > value.kijun else -1 if value.tenkan < value.kijun else 0
        prev_position, prev_tk = self.position, self.tk
        self.position, self.tk = position, tk
        if prev_position is None or prev_tk is None:
            return None
        direction: Direction | None = None
        if position == 1 and prev_position != 1 and tk >= 0:
            direction, reason = Direction.LONG, "close broke above the cloud, tenkan >= kijun"
        elif position == -1 and prev_position != -1 and tk <= 0:
            direction, reason = Direction.SHORT, "close broke below the cloud, tenkan <= kijun"
        elif position == 1 and tk == 1 and prev_tk != 1:
            direction, reason = Direction.LONG, "tenkan crossed above kijun above the cloud"
        elif position == -1 and tk == -1 and prev_tk != -1:
            direction, reason = Direction.SHORT, "tenkan crossed below kijun below the cloud"
        if direction is None:
            return None
        sign = int(direction)
        kijun_protects = (bar.close - value.kijun) * sign > 0
        stop = value.kijun if kijun_protects else (bottom if sign > 0 else top)
        target = bar.close + sign * self.p.target_atr * ctx.atr if ctx.atr else None
        edge = top if sign > 0 else bottom
        strength = clamp(0.5 + abs(bar.close - edge) / ctx.atr / 2.0) if ctx.atr else 0.5
        return SignalIntent(
            direction,
            strength,
            stop,
            target,
            (reason,),
            {
                "tenkan": value.tenkan,
                "kijun": value.kijun,
                "cloud_top": top,
                "cloud_bottom": bottom,
            },
        )

    def bias(self) -> float | None:
        return None if self.position is None else float(self.position)

    def dump(self) -> list[Any]:
        return [self.ichimoku.dump(), self.position, self.tk]

    def load(self, data: list[Any]) -> None:
        self.ichimoku.load(data[0])
        self.position, self.tk = data[1], data[2]
