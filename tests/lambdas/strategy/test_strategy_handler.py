"""The strategy handler against the real broker and Redis, invoked with exact MSK events built from records
fetched back from market-data-raw: it emits exactly the signals the domain computes, replays are idempotent,
a fresh state replays to the same signal ids, and bad records go to the DLQ without blocking the batch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aipx.lambda_kit import FakeLambdaContext, MskRecord, default_runtime
from aipx.msk import build_event
from aipx.serde import HEADER_DLQ_ERROR, HEADER_DLQ_OFFSET, decode
from aipx.topics import MARKET_DATA_RAW, catalogue
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx.v1.signals_pb2 import TradingSignal
from aipx_strategy import handler
from aipx_strategy.domain.candles import Position
from aipx_strategy.domain.engine import SymbolEngine
from aipx_strategy.settings import StrategySettings
from redis.asyncio import Redis

pytestmark = pytest.mark.integration


def reset_service() -> None:
    """Close the cached service's connections and drop it (the next invocation rebuilds it from the env)."""
    if handler.service.cache_info().currsize:
        default_runtime().run(handler.service().close())
    handler.service.cache_clear()


@pytest.fixture(autouse=True)
def _closed_service(lambda_runtime: Any) -> Iterator[None]:
    yield
    reset_service()


MakeTrades = Callable[..., list[MarketDataEnvelope]]


def configure(monkeypatch: pytest.MonkeyPatch, signals_topic: str, prefix: str) -> None:
    monkeypatch.setenv("AIPX_STRATEGY_SIGNALS_TOPIC", signals_topic)
    monkeypatch.setenv("AIPX_STRATEGY_STATE_KEY_PREFIX", prefix)
    monkeypatch.setenv("AIPX_STRATEGY_TREND_FAST", "20")
    monkeypatch.setenv("AIPX_STRATEGY_TREND_SLOW", "50")
    monkeypatch.setenv("AIPX_STRATEGY_PARAMS", '{"rsi_ema": {"oversold": 40, "overbought": 60}}')
    reset_service()


async def invoke(records: list[MskRecord], batch_size: int = 500) -> list[dict[str, Any]]:
    responses = []
    for start in range(0, len(records), batch_size):
        event = build_event(records[start : start + batch_size])
        responses.append(await asyncio.to_thread(handler.handler, event, FakeLambdaContext("strategy")))
    return responses


def market_data(builders: Any) -> Callable[[MarketDataEnvelope], Any]:
    """Envelope -> outgoing record keyed '{venue}:{symbol}' as ingestion publishes it."""
    spec = catalogue().get(MARKET_DATA_RAW)

    def build(env: MarketDataEnvelope) -> Any:
        key = spec.key_for(venue=env.venue, symbol=env.symbol)
        return builders.outgoing(key, env, event_id=env.event_id, event_time_ns=env.exchange_time_ns)

    return build


def comparable(signal: TradingSignal) -> bytes:
    copy = TradingSignal()
    copy.CopyFrom(signal)
    copy.generated_time_ns = 0
    return copy.SerializeToString(deterministic=True)


