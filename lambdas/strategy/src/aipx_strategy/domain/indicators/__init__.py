"""Technical indicators on candle values, incremental and serializable (`dump()` / `load()`).

Floats are fine here: indicator values are analytics, never money. Every indicator outputs None until warm.
"""

from aipx_strategy.domain.indicators.moving import EMA, SMA, RollingWindow, WilderAverage
from aipx_strategy.domain.indicators.oscillators import MACD, RSI, Stochastic
from aipx_strategy.domain.indicators.trend import Ichimoku, IchimokuValue, SuperTrend, SuperTrendValue
from aipx_strategy.domain.indicators.volatility import ATR, BollingerBands

__all__ = [
    "ATR",
    "EMA",
    "MACD",
    "RSI",
    "SMA",
    "BollingerBands",
    "Ichimoku",
    "IchimokuValue",
    "RollingWindow",
    "Stochastic",
    "SuperTrend",
    "SuperTrendValue",
    "WilderAverage",
]
