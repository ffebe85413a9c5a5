"""Settings of the strategy function (environment variables AIPX_STRATEGY_*, plus the shared sections).

AIPX_STRATEGY_INTERVALS        JSON list of candle intervals, e.g. '["1m","5m"]' (default ["1m"])
AIPX_STRATEGY_STRATEGIES       JSON list of strategy ids to run (default: all six)
AIPX_STRATEGY_PARAMS           JSON object of per-strategy parameter overrides,
                               e.g. '{"rsi_ema": {"rsi_period": 10, "oversold": 25}}' (unknown keys rejected)
AIPX_STRATEGY_ATR_PERIOD       ATR period of the shared context (protective levels), default 14
AIPX_STRATEGY_TREND_FAST/SLOW  EMA periods of the shared trend filter, default 50/200
AIPX_STRATEGY_MAX_GAP_CANDLES  empty intervals filled with flat candles before the series restarts (60)
AIPX_STRATEGY_STATE_TTL_S      seconds an idle instrument's state is kept in Redis (default 7 days)
AIPX_STRATEGY_STATE_KEY_PREFIX Redis key prefix of the per-instrument state
AIPX_STRATEGY_SIGNALS_TOPIC    output topic (default: the catalogue's trading-signals)
"""

from __future__ import annotations

from typing import Any

from aipx.settings import ComponentSettings
from aipx.topics import TRADING_SIGNALS
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from aipx_strategy.domain.engine import EngineConfig
from aipx_strategy.domain.strategies import REGISTRY


class StrategySettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="AIPX_STRATEGY_", extra="forbid", frozen=True)

    intervals: list[str] = Field(default_factory=lambda: ["1m"])
    strategies: list[str] = Field(default_factory=lambda: list(REGISTRY))
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    atr_period: int = Field(14, ge=1)
    trend_fast: int = Field(50, ge=1)
    trend_slow: int = Field(200, ge=2)
    max_gap_candles: int = Field(60, ge=0)
    state_ttl_s: int = Field(7 * 86_400, ge=60)
    state_key_prefix: str = "aipx:strategy:state"
    signals_topic: str = TRADING_SIGNALS

    @model_validator(mode="after")
    def _engine_config_valid(self) -> StrategySettings:
        self.engine_config()
        return self

    def engine_config(self) -> EngineConfig:
        """The validated engine configuration (ValueError naming what is wrong)."""
        if self.trend_fast >= self.trend_slow:
            raise ValueError("trend_fast must be shorter than trend_slow")
        return EngineConfig.build(
            self.intervals,
            self.strategies,
            self.params,
            atr_period=self.atr_period,
            trend_fast=self.trend_fast,
            trend_slow=self.trend_slow,
            max_gap=self.max_gap_candles,
        )
