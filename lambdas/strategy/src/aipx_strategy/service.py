"""One invocation of the strategy function: load engine states, apply records, publish signals, save states.

Per invocation: the states of every instrument in the batch are loaded with one Redis round trip (keys come
from the record keys, "{venue}:{symbol}"), records are applied in order by plain domain code, then the signals
are published (waiting for the broker's acks) and only then the states saved. A crash anywhere before the save
leaves Redis as it was, so the retried batch recomputes the same candles and re-emits the same signals (same
deterministic ids); records already applied are recognised by their offset and skipped.

If a record fails unexpectedly, its instrument is "blocked" for the rest of the invocation: its later records
fail too and its state is not saved, so nothing is applied out of order when the mapping retries from the
failed offset. A record that is bad input (an invalid trade) is dead-lettered and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aipx.ids import now_ns
from aipx.lambda_kit import AsyncRuntime, DeadLettered, MalformedRecord, MskRecord, dead_letter
from aipx.topics import TRADING_SIGNALS, catalogue
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx.v1.signals_pb2 import TradingSignal
from aws_lambda_powertools import Logger

from aipx_strategy.adapters.state_store import InstrumentKey, RedisStateStore
from aipx_strategy.domain.candles import Position
from aipx_strategy.domain.engine import EngineConfig, InvalidTradeError, SymbolEngine
from aipx_strategy.settings import StrategySettings

FUNCTION = "strategy"
# A child of the handler's powertools Logger: same JSON format, same correlation id.
log = Logger(service=FUNCTION, child=True)


class InstrumentBlockedError(RuntimeError):
    """An earlier record of the same instrument failed in this invocation; this one waits for the retry."""


@dataclass(slots=True)
class BatchStats:
    trades: int = 0
    ignored: int = 0
    duplicates: int = 0
    late: int = 0
    feed_gaps: int = 0
    candles_closed: int = 0
    signals: int = 0
    dead_lettered: int = 0
    blocked_instruments: int = 0


@dataclass(slots=True)
class _Invocation:
    engines: dict[InstrumentKey, SymbolEngine] = field(default_factory=dict)
    touched: set[InstrumentKey] = field(default_factory=set)
    blocked: set[InstrumentKey] = field(default_factory=set)
    signals: list[TradingSignal] = field(default_factory=list)
    stats: BatchStats = field(default_factory=BatchStats)
    now_ns: int = 0


def instruments_in(records: Iterable[MskRecord | MalformedRecord]) -> list[InstrumentKey]:
    """(venue, symbol) of every record, from the record keys ('{venue}:{symbol}'), without decoding values."""
    found: dict[InstrumentKey, None] = {}
    for record in records:
        key = record.key if isinstance(record, MskRecord) else None
        if not key:
            continue
        venue, sep, symbol = key.decode("utf-8", errors="replace").partition(":")
        if sep and venue and symbol:
            found[(venue, symbol)] = None
    return list(found)


class StrategyService:
    """Applies market data to per-instrument engines and emits their signals."""

    def __init__(
        self,
        settings: StrategySettings,
        *,
        runtime: AsyncRuntime,
        store: RedisStateStore,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        self.settings = settings
        self.config: EngineConfig = settings.engine_config()
        self.runtime = runtime
        self.store = store
        self.clock = clock
        # Signals are keyed as the catalogue says for trading-signals, whatever topic they are written to.
        self.signal_key = catalogue().get(TRADING_SIGNALS).key_for
        self._current: _Invocation | None = None

    @classmethod
    def from_settings(cls, settings: StrategySettings, runtime: AsyncRuntime) -> StrategyService:
        store = RedisStateStore(
            settings.redis.url.get_secret_value(),
            prefix=settings.state_key_prefix,
            ttl_s=settings.state_ttl_s,
        )
        return cls(settings, runtime=runtime, store=store)

    @property
    def invocation(self) -> _Invocation:
        if self._current is None:
            raise RuntimeError("no invocation in progress: call begin() first")
        return self._current

    def begin(self, records: Iterable[MskRecord | MalformedRecord]) -> None:
        """Start an invocation: load the states of the instruments named by its records' keys."""
        self._current = _Invocation(now_ns=self.clock())
        instruments = instruments_in(records)
        stored = self.runtime.run(self.store.load(instruments))
        for instrument, raw in stored.items():
            self._current.engines[instrument] = SymbolEngine.from_json(self.config, *instrument, raw)

    def _engine(self, instrument: InstrumentKey) -> SymbolEngine:
        engines = self.invocation.engines
        engine = engines.get(instrument)
        if engine is None:  # a record whose key did not name its instrument
            raw = self.runtime.run(self.store.load([instrument])).get(instrument)
            engine = engines[instrument] = SymbolEngine.from_json(self.config, *instrument, raw)
        return engine

    def on_record(self, envelope: MarketDataEnvelope, record: MskRecord) -> DeadLettered | None:
        """Apply one record. Invalid trades are dead-lettered; unexpected errors block the instrument."""
        inv = self.invocation
        instrument = (envelope.venue, envelope.symbol)
        if not envelope.venue or not envelope.symbol:
            return self._dead_letter(record, InvalidTradeError("market data record without venue or symbol"))
        if instrument in inv.blocked:
            raise InstrumentBlockedError(f"{instrument[0]}:{instrument[1]}: an earlier record failed")
        at = Position(record.topic, record.partition, record.offset)
        try:
            engine = self._engine(instrument)
            try:
                result = engine.apply(envelope, at, now_ns=inv.now_ns)
            except InvalidTradeError as exc:
                engine.position = at  # skip it on replay: it is in the DLQ
                inv.touched.add(instrument)
                return self._dead_letter(record, exc)
        except Exception:
            inv.blocked.add(instrument)
            raise
        inv.touched.add(instrument)
        stats = inv.stats
        stats.duplicates += result.duplicate
        stats.ignored += result.ignored
        stats.late += result.late
        stats.feed_gaps += result.feed_gap
        stats.trades += not (result.duplicate or result.ignored or result.feed_gap)
        stats.candles_closed += result.candles_closed
        inv.signals.extend(result.signals)
        return None

    def _dead_letter(self, record: MskRecord, error: Exception) -> DeadLettered:
        dlq = dead_letter(self.runtime, record, error, consumer=FUNCTION)
        self.invocation.stats.dead_lettered += 1
        log.warning("invalid market data record dead-lettered", extra={"dlq": dlq, "error": str(error)})
        return DeadLettered(dlq, str(error))

    def finish(self) -> BatchStats:
        """Publish the invocation's signals (acknowledged), then save the states it changed."""
        inv = self.invocation
        try:
            self.runtime.run(self._flush(inv))
        finally:
            self._current = None
        inv.stats.signals = len(inv.signals)
        inv.stats.blocked_instruments = len(inv.blocked)
        return inv.stats

    def abandon(self) -> None:
        """Drop the invocation without saving (its records will be retried)."""
        self._current = None

    async def _flush(self, inv: _Invocation) -> None:
        if inv.signals:
            publisher = await self.runtime.publisher()
            futures = []
            for signal in inv.signals:
                key = self.signal_key(symbol=signal.symbol)
                futures.append(
                    await publisher.send(
                        self.settings.signals_topic,
                        key,
                        signal,
                        event_id=signal.signal_id,
                        event_time_ns=signal.candle_close_time_ns,
                        trace_id=signal.signal_id,
                    )
                )
            for future in futures:
                await future
        states = {i: inv.engines[i].to_json() for i in inv.touched - inv.blocked}
        await self.store.save(states)

    async def close(self) -> None:
        """Close the Redis connection (tests; a Lambda container keeps it while warm)."""
        await self.store.close()
