"""The per-instrument engine: the six strategies fire, replays are deterministic and idempotent, state
survives serialization exactly, signals carry exact prices, deterministic ids and the watermark."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest
from aipx.ids import deterministic_id
from aipx.money import from_pb, to_pb
from aipx.v1.market_data_pb2 import FeedGap, MarketDataEnvelope, Quote, Trade
from aipx.v1.signals_pb2 import SignalDirection, TradingSignal
from aipx_strategy.domain.candles import Position
from aipx_strategy.domain.engine import EngineConfig, InvalidTradeError, SymbolEngine
from aipx_strategy.domain.strategies import REGISTRY

MakeTrades = Callable[..., list[MarketDataEnvelope]]
NOW = 1_800_000_000_000_000_000
# Shorter trend filter and looser RSI zones than the defaults so 25 hours of synthetic data exercise every
# strategy in both directions (RSI + EMA with 30/70 is a rare-event strategy on a random walk).
PARAMS = {"rsi_ema": {"oversold": 40, "overbought": 60}}
CONFIG = EngineConfig.build(["1m", "5m"], list(REGISTRY), PARAMS, trend_fast=20, trend_slow=50)


def run(engine: SymbolEngine, envelopes: list[MarketDataEnvelope], *, start: int = 0) -> list[TradingSignal]:
    out: list[TradingSignal] = []
    for i, env in enumerate(envelopes):
        out.extend(engine.apply(env, Position("market-data-raw", 3, start + i), now_ns=NOW).signals)
    return out


@pytest.fixture(scope="module")
def data(trades: MakeTrades) -> list[MarketDataEnvelope]:
    return trades(1500)


@pytest.fixture(scope="module")
def signals(data: list[MarketDataEnvelope]) -> list[TradingSignal]:
    return run(SymbolEngine(CONFIG, "binance", "BTC-USDT"), data)


def test_every_strategy_fires_both_ways(signals: list[TradingSignal]) -> None:
    seen = Counter((s.strategy_id, s.interval, s.direction) for s in signals)
    for sid in REGISTRY:
        for direction in (SignalDirection.SIGNAL_DIRECTION_LONG, SignalDirection.SIGNAL_DIRECTION_SHORT):
            assert seen[(sid, "1m", direction)] > 0, f"{sid} never signalled {direction} on 1m"
    assert any(s.interval == "5m" for s in signals)


def test_signals_are_well_formed(signals: list[TradingSignal]) -> None:
    for s in signals:
        price = from_pb(s.price)
        assert price is not None and price > 0
        assert s.signal_id == deterministic_id(
            "signal",
            s.strategy_id,
            "binance",
            "BTC-USDT",
            s.interval,
            s.candle_close_time_ns,
            SignalDirection.Name(s.direction).removeprefix("SIGNAL_DIRECTION_"),
        )
        assert 0.0 <= s.strength <= 1.0 and s.reasons
        sign = 1 if s.direction == SignalDirection.SIGNAL_DIRECTION_LONG else -1
        stop, target = from_pb(s.stop_loss), from_pb(s.take_profit)
        if stop is not None:
            assert (price - stop) * sign > 0, f"{s.strategy_id}: stop on the wrong side"
            assert -stop.as_tuple().exponent <= 2  # type: ignore[operator]
        if target is not None:
            assert (target - price) * sign > 0, f"{s.strategy_id}: target on the wrong side"
        wm = s.watermark
        assert wm.topic == "market-data-raw" and wm.partition == 3 and wm.offset > 0
        assert 0 < wm.exchange_time_ns < s.candle_close_time_ns
        assert s.generated_time_ns == NOW
        assert "atr" in s.indicators and any(k.startswith("bias.") for k in s.indicators)
    assert any("trend" in s.indicators for s in signals)
    assert len({s.signal_id for s in signals}) == len(signals)


def test_replaying_the_same_data_yields_the_same_signals(
    data: list[MarketDataEnvelope], signals: list[TradingSignal]
) -> None:
    again = run(SymbolEngine(CONFIG, "binance", "BTC-USDT"), data)
    assert [s.SerializeToString(deterministic=True) for s in again] == [
        s.SerializeToString(deterministic=True) for s in signals
    ]


def test_state_through_json_between_batches_changes_nothing(
    data: list[MarketDataEnvelope], signals: list[TradingSignal]
) -> None:
    """What Redis does between invocations: dump to JSON and load again every 250 records."""
    raw: bytes | None = None
    out: list[TradingSignal] = []
    for start in range(0, len(data), 250):
        engine = SymbolEngine.from_json(CONFIG, "binance", "BTC-USDT", raw)
        out.extend(run(engine, data[start : start + 250], start=start))
        raw = engine.to_json()
    assert out == signals
    assert len(raw or b"") < 20_000, "state should stay compact"


def test_redelivered_records_are_skipped(data: list[MarketDataEnvelope]) -> None:
    engine = SymbolEngine(CONFIG, "binance", "BTC-USDT")
    first = run(engine, data[:800])
    before = engine.to_json()
    for i, env in enumerate(data[:800]):
        result = engine.apply(env, Position("market-data-raw", 3, i), now_ns=NOW)
        assert result.duplicate and not result.signals
    assert engine.to_json() == before
    # Another partition (after a repartition) is not mistaken for a replay.
    assert not engine.is_replay(Position("market-data-raw", 4, 0))
    assert first


def test_changed_parameters_restart_only_that_strategy(data: list[MarketDataEnvelope]) -> None:
    engine = SymbolEngine(CONFIG, "binance", "BTC-USDT")
    run(engine, data[:2000])
    changed = EngineConfig.build(
        ["1m", "5m"], list(REGISTRY), {**PARAMS, "ema_cross": {"fast": 5}}, trend_fast=20, trend_slow=50
    )
    restored = SymbolEngine.from_json(changed, "binance", "BTC-USDT", engine.to_json())
    state = restored.intervals["1m"]
    assert state.strategies["ema_cross"].bias() is None  # restarted, warming up
    assert state.strategies["supertrend"].bias() is not None  # kept
    assert restored.position == engine.position


def test_invalid_trades_raise_a_clear_error() -> None:
    engine = SymbolEngine(CONFIG, "binance", "BTC-USDT")
    bad_price = MarketDataEnvelope(
        venue="binance",
        symbol="BTC-USDT",
        exchange_time_ns=1,
        trade=Trade(price=to_pb("0"), quantity=to_pb("1")),
    )
    with pytest.raises(InvalidTradeError, match="price must be > 0"):
        engine.apply(bad_price, Position("t", 0, 1), now_ns=NOW)
    garbage = MarketDataEnvelope(venue="binance", symbol="BTC-USDT", exchange_time_ns=1)
    garbage.trade.price.value = "abc"
    garbage.trade.quantity.value = "1"
    with pytest.raises(InvalidTradeError, match=r"trade\.price"):
        engine.apply(garbage, Position("t", 0, 2), now_ns=NOW)
    no_time = MarketDataEnvelope(
        venue="binance", symbol="BTC-USDT", trade=Trade(price=to_pb("1"), quantity=to_pb("1"))
    )
    with pytest.raises(InvalidTradeError, match="time"):
        engine.apply(no_time, Position("t", 0, 3), now_ns=NOW)


def test_non_trade_payloads_are_ignored() -> None:
    engine = SymbolEngine(CONFIG, "binance", "BTC-USDT")
    quote = MarketDataEnvelope(
        venue="binance",
        symbol="BTC-USDT",
        exchange_time_ns=5,
        quote=Quote(bid_price=to_pb(Decimal("1")), ask_price=to_pb(Decimal("2"))),
    )
    result = engine.apply(quote, Position("t", 0, 1), now_ns=NOW)
    assert result.ignored and not result.signals and engine.position == Position("t", 0, 1)


def test_a_trade_feed_gap_drops_the_open_candles_and_restarts_every_series(
    data: list[MarketDataEnvelope],
) -> None:
    engine = SymbolEngine(CONFIG, "binance", "BTC-USDT")
    run(engine, data[:3000])
    gap = MarketDataEnvelope(
        venue="binance", symbol="BTC-USDT", gap=FeedGap(stream="trade", expected_id=10, received_id=20)
    )
    result = engine.apply(gap, Position("market-data-raw", 3, 3000), now_ns=NOW)
    assert result.feed_gap and not result.ignored and not result.signals
    assert all(state.builder.current is None for state in engine.intervals.values()), "open candles dropped"
    # After the gap the engine behaves as if it started there: nothing from before it leaks into a signal.
    after = run(engine, data[3000:], start=3001)
    fresh = run(SymbolEngine(CONFIG, "binance", "BTC-USDT"), data[3000:], start=3001)
    assert after and [s.signal_id for s in after] == [s.signal_id for s in fresh]

    # A gap in another stream (the order book) says nothing about trades.
    book_gap = MarketDataEnvelope(venue="binance", symbol="BTC-USDT", gap=FeedGap(stream="depth"))
    open_candles = [state.builder.current for state in engine.intervals.values()]
    ignored = engine.apply(book_gap, Position("market-data-raw", 3, 9000), now_ns=NOW)
    assert ignored.ignored and not ignored.feed_gap
    assert [state.builder.current for state in engine.intervals.values()] == open_candles


def test_config_rejects_unknown_strategies_and_parameters() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        EngineConfig.build(["1m"], ["nope"])
    with pytest.raises(ValueError, match="extra"):
        EngineConfig.build(["1m"], ["rsi_ema"], {"rsi_ema": {"rsi_perod": 3}})
    with pytest.raises(ValueError, match="not enabled"):
        EngineConfig.build(["1m"], ["rsi_ema"], {"bollinger": {"period": 3}})
    with pytest.raises(ValueError, match="fast must be shorter"):
        EngineConfig.build(["1m"], ["ema_cross"], {"ema_cross": {"fast": 30, "slow": 20}})
