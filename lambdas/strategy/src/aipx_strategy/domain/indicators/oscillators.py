"""Momentum oscillators, incremental: RSI, MACD, the stochastic oscillator."""

from __future__ import annotations

from typing import Any

from aipx_strategy.domain.indicators.moving import EMA, SMA, RollingWindow, WilderAverage

# TA-Lib's "is zero" tolerance, so flat markets give the same values as the reference.
_EPSILON = 1e-14


class RSI:
    """Wilder's relative strength index over `period` changes (first value after period + 1 inputs)."""

    __slots__ = ("gains", "losses", "period", "previous", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self.previous: float | None = None
        self.gains = WilderAverage(period)
        self.losses = WilderAverage(period)
        self.value: float | None = None

    def update(self, close: float) -> float | None:
        if self.previous is None:
            self.previous = close
            return None
        change = close - self.previous
        self.previous = close
        gain = self.gains.update(change if change > 0 else 0.0)
        loss = self.losses.update(-change if change < 0 else 0.0)
        if gain is None or loss is None:
            return None
        total = gain + loss
        self.value = 100.0 * (gain / total) if abs(total) >= _EPSILON else 0.0
        return self.value

    def dump(self) -> list[Any]:
        return [self.previous, self.gains.dump(), self.losses.dump(), self.value]

    def load(self, data: list[Any]) -> None:
        self.previous = data[0]
        self.gains.load(data[1])
        self.losses.load(data[2])
        self.value = data[3]


class MACD:
    """MACD line = EMA(fast) - EMA(slow); signal = EMA(signal) of the MACD; histogram = the difference."""

    __slots__ = ("fast", "macd", "signal", "slow")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        if fast >= slow:
            raise ValueError("MACD fast period must be shorter than the slow period")
        self.fast = EMA(fast)
        self.slow = EMA(slow)
        self.signal = EMA(signal)
        self.macd: float | None = None

    def update(self, close: float) -> tuple[float, float, float] | None:
        """(macd, signal, histogram) once warm, else None."""
        fast = self.fast.update(close)
        slow = self.slow.update(close)
        if fast is None or slow is None:
            return None
        self.macd = fast - slow
        signal = self.signal.update(self.macd)
        if signal is None:
            return None
        return self.macd, signal, self.macd - signal

    @property
    def value(self) -> tuple[float, float, float] | None:
        if self.macd is None or self.signal.value is None:
            return None
        return self.macd, self.signal.value, self.macd - self.signal.value

    def dump(self) -> list[Any]:
        return [self.fast.dump(), self.slow.dump(), self.signal.dump(), self.macd]

    def load(self, data: list[Any]) -> None:
        self.fast.load(data[0])
        self.slow.load(data[1])
        self.signal.load(data[2])
        self.macd = data[3]


class Stochastic:
    """Slow stochastic: fast %K over `k_period` bars, %K = SMA(`k_smooth`), %D = SMA(`d_period`) of %K."""

    __slots__ = ("d", "highs", "k", "lows")

    def __init__(self, k_period: int = 14, k_smooth: int = 3, d_period: int = 3) -> None:
        self.highs = RollingWindow(k_period)
        self.lows = RollingWindow(k_period)
        self.k = SMA(k_smooth)
        self.d = SMA(d_period)

    def update(self, high: float, low: float, close: float) -> tuple[float, float] | None:
        """(%K, %D) once warm, else None."""
        self.highs.push(high)
        self.lows.push(low)
        if not self.highs.full:
            return None
        lowest = self.lows.min()
        # Same operation order as TA-Lib: (close - lowest) / ((highest - lowest) / 100).
        diff = (self.highs.max() - lowest) / 100.0
        fast_k = (close - lowest) / diff if diff != 0.0 else 0.0
        k = self.k.update(fast_k)
        if k is None:
            return None
        d = self.d.update(k)
        if d is None:
            return None
        return k, d

    @property
    def value(self) -> tuple[float, float] | None:
        k, d = self.k.value, self.d.value
        return None if k is None or d is None else (k, d)

    def dump(self) -> list[Any]:
        return [self.highs.dump(), self.lows.dump(), self.k.dump(), self.d.dump()]

    def load(self, data: list[Any]) -> None:
        self.highs.load(data[0])
        self.lows.load(data[1])
        self.k.load(data[2])
        self.d.load(data[3])
