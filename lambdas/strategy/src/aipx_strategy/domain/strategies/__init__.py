"""The six strategies of the original design, registered in one place."""

from aipx_strategy.domain.strategies.base import (
    Bar,
    Direction,
    MarketContext,
    SignalIntent,
    Strategy,
    StrategyParams,
)
from aipx_strategy.domain.strategies.bollinger import BollingerStrategy
from aipx_strategy.domain.strategies.ema_cross import EmaCrossStrategy
from aipx_strategy.domain.strategies.ichimoku import IchimokuStrategy
from aipx_strategy.domain.strategies.macd_stochastic import MacdStochasticStrategy
from aipx_strategy.domain.strategies.rsi_ema import RsiEmaStrategy
from aipx_strategy.domain.strategies.supertrend import SuperTrendStrategy

REGISTRY: dict[str, type[Strategy]] = {
    cls.id: cls
    for cls in (
        SuperTrendStrategy,
        RsiEmaStrategy,
        MacdStochasticStrategy,
        IchimokuStrategy,
        BollingerStrategy,
        EmaCrossStrategy,
    )
}


def strategy_class(strategy_id: str) -> type[Strategy]:
    """The registered strategy `strategy_id`; KeyError naming the known ids otherwise."""
    try:
        return REGISTRY[strategy_id]
    except KeyError:
        raise KeyError(f"unknown strategy {strategy_id!r}; known: {', '.join(REGISTRY)}") from None


__all__ = [
    "REGISTRY",
    "Bar",
    "Direction",
    "MarketContext",
    "SignalIntent",
    "Strategy",
    "StrategyParams",
    "strategy_class",
]
