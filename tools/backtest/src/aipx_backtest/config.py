"""What a backtest runs: strategies and their parameters, candle intervals, fees, slippage, sizing, risk."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def _registered() -> tuple[str, ...]:
    """Every strategy of the `aipx.strategies` entry point group (built-ins and installed plug-ins)."""
    from aipx_strategy.domain.strategies import REGISTRY

    return tuple(REGISTRY)


class RiskConfig(BaseModel):
    """The OMS pre-trade risk limits the backtest's orders are checked against (`aipx_oms.domain.risk`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_order_notional: Decimal = Decimal("1000000")
    max_position_notional: Decimal = Decimal("5000000")
    max_open_orders: int = Field(100, ge=1)
    price_band_bps: Decimal = Decimal("1000")
    min_notional: Decimal = Decimal("0")


class BacktestConfig(BaseModel):
    """One backtest. Money is Decimal (strings in JSON); `balance` is each strategy's starting cash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategies: tuple[str, ...] = Field(default_factory=_registered)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    intervals: tuple[str, ...] = ("1m",)
    atr_period: int = Field(14, ge=1)
    trend_fast: int = Field(50, ge=1)
    trend_slow: int = Field(200, ge=2)
    balance: Decimal = Decimal("10000")
    # Order size: a quantity per symbol, else `notional` worth of the symbol at the signal's price, rounded
    # down to `lot_size`.
    quantities: dict[str, Decimal] = Field(default_factory=dict)
    notional: Decimal = Decimal("1000")
    lot_size: Decimal = Decimal("0.000001")
    maker_fee_rate: Decimal = Decimal("0.0002")
    taker_fee_rate: Decimal = Decimal("0.0004")
    slippage_bps: Decimal = Decimal("0")
    allow_short: bool = True
    # Each signal's stop-loss (STOP) and take-profit (LIMIT) after entry; the first fill cancels the other.
    protective: bool = False
    # The cognitive ensemble's offline analysts approve or reject each signal before it becomes an order.
    ensemble: bool = False
    min_confidence: float = 0.7
    min_risk_reward: float = 1.5
    min_agreeing_votes: int = Field(2, ge=1)
    require_trend_agreement: bool = True
    risk: RiskConfig = Field(default_factory=RiskConfig)
    # Signals before this time warm the indicators up but do not trade (walk-forward out-of-sample windows).
    trade_from_ns: int | None = None

    @field_validator("balance", "notional", "lot_size")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value <= 0:
            raise ValueError(f"must be a positive decimal, got {value}")
        return value

    @field_validator("maker_fee_rate", "taker_fee_rate", "slippage_bps")
    @classmethod
    def _non_negative(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value < 0:
            raise ValueError(f"must be a decimal >= 0, got {value}")
        return value

    @field_validator("quantities")
    @classmethod
    def _positive_quantities(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for symbol, quantity in value.items():
            if not quantity.is_finite() or quantity <= 0:
                raise ValueError(f"quantity of {symbol} must be a positive decimal, got {quantity}")
        return value

    @model_validator(mode="after")
    def _engine_valid(self) -> BacktestConfig:
        self.engine_config()
        return self

    def engine_config(self) -> Any:
        """The strategy function's own EngineConfig (same validation as the live function's settings)."""
        from aipx_strategy.domain.engine import EngineConfig

        if self.trend_fast >= self.trend_slow:
            raise ValueError("trend_fast must be shorter than trend_slow")
        return EngineConfig.build(
            self.intervals,
            self.strategies,
            self.params,
            atr_period=self.atr_period,
            trend_fast=self.trend_fast,
            trend_slow=self.trend_slow,
        )
