"""The live strategy function runs a strategy plug-in installed beside it (examples/strategy-plugin, found
through the `aipx.strategies` entry point group), against the real broker and Redis, without editing AIPX."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from aipx.serde import decode
from aipx.topics import MARKET_DATA_RAW
from aipx.v1.signals_pb2 import TradingSignal
from aipx_strategy.domain.candles import Position
from aipx_strategy.domain.engine import SymbolEngine
from aipx_strategy.settings import StrategySettings
from redis.asyncio import Redis

from tests.backtest.plugin import SAMPLE_ID, install_sample, plugin_on_path
from tests.lambdas.strategy.test_strategy_handler import (
    MakeTrades,
    comparable,
    configure,
    invoke,
    market_data,
    reset_service,
)

pytestmark = pytest.mark.integration


async def test_the_live_function_runs_an_installed_plugin(
    *,
    kafka_io: Any, lambda_runtime: Any, new_topic: Any, redis_url: str, trades: MakeTrades, builders: Any,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    target = install_sample(tmp_path / "plugins")
    out = await new_topic(partitions=1)
    venue = f"plug{uuid.uuid4().hex[:8]}"
    prefix = f"test:strategy:{uuid.uuid4().hex[:8]}"
    with plugin_on_path(target):
        configure(monkeypatch, out, prefix)
        monkeypatch.setenv("AIPX_STRATEGY_STRATEGIES", f'["{SAMPLE_ID}", "ema_cross"]')
        monkeypatch.setenv("AIPX_STRATEGY_PARAMS", f'{{"{SAMPLE_ID}": {{"period": 15}}}}')
        reset_service()
        envelopes = trades(300, venue=venue)
        outgoing = market_data(builders)
        recs = await kafka_io.produce(MARKET_DATA_RAW, [outgoing(e) for e in envelopes])
        engine = SymbolEngine(StrategySettings().engine_config(), venue, "BTC-USDT")
        expected: list[TradingSignal] = []
        for env, rec in zip(envelopes, recs, strict=True):
            expected.extend(
                engine.apply(env, Position(rec.topic, rec.partition, rec.offset), now_ns=0).signals
            )
        assert sum(s.strategy_id == SAMPLE_ID for s in expected) >= 3
        try:
            assert all(r == {"batchItemFailures": []} for r in await invoke(recs))
            published = [
                decode(r.value, r.headers, TradingSignal)
                for r in await kafka_io.read(out, min_count=len(expected))
            ]
            assert sorted(comparable(s) for s in published) == sorted(comparable(s) for s in expected)
            assert {s.strategy_id for s in published} == {SAMPLE_ID, "ema_cross"}
        finally:
            reset_service()
            redis = Redis.from_url(redis_url)
            await redis.delete(f"{prefix}:{venue}:BTC-USDT")
            await redis.aclose()
