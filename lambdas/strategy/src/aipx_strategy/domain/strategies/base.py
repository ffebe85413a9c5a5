"""The one small interface every strategy implements, and what it is given and returns.

A strategy is a module in this package with one `Strategy` subclass that declares:

* `id` — the strategy id carried in signals (e.g. "ema_cross");
* `Params` — a frozen pydantic model of its documented parameters (unknown fields rejected);
* `on_candle(bar, ctx)` — called once per closed candle, oldest first; returns a `SignalIntent` on the bar
  where its entry condition triggers, else None;
* `bias()` — its current stance in [-1, 1] (None while warming up), attached to every signal of the symbol so
  downstream analysts can measure confluence;
* `dump()` / `load()` — its indicator state as JSON-able lists (kept in Redis between invocations).

Register it as an entry point of the `aipx.strategies` group named after its id (the built-ins are in
lambdas/strategy/pyproject.toml; a strategy of your own lives in its own package: examples/strategy-plugin is
the template). `ema_cross.py` is the smallest complete example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict


class Direction(IntEnum):
    LONG = 1
    SHORT = -1


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: frozen, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Bar:
    """A closed candle's values as floats, for indicator math (the exact prices stay in the Candle)."""

    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class MarketContext:
    """Shared per-interval context computed before the strategies run on a bar."""

    # ATR over the context period (for protective levels); None while warming up.
    atr: float | None
    # +1 up-trend (close > slow EMA and fast EMA > slow EMA), -1 down-trend, 0 neither, None while warming up.
    trend: int | None
    trend_ema_fast: float | None
    trend_ema_slow: float | None


@dataclass(frozen=True, slots=True)
class SignalIntent:
    """What a strategy wants: direction, conviction, suggested protective levels and why."""

    direction: Direction
    strength: float
    stop_loss: float | None
    take_profit: float | None
    reasons: tuple[str, ...]
    indicators: dict[str, float] = field(default_factory=dict)


P = TypeVar("P", bound=StrategyParams)


def params_of(params: StrategyParams, expected: type[P]) -> P:
    """`params` as the strategy's own parameter class (TypeError for another strategy's)."""
    if not isinstance(params, expected):
        raise TypeError(f"expected {expected.__name__}, got {type(params).__name__}")
    return params


def clamp(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return max(low, min(high, value))


def atr_levels(
    direction: Direction, close: float, atr: float | None, stop_atr: float, target_atr: float
) -> tuple[float | None, float | None]:
    """Stop-loss and take-profit `stop_atr` / `target_atr` ATRs away from the close (None without an ATR)."""
    if atr is None or atr <= 0:
        return None, None
    sign = int(direction)
    return close - sign * stop_atr * atr, close + sign * target_atr * atr


def crossed_above(prev_a: float | None, prev_b: float | None, a: float, b: float) -> bool:
    """a crossed above b on this bar (was at or below it on the previous bar)."""
    return prev_a is not None and prev_b is not None and prev_a <= prev_b and a > b


def crossed_below(prev_a: float | None, prev_b: float | None, a: float, b: float) -> bool:
    """a crossed below b on this bar (was at or above it on the previous bar)."""
    return prev_a is not None and prev_b is not None and prev_a >= prev_b and a < b


class Strategy(ABC):
    """A technical strategy on one instrument and one candle interval."""

    id: ClassVar[str]
    Params: ClassVar[type[StrategyParams]]

    def __init__(self, params: StrategyParams) -> None:
        self.params = params

    @abstractmethod
    def on_candle(self, bar: Bar, ctx: MarketContext) -> SignalIntent | None:
        """Feed one closed candle; a SignalIntent when the entry condition triggers on it."""

    @abstractmethod
    def bias(self) -> float | None:
        """Current stance in [-1, 1] (positive bullish), None while warming up."""

    @abstractmethod
    def dump(self) -> list[Any]:
        """Indicator state as JSON-able data."""

    @abstractmethod
    def load(self, data: list[Any]) -> None:
        """Restore the state written by dump()."""
