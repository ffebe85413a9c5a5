"""Signals for the cognitive tests."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from aipx.money import to_pb
from aipx.v1.signals_pb2 import SignalDirection, TradingSignal

LONG = SignalDirection.SIGNAL_DIRECTION_LONG
SHORT = SignalDirection.SIGNAL_DIRECTION_SHORT


def make_signal(
    *,
    direction: int = LONG,
    price: str = "30000",
    stop: str | None = "29900",
    target: str | None = "30300",
    trend: float | None = 1.0,
    biases: dict[str, float] | None = None,
    strategy: str = "ema_cross",
    symbol: str = "BTC-USDT",
    signal_id: str = "sig-1",
    **extra: Any,
) -> TradingSignal:
    """A signal; defaults: LONG at 30000, R/R 3, up-trend, every other strategy bullish."""
    indicators = {"atr": 50.0}
    if trend is not None:
        indicators["trend"] = trend
    bias = (
        biases
        if biases is not None
        else {"supertrend": 1.0, "rsi_ema": 1.0, "macd_stochastic": 1.0, "ichimoku": 0.0, "bollinger": 1.0}
    )
    indicators.update({f"bias.{k}": v for k, v in bias.items()})
    signal = TradingSignal(
        signal_id=signal_id,
        strategy_id=strategy,
        venue="binance",
        symbol=symbol,
        interval="1m",
        direction=direction,  # type: ignore[arg-type]
        strength=0.7,
        price=to_pb(Decimal(price)),
        reasons=["EMA9 crossed above EMA21"],
        indicators=indicators,
        candle_close_time_ns=1_767_225_660_000_000_000,
        **extra,
    )
    if stop is not None:
        signal.stop_loss.CopyFrom(to_pb(Decimal(stop)))
    if target is not None:
        signal.take_profit.CopyFrom(to_pb(Decimal(target)))
    return signal


@pytest.fixture
def signal_factory() -> Callable[..., TradingSignal]:
    return make_signal
