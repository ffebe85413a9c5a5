"""TradingSignal construction: deterministic ids, exact prices, the watermark of the input it reflects."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal

from aipx.ids import deterministic_id
from aipx.money import to_pb
from aipx.v1.common_pb2 import Watermark
from aipx.v1.signals_pb2 import SignalDirection, TradingSignal

from aipx_strategy.domain.candles import Candle
from aipx_strategy.domain.strategies import Direction, MarketContext, SignalIntent

_DIRECTIONS = {
    Direction.LONG: SignalDirection.SIGNAL_DIRECTION_LONG,
    Direction.SHORT: SignalDirection.SIGNAL_DIRECTION_SHORT,
}


def signal_id(
    strategy_id: str, venue: str, symbol: str, interval: str, *, close_time_ns: int, direction: Direction
) -> str:
    """Same strategy, instrument, interval, candle and direction -> same id, in every process and replay."""
    return deterministic_id("signal", strategy_id, venue, symbol, interval, close_time_ns, direction.name)


def level_price(value: float, places: int) -> Decimal:
    """An indicator-derived level as an exact price, rounded half-even to the instrument's places."""
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def build_signal(
    *,
    strategy_id: str,
    venue: str,
    symbol: str,
    interval: str,
    candle: Candle,
    intent: SignalIntent,
    context: MarketContext,
    biases: Mapping[str, float | None],
    price_places: int,
    generated_time_ns: int,
) -> TradingSignal:
    """The signal for `intent` on `candle`. Indicators carry the strategy's own values plus the shared context
    (`atr`, `trend`, `trend_ema_fast`, `trend_ema_slow`) and every strategy's bias as `bias.<strategy id>`."""
    indicators = dict(intent.indicators)
    if context.atr is not None:
        indicators["atr"] = context.atr
    if context.trend is not None:
        indicators["trend"] = float(context.trend)
    if context.trend_ema_fast is not None:
        indicators["trend_ema_fast"] = context.trend_ema_fast
    if context.trend_ema_slow is not None:
        indicators["trend_ema_slow"] = context.trend_ema_slow
    for sid, bias in biases.items():
        if bias is not None:
            indicators[f"bias.{sid}"] = bias
    signal = TradingSignal(
        signal_id=signal_id(
            strategy_id,
            venue,
            symbol,
            interval,
            close_time_ns=candle.close_time_ns,
            direction=intent.direction,
        ),
        strategy_id=strategy_id,
        venue=venue,
        symbol=symbol,
        interval=interval,
        direction=_DIRECTIONS[intent.direction],
        strength=intent.strength,
        price=to_pb(candle.close),
        reasons=list(intent.reasons),
        indicators=indicators,
        candle_close_time_ns=candle.close_time_ns,
        generated_time_ns=generated_time_ns,
    )
    if intent.stop_loss is not None:
        signal.stop_loss.CopyFrom(to_pb(level_price(intent.stop_loss, price_places)))
    if intent.take_profit is not None:
        signal.take_profit.CopyFrom(to_pb(level_price(intent.take_profit, price_places)))
    position = candle.last_position
    signal.watermark.CopyFrom(
        Watermark(
            exchange_time_ns=candle.last_event_time_ns,
            topic=position.topic if position else "",
            partition=position.partition if position else 0,
            offset=position.offset if position else 0,
        )
    )
    return signal
