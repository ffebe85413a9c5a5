"""Volatility indicators, incremental: true range / ATR, Bollinger Bands."""

from __future__ import annotations

import math
from typing import Any

from aipx_strategy.domain.indicators.moving import SMA, WilderAverage


class ATR:
    """Average true range (Wilder). Bar 1 has no previous close: the first true range is bar 2's."""

    __slots__ = ("average", "previous_close")

    def __init__(self, period: int = 14) -> None:
        self.average = WilderAverage(period)
        self.previous_close: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        previous = self.previous_close
        self.previous_close = close
        if previous is None:
            return None
        true_range = max(high - low, abs(high - previous), abs(low - previous))
        return self.average.update(true_range)

    @property
    def value(self) -> float | None:
        return self.average.value

    def dump(self) -> list[Any]:
        return [self.previous_close, self.average.dump()]

    def load(self, data: list[Any]) -> None:
        self.previous_close = data[0]
        self.average.load(data[1])


class BollingerBands:
    """Middle = SMA(period); upper/lower = middle +/- k * population standard deviation of the window."""

    __slots__ = ("k", "sma")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self.sma = SMA(period)
        self.k = k

    def update(self, close: float) -> tuple[float, float, float] | None:
        """(lower, middle, upper) once warm, else None."""
        self.sma.update(close)
        return self.value

    @property
    def value(self) -> tuple[float, float, float] | None:
        middle = self.sma.value
        if middle is None:
            return None
        values = self.sma.window.values
        variance = sum((v - middle) ** 2 for v in values) / len(values)
        width = self.k * math.sqrt(variance)
        return middle - width, middle, middle + width

    def dump(self) -> list[Any]:
        return self.sma.dump()

    def load(self, data: list[Any]) -> None:
        self.sma.load(data)
