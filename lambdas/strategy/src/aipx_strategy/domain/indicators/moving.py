"""Moving averages and rolling windows, incremental (one value in, the current value out).

Seeding follows TA-Lib so values can be checked against it bar for bar: an EMA or Wilder average starts with
the simple mean of its first `period` inputs, and outputs None until then.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class RollingWindow:
    """The last `size` values."""

    __slots__ = ("size", "values")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("window size must be >= 1")
        self.size = size
        self.values: deque[float] = deque(maxlen=size)

    def push(self, value: float) -> None:
        self.values.append(value)

    @property
    def full(self) -> bool:
        return len(self.values) == self.size

    def max(self) -> float:
        return max(self.values)

    def min(self) -> float:
        return min(self.values)

    def dump(self) -> list[Any]:
        return list(self.values)

    def load(self, data: list[Any]) -> None:
        self.values = deque((float(v) for v in data), maxlen=self.size)


class SMA:
    """Simple moving average over `period` values (mean of the window, recomputed: no drift)."""

    __slots__ = ("period", "window")

    def __init__(self, period: int) -> None:
        self.period = period
        self.window = RollingWindow(period)

    def update(self, value: float) -> float | None:
        self.window.push(value)
        return self.value

    @property
    def value(self) -> float | None:
        if not self.window.full:
            return None
        return sum(self.window.values) / self.period

    def dump(self) -> list[Any]:
        return self.window.dump()

    def load(self, data: list[Any]) -> None:
        self.window.load(data)


class EMA:
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the SMA of the first `period`."""

    __slots__ = ("alpha", "count", "period", "seed_sum", "value")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self.alpha = 2.0 / (period + 1)
        self.count = 0
        self.seed_sum = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        if self.value is None:
            self.count += 1
            self.seed_sum += x
            if self.count == self.period:
                self.value = self.seed_sum / self.period
            return self.value
        self.value = (x - self.value) * self.alpha + self.value
        return self.value

    def dump(self) -> list[Any]:
        return [self.count, self.seed_sum, self.value]

    def load(self, data: list[Any]) -> None:
        self.count, self.seed_sum, self.value = int(data[0]), float(data[1]), data[2]


class WilderAverage:
    """Wilder's smoothing (RMA): avg = (avg * (period - 1) + x) / period, seeded with an SMA."""

    __slots__ = ("count", "period", "seed_sum", "value")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self.count = 0
        self.seed_sum = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        if self.value is None:
            self.count += 1
            self.seed_sum += x
            if self.count == self.period:
                self.value = self.seed_sum / self.period
            return self.value
        self.value = (self.value * (self.period - 1) + x) / self.period
        return self.value

    def dump(self) -> list[Any]:
        return [self.count, self.seed_sum, self.value]

    def load(self, data: list[Any]) -> None:
        self.count, self.seed_sum, self.value = int(data[0]), float(data[1]), data[2]