async def test_handler_emits_the_domain_signals_and_replays_idempotently(
    *,
    kafka_io: Any, lambda_runtime: Any, new_topic: Any, redis_url: str, trades: MakeTrades, builders: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    outgoing_for = market_data(builders)

    out = await new_topic(partitions=2)
    venue = f"it{uuid.uuid4().hex[:8]}"
    prefix = f"test:strategy:{uuid.uuid4().hex[:8]}"
    configure(monkeypatch, out, prefix)
    envelopes = trades(400, venue=venue)
    recs = await kafka_io.produce(MARKET_DATA_RAW, [outgoing_for(e) for e in envelopes])
    assert len({r.partition for r in recs}) == 1, "one instrument, one partition"

    # What the domain computes from the same records at the same positions.
    engine = SymbolEngine(StrategySettings().engine_config(), venue, "BTC-USDT")
    expected: list[TradingSignal] = []
    for env, rec in zip(envelopes, recs, strict=True):
        expected.extend(engine.apply(env, Position(rec.topic, rec.partition, rec.offset), now_ns=0).signals)
    assert len(expected) >= 20

    assert all(r == {"batchItemFailures": []} for r in await invoke(recs))
    published = await kafka_io.read(out, min_count=len(expected))
    got = [decode(r.value, r.headers, TradingSignal) for r in published]
    assert sorted(comparable(s) for s in got) == sorted(comparable(s) for s in expected)
    for rec, signal in zip(published, got, strict=True):
        assert rec.key == catalogue().get("trading-signals").key_for(symbol="BTC-USDT")
        assert rec.header("aipx-event-id") == signal.signal_id
        assert signal.generated_time_ns > 0

    redis = Redis.from_url(redis_url)
    try:
        ttl = await redis.ttl(f"{prefix}:{venue}:BTC-USDT")
        assert 0 < ttl <= StrategySettings().state_ttl_s
        # Re-delivery of everything (as after a failed commit): nothing is applied twice, nothing re-emitted.
        assert all(r == {"batchItemFailures": []} for r in await invoke(recs, batch_size=1000))
        assert len(await kafka_io.read(out, min_count=len(expected))) == len(expected)

        # Replaying the same data from a fresh state yields the same signal ids.
        configure(monkeypatch, out, prefix + ":fresh")
        assert all(r == {"batchItemFailures": []} for r in await invoke(recs, batch_size=250))
        again = [
            decode(r.value, r.headers, TradingSignal)
            for r in await kafka_io.read(out, min_count=2 * len(expected))
        ]
        assert sorted(s.signal_id for s in again) == sorted([s.signal_id for s in expected] * 2)
    finally:
        await redis.delete(f"{prefix}:{venue}:BTC-USDT", f"{prefix}:fresh:{venue}:BTC-USDT")
        await redis.aclose()
        reset_service()


async def test_bad_records_are_dead_lettered_and_the_batch_goes_on(
    *,
    kafka_io: Any, lambda_runtime: Any, new_topic: Any, trades: MakeTrades, builders: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    outgoing_for = market_data(builders)

    out = await new_topic()
    venue = f"it{uuid.uuid4().hex[:8]}"
    configure(monkeypatch, out, f"test:strategy:{uuid.uuid4().hex[:8]}")
    good = trades(3, venue=venue)
    bad_price = MarketDataEnvelope()
    bad_price.CopyFrom(good[1])
    bad_price.trade.price.value = "12x"
    key = f"{venue}:BTC-USDT".encode()
    items = [
        outgoing_for(good[0]),
        outgoing_for(bad_price),
        builders.raw(key, b"\xff\xfenot protobuf", schema="aipx.v1.MarketDataEnvelope"),
        *[outgoing_for(e) for e in good[2:]],
    ]
    recs = await kafka_io.produce(MARKET_DATA_RAW, items)
    responses = await invoke(recs)
    assert responses == [{"batchItemFailures": []}]
    dlq = catalogue().dlq_for(MARKET_DATA_RAW).name
    parked = [r for r in await kafka_io.read(dlq, min_count=2) if r.key == key]
    by_offset = {int(r.header(HEADER_DLQ_OFFSET) or -1): r for r in parked}
    assert set(by_offset) == {recs[1].offset, recs[2].offset}
    assert "trade.price" in (by_offset[recs[1].offset].header(HEADER_DLQ_ERROR) or "")
    assert "invalid protobuf" in (by_offset[recs[2].offset].header(HEADER_DLQ_ERROR) or "")
    assert by_offset[recs[2].offset].value == b"\xff\xfenot protobuf"  # raw bytes kept
    reset_service()


async def test_an_unexpected_failure_blocks_only_its_instrument_until_the_retry(
    *,
    kafka_io: Any,
    lambda_runtime: Any,
    new_topic: Any,
    redis_url: str,
    trades: MakeTrades,
    builders: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = await new_topic()
    prefix = f"test:strategy:{uuid.uuid4().hex[:8]}"
    configure(monkeypatch, out, prefix)
    venue = f"it{uuid.uuid4().hex[:8]}"
    a = trades(2, venue=venue, symbol="AAA-USDT")
    b = trades(2, venue=venue, symbol="BBB-USDT")
    outgoing_for = market_data(builders)
    recs = await kafka_io.produce(MARKET_DATA_RAW, [outgoing_for(e) for e in (*a, *b)])
    poisoned = recs[2]  # the third trade of AAA
    original = SymbolEngine.apply

    def flaky(self: SymbolEngine, envelope: MarketDataEnvelope, at: Position, *, now_ns: int) -> Any:
        if (at.partition, at.offset) == (poisoned.partition, poisoned.offset):
            raise RuntimeError("simulated bug")
        return original(self, envelope, at, now_ns=now_ns)

    monkeypatch.setattr(SymbolEngine, "apply", flaky)
    response = (await invoke(recs))[0]
    failed = {
        (f["itemIdentifier"]["partition"], f["itemIdentifier"]["offset"])
        for f in response["batchItemFailures"]
    }
    # The failing record and every later AAA record fail; BBB is untouched by AAA's failure.
    assert failed == {(r.topic_partition, r.offset) for r in recs[2:8]}
    redis = Redis.from_url(redis_url)
    try:
        assert await redis.get(f"{prefix}:{venue}:AAA-USDT") is None  # nothing of AAA was saved
        assert await redis.get(f"{prefix}:{venue}:BBB-USDT") is not None
        monkeypatch.setattr(SymbolEngine, "apply", original)
        # The mapping retries from the lowest failed offset per partition: here, the whole batch again.
        assert (await invoke(recs))[0] == {"batchItemFailures": []}
        raw = await redis.get(f"{prefix}:{venue}:AAA-USDT")
        assert isinstance(raw, bytes)
        stored = SymbolEngine.from_json(StrategySettings().engine_config(), venue, "AAA-USDT", raw)
        assert stored.position == Position(recs[7].topic, recs[7].partition, recs[7].offset)
        candle = stored.intervals["1m"].builder.current
        assert candle is not None and candle.trade_count == 4  # minute 1's four trades, each applied once
    finally:
        await redis.delete(f"{prefix}:{venue}:AAA-USDT", f"{prefix}:{venue}:BBB-USDT")
        await redis.aclose()
