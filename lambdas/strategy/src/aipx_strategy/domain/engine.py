"""The strategy engine for one instrument: trades in, candles per interval, strategies on each closed candle.

`SymbolEngine` holds everything the function remembers about one (venue, symbol) between invocations: the open
candle of each interval, the shared market context (ATR, trend EMAs) and each strategy's indicator state, plus
the position (topic/partition/offset) of the last record applied. A record at or before that position is a
replay and is skipped, so re-delivered batches never count a trade twice; with deterministic signal ids, a
replay re-emits exactly the signals it emitted before. `dump()`/`load()` give compact JSON for Redis.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aipx.money import InvalidDecimalError, parse_decimal
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx.v1.signals_pb2 import TradingSignal

from aipx_strategy.domain.candles import Candle, CandleBuilder, Interval, Position
from aipx_strategy.domain.indicators import ATR, EMA
from aipx_strategy.domain.signals import build_signal
from aipx_strategy.domain.strategies import REGISTRY, Bar, MarketContext, Strategy, StrategyParams

STATE_VERSION = 1
TRADE_STREAM = "trade"  # FeedGap.stream of a gap in an instrument's trades (ingestion's Stream.TRADE)


class InvalidTradeError(ValueError):
    """A trade record that cannot be applied (bad price/quantity, no time, no symbol)."""


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """One configured strategy: its id, validated parameters and their fingerprint."""

    id: str
    params: StrategyParams
    # Changes whenever the parameters change (stored state is then discarded and rebuilt).
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        text = json.dumps([self.id, self.params.model_dump(mode="json")], sort_keys=True)
        object.__setattr__(self, "fingerprint", hashlib.sha256(text.encode()).hexdigest()[:12])

    def create(self) -> Strategy:
        return REGISTRY[self.id](self.params)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What the engine runs: intervals, strategies and the shared context's parameters."""

    intervals: tuple[Interval, ...]
    strategies: tuple[StrategySpec, ...]
    atr_period: int = 14
    trend_fast: int = 50
    trend_slow: int = 200
    # Missing intervals filled with flat candles before the series counts as broken.
    max_gap: int = 60

    @classmethod
    def build(
        cls,
        intervals: Sequence[str],
        strategies: Sequence[str],
        params: Mapping[str, Mapping[str, Any]] | None = None,
        **context: int,
    ) -> EngineConfig:
        """Validate labels, strategy ids and per-strategy parameter overrides (unknown keys rejected)."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(strategies))
        if unknown:
            raise ValueError(f"parameters given for strategies that are not enabled: {', '.join(unknown)}")
        specs = []
        for sid in strategies:
            if sid not in REGISTRY:
                raise ValueError(f"unknown strategy {sid!r}; known: {', '.join(REGISTRY)}")
            specs.append(StrategySpec(sid, REGISTRY[sid].Params.model_validate(dict(params.get(sid, {})))))
        parsed = tuple(Interval.parse(label) for label in intervals)
        if not parsed:
            raise ValueError("at least one candle interval is required")
        if len({i.label for i in parsed}) != len(parsed):
            raise ValueError("duplicate candle intervals")
        if len(set(strategies)) != len(strategies):
            raise ValueError("duplicate strategies")
        return cls(parsed, tuple(specs), **context)

    @property
    def context_fingerprint(self) -> str:
        return f"{self.atr_period}:{self.trend_fast}:{self.trend_slow}"


class _Context:
    """ATR and the trend EMAs of one interval."""

    __slots__ = ("atr", "close", "fast", "slow")

    def __init__(self, config: EngineConfig) -> None:
        self.atr = ATR(config.atr_period)
        self.fast = EMA(config.trend_fast)
        self.slow = EMA(config.trend_slow)
        self.close: float | None = None

    def update(self, bar: Bar) -> MarketContext:
        atr = self.atr.update(bar.high, bar.low, bar.close)
        fast = self.fast.update(bar.close)
        slow = self.slow.update(bar.close)
        self.close = bar.close
        trend: int | None = None
        if fast is not None and slow is not None:
            trend = 1 if bar.close > slow and fast > slow else -1 if bar.close < slow and fast < slow else 0
        return MarketContext(atr, trend, fast, slow)

    def dump(self) -> list[Any]:
        return [self.atr.dump(), self.fast.dump(), self.slow.dump(), self.close]

    def load(self, data: list[Any]) -> None:
        self.atr.load(data[0])
        self.fast.load(data[1])
        self.slow.load(data[2])
        self.close = data[3]


@dataclass(slots=True)
class _IntervalState:
    builder: CandleBuilder
    context: _Context
    strategies: dict[str, Strategy] = field(default_factory=dict)


@dataclass(slots=True)
class ApplyResult:
    """What applying one record did."""

    signals: list[TradingSignal] = field(default_factory=list)
    candles_closed: int = 0
    duplicate: bool = False
    ignored: bool = False
    late: bool = False
    # A FeedGap on the trade stream: trades were lost, so the open candles were dropped and every series
    # restarts (indicators warm up again on complete data).
    feed_gap: bool = False


class SymbolEngine:
    """Candles, context and strategies of one instrument, across all configured intervals."""

    def __init__(self, config: EngineConfig, venue: str, symbol: str) -> None:
        self.config = config
        self.venue = venue
        self.symbol = symbol
        self.position: Position | None = None
        # Most decimal places seen in this instrument's prices: protective levels are rounded to it.
        self.price_places = 0
        self.intervals: dict[str, _IntervalState] = {i.label: self._fresh(i) for i in config.intervals}

    def _fresh(self, interval: Interval) -> _IntervalState:
        return _IntervalState(
            CandleBuilder(interval, max_gap=self.config.max_gap),
            _Context(self.config),
            {spec.id: spec.create() for spec in self.config.strategies},
        )

    def _break_series(self) -> None:
        """Trades were lost: drop every open candle (it misses them) and restart every series."""
        for label, state in self.intervals.items():
            state.builder.current = None
            self._reset_series(label)

    def _reset_series(self, label: str) -> None:
        state = self.intervals[label]
        state.context = _Context(self.config)
        state.strategies = {spec.id: spec.create() for spec in self.config.strategies}

    def is_replay(self, at: Position) -> bool:
        """True when `at` is at or before the last record already applied (same topic and partition)."""
        last = self.position
        return (
            last is not None
            and last.topic == at.topic
            and last.partition == at.partition
            and at.offset <= last.offset
        )

    def apply(self, envelope: MarketDataEnvelope, at: Position, *, now_ns: int) -> ApplyResult:
        """Apply one market-data record; the signals of every candle it closed. Non-trades are ignored."""
        if self.is_replay(at):
            return ApplyResult(duplicate=True)
        result = ApplyResult()
        kind = envelope.WhichOneof("payload")
        if kind == "trade":
            self._apply_trade(envelope, at, now_ns, result)
        elif kind == "gap" and envelope.gap.stream == TRADE_STREAM:
            self._break_series()
            result.feed_gap = True
        else:
            result.ignored = True
        self.position = at
        return result

    def _apply_trade(
        self, envelope: MarketDataEnvelope, at: Position, now_ns: int, result: ApplyResult
    ) -> None:
        trade = envelope.trade
        try:
            price = parse_decimal(trade.price.value, field="trade.price")
            quantity = parse_decimal(trade.quantity.value, field="trade.quantity")
        except InvalidDecimalError as exc:
            raise InvalidTradeError(str(exc)) from exc
        if price <= 0 or quantity < 0:
            raise InvalidTradeError(f"trade price must be > 0 and quantity >= 0, got {price} x {quantity}")
        time_ns = envelope.exchange_time_ns or envelope.ingest_time_ns
        if time_ns <= 0:
            raise InvalidTradeError("trade has neither an exchange time nor an ingest time")
        self.price_places = max(self.price_places, decimal_places(trade.price.value))
        for label, state in self.intervals.items():
            update = state.builder.add_trade(time_ns, price, quantity, at)
            if update.late:
                result.late = True
            for candle in update.closed:
                result.candles_closed += 1
                result.signals.extend(self._on_closed(label, state, candle, now_ns))
            if update.gap_reset:
                self._reset_series(label)

    def _on_closed(
        self, label: str, state: _IntervalState, candle: Candle, now_ns: int
    ) -> list[TradingSignal]:
        bar = Bar(
            float(candle.open),
            float(candle.high),
            float(candle.low),
            float(candle.close),
            float(candle.volume),
        )
        ctx = state.context.update(bar)
        intents = [(sid, strategy.on_candle(bar, ctx)) for sid, strategy in state.strategies.items()]
        biases = {sid: strategy.bias() for sid, strategy in state.strategies.items()}
        return [
            build_signal(
                strategy_id=sid,
                venue=self.venue,
                symbol=self.symbol,
                interval=label,
                candle=candle,
                intent=intent,
                context=ctx,
                biases=biases,
                price_places=self.price_places,
                generated_time_ns=now_ns,
            )
            for sid, intent in intents
            if intent is not None
        ]

    def dump(self) -> dict[str, Any]:
        """Compact JSON-able state (versioned; each part tagged with the fingerprint of its configuration)."""
        pos = self.position
        return {
            "v": STATE_VERSION,
            "pos": None if pos is None else [pos.topic, pos.partition, pos.offset],
            "pp": self.price_places,
            "iv": {
                label: {
                    "c": state.builder.dump(),
                    "x": [self.config.context_fingerprint, state.context.dump()],
                    "s": {
                        spec.id: [spec.fingerprint, state.strategies[spec.id].dump()]
                        for spec in self.config.strategies
                    },
                }
                for label, state in self.intervals.items()
            },
        }

    @classmethod
    def load(
        cls, config: EngineConfig, venue: str, symbol: str, data: Mapping[str, Any] | None
    ) -> SymbolEngine:
        """Restore from `dump()` output; parts from another configuration or version start afresh."""
        engine = cls(config, venue, symbol)
        if not data or data.get("v") != STATE_VERSION:
            return engine
        pos = data.get("pos")
        engine.position = None if pos is None else Position(str(pos[0]), int(pos[1]), int(pos[2]))
        engine.price_places = int(data.get("pp", 0))
        stored: Mapping[str, Any] = data.get("iv", {})
        fingerprints = {spec.id: spec.fingerprint for spec in config.strategies}
        for label, state in engine.intervals.items():
            part = stored.get(label)
            if part is None:
                continue
            state.builder.load(part["c"])
            context_fp, context = part["x"]
            if context_fp == config.context_fingerprint:
                state.context.load(context)
            for sid, (fp, strategy_state) in part["s"].items():
                if sid in state.strategies and fingerprints[sid] == fp:
                    state.strategies[sid].load(strategy_state)
        return engine

    def to_json(self) -> bytes:
        return json.dumps(self.dump(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_json(cls, config: EngineConfig, venue: str, symbol: str, raw: bytes | None) -> SymbolEngine:
        return cls.load(config, venue, symbol, None if raw is None else json.loads(raw))


def decimal_places(text: str) -> int:
    """Digits after the decimal point of a canonical decimal string ('27123.50' -> 2)."""
    dot = text.find(".")
    return 0 if dot < 0 else len(text) - dot - 1
