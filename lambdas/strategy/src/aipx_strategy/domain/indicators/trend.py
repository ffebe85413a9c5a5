"""Trend indicators, incremental: SuperTrend and the Ichimoku cloud."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from aipx_strategy.domain.indicators.moving import RollingWindow
from aipx_strategy.domain.indicators.volatility import ATR


@dataclass(frozen=True, slots=True)
class SuperTrendValue:
    line: float
    # +1 up-trend (line is the lower band, below price), -1 down-trend (line is the upper band).
    direction: int
    atr: float


class SuperTrend:
    """SuperTrend as TradingView's ta.supertrend(factor, atr_period): hl2 +/- factor * ATR, ratcheted bands.

    The direction starts as down-trend on the first bar with an ATR (as in TradingView) and flips when the
    close crosses the active band.
    """

    __slots__ = ("atr", "direction", "factor", "prev_close", "prev_line", "prev_lower", "prev_upper")

    def __init__(self, atr_period: int = 10, factor: float = 3.0) -> None:
        self.atr = ATR(atr_period)
        self.factor = factor
        self.prev_close: float | None = None
        self.prev_upper: float | None = None
        self.prev_lower: float | None = None
        self.prev_line: float | None = None
        self.direction = 0

    def update(self, high: float, low: float, close: float) -> SuperTrendValue | None:
        atr = self.atr.update(high, low, close)
        prev_close, self.prev_close = self.prev_close, close
        if atr is None:
            return None
        middle = (high + low) / 2.0
        upper = middle + self.factor * atr
        lower = middle - self.factor * atr
        if self.prev_line is None or self.prev_lower is None or self.prev_upper is None or prev_close is None:
            direction = -1
        else:
            if not (lower > self.prev_lower or prev_close < self.prev_lower):
                lower = self.prev_lower
            if not (upper < self.prev_upper or prev_close > self.prev_upper):
                upper = self.prev_upper
            if self.prev_line == self.prev_upper:
                direction = 1 if close > upper else -1
            else:
                direction = -1 if close < lower else 1
        line = lower if direction == 1 else upper
        self.prev_upper, self.prev_lower, self.prev_line, self.direction = upper, lower, line, direction
        return SuperTrendValue(line, direction, atr)

    def dump(self) -> list[Any]:
        return [
            self.atr.dump(),
            self.prev_close,
            self.prev_upper,
            self.prev_lower,
            self.prev_line,
            self.direction,
        ]

    def load(self, data: list[Any]) -> None:
        self.atr.load(data[0])
        self.prev_close, self.prev_upper, self.prev_lower, self.prev_line = data[1:5]
        self.direction = int(data[5])


@dataclass(frozen=True, slots=True)
class IchimokuValue:
    tenkan: float
    kijun: float
    # Leading spans computed on this bar (they form the cloud `displacement - 1` bars ahead).
    span_a: float
    span_b: float
    # The cloud under the current bar (spans computed `displacement - 1` bars ago); None until available.
    cloud_a: float | None
    cloud_b: float | None


class Ichimoku:
    """Ichimoku Kinko Hyo: tenkan/kijun/senkou B are midpoints of the high-low range over their periods.

    Span A = (tenkan + kijun) / 2. The cloud is drawn `displacement - 1` bars ahead (TradingView's convention:
    the current bar counts as the first of the 26).
    """

    __slots__ = ("displacement", "highs", "kijun_period", "lows", "senkou_b_period", "spans", "tenkan_period")

    def __init__(self, tenkan: int = 9, kijun: int = 26, senkou_b: int = 52, displacement: int = 26) -> None:
        if not tenkan <= kijun <= senkou_b:
            raise ValueError("Ichimoku periods must satisfy tenkan <= kijun <= senkou_b")
        if displacement < 1:
            raise ValueError("displacement must be >= 1")
        self.tenkan_period = tenkan
        self.kijun_period = kijun
        self.senkou_b_period = senkou_b
        self.displacement = displacement
        self.highs = RollingWindow(senkou_b)
        self.lows = RollingWindow(senkou_b)
        self.spans: deque[tuple[float, float]] = deque(maxlen=displacement)

    def _midpoint(self, period: int) -> float:
        highs = list(self.highs.values)[-period:]
        lows = list(self.lows.values)[-period:]
        return (max(highs) + min(lows)) / 2.0

    def update(self, high: float, low: float) -> IchimokuValue | None:
        self.highs.push(high)
        self.lows.push(low)
        if not self.highs.full:
            return None
        tenkan = self._midpoint(self.tenkan_period)
        kijun = self._midpoint(self.kijun_period)
        span_a = (tenkan + kijun) / 2.0
        span_b = self._midpoint(self.senkou_b_period)
        self.spans.append((span_a, span_b))
        cloud_a: float | None = None
        cloud_b: float | None = None
        if len(self.spans) == self.displacement:
            cloud_a, cloud_b = self.spans[0]
        return IchimokuValue(tenkan, kijun, span_a, span_b, cloud_a, cloud_b)

    def dump(self) -> list[Any]:
        return [self.highs.dump(), self.lows.dump(), [list(s) for s in self.spans]]

    def load(self, data: list[Any]) -> None:
        self.highs.load(data[0])
        self.lows.load(data[1])
        self.spans = deque(((float(a), float(b)) for a, b in data[2]), maxlen=self.displacement)
