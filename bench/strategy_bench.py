"""Strategy function benchmark: market-data records per second through the handler, against its ceiling.

The handler (`aipx_strategy.handler.handler`) is invoked with exact MSK events of `--batch` records (the
manifest's batch size by default) built by aipx.msk.build_event: trades of `--symbols` instruments, keyed and
partitioned as ingestion publishes them, `--trades-per-minute` per instrument (so a 1m candle closes every
that many trades and all six strategies run on it). State lives in the local stack's Redis (one MGET and one
pipelined SET per invocation), signals go to a throw-away topic on the local Kafka (acks awaited).

Printed in the same run:
  ceiling  decode-only: parse the same events (base64) and decode every record into MarketDataEnvelope;
  peer     domain-only: the same trades applied to the engines in memory (no handler, no Redis, no Kafka);
  handler  records/s through the handler, and its ratio to the ceiling.

    uv run python bench/strategy_bench.py [--records 100000] [--symbols 20] [--batch 1000] [--rounds 3]

Needs the local stack (`uv run aipx-stack up`); endpoints from AIPX_* variables or the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import time
import uuid
import zlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aipx.functions import manifest
from aipx.lambda_kit import FakeLambdaContext
from aipx.money import to_pb
from aipx.msk import MskRecord, build_event, records_of
from aipx.serde import encode
from aipx.settings import KafkaSettings, RedisSettings
from aipx.topics import MARKET_DATA_RAW, catalogue
from aipx.v1.market_data_pb2 import MarketDataEnvelope, Trade
from aipx_stack import scratch
from redis.asyncio import Redis

MINUTE_NS = 60_000_000_000
T0_NS = 1_767_225_600_000_000_000


def trades(symbols: int, per_symbol: int, per_minute: int, venue: str) -> list[MskRecord]:
    """Interleaved trades of `symbols` instruments as records of market-data-raw (offsets per partition)."""
    spec = catalogue().get(MARKET_DATA_RAW)
    rng = random.Random(1)
    offsets: dict[int, int] = {}
    prices = [30_000.0 / (i + 1) for i in range(symbols)]
    out: list[MskRecord] = []
    for n in range(per_symbol):
        for s in range(symbols):
            symbol = f"S{s:03d}-USDT"
            prices[s] = max(1.0, prices[s] * (1 + rng.gauss(0, 0.0005)))
            t = T0_NS + n * (MINUTE_NS // per_minute) + s
            env = MarketDataEnvelope(
                venue=venue,
                symbol=symbol,
                exchange_time_ns=t,
                ingest_time_ns=t,
                source_sequence=n + 1,
                event_id=f"{venue}:{symbol}:trade:{n}",
                trade=Trade(
                    trade_id=str(n),
                    price=to_pb(Decimal(f"{prices[s]:.2f}")),
                    quantity=to_pb(Decimal(f"{rng.uniform(0.001, 1):.4f}")),
                ),
            )
            key = spec.key_for(venue=venue, symbol=symbol)
            partition = zlib.crc32(key) % spec.partitions
            offset = offsets[partition] = offsets.get(partition, -1) + 1
            enc = encode(env, event_id=env.event_id, event_time_ns=t)
            out.append(
                MskRecord(MARKET_DATA_RAW, partition, offset, t // 1_000_000, key, enc.value, enc.headers)
            )
    return out


def events_of(records: list[MskRecord], batch: int) -> list[dict[str, Any]]:
    return [build_event(records[i : i + batch]) for i in range(0, len(records), batch)]


def decode_only(events: list[dict[str, Any]]) -> int:
    n = 0
    for event in events:
        for record in records_of(event):
            record.decode(MarketDataEnvelope)
            n += 1
    return n


def domain_only(records: list[MskRecord]) -> int:
    from aipx_strategy.domain.candles import Position
    from aipx_strategy.domain.engine import SymbolEngine
    from aipx_strategy.settings import StrategySettings

    config = StrategySettings().engine_config()
    engines: dict[tuple[str, str], SymbolEngine] = {}
    signals = 0
    for record in records:
        env = record.decode(MarketDataEnvelope)
        engine = engines.get((env.venue, env.symbol))
        if engine is None:
            engine = engines[(env.venue, env.symbol)] = SymbolEngine(config, env.venue, env.symbol)
        pos = Position(record.topic, record.partition, record.offset)
        signals += len(engine.apply(env, pos, now_ns=0).signals)
    return signals


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


async def cleanup(topic: str, prefix: str) -> None:
    await scratch.delete_topics(KafkaSettings().bootstrap_servers, [topic])
    redis = Redis.from_url(RedisSettings().url.get_secret_value())
    try:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def main() -> None:
    default_batch = manifest().get("strategy").event_sources[0].batch_size
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--batch", type=int, default=default_batch)
    parser.add_argument("--trades-per-minute", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    topic, prefix = f"bench-strategy-signals-{run}", f"bench:strategy:{run}"
    os.environ["AIPX_STRATEGY_SIGNALS_TOPIC"] = topic
    os.environ["AIPX_STRATEGY_STATE_KEY_PREFIX"] = prefix
    # Records carry 2026-01 event times (Kafka timestamps): no time-based retention on the scratch topic.
    asyncio.run(
        scratch.create_topics(KafkaSettings().bootstrap_servers, {topic: 6}, config={"retention.ms": "-1"})
    )

    from aipx_strategy import handler  # after the environment is set

    per_symbol = args.records // args.symbols
    print(
        f"{per_symbol * args.symbols:,} trade records per round, {args.symbols} instruments, events of <= "
        f"{args.batch}; best of {args.rounds} rounds (the measurements alternate: the CPU is shared)"
    )
    print(f"1m candles close every {args.trades_per_minute} trades per instrument; six strategies per candle")
    best = {"decode": 0.0, "domain": 0.0, "handler": 0.0}
    n_signals = 0
    try:
        # Warm-up on other instruments (connections, imports), then the measured rounds.
        for event in events_of(trades(2, 200, args.trades_per_minute, f"warm{run}"), args.batch):
            handler.handler(event, FakeLambdaContext("strategy"))
        for round_ in range(args.rounds):
            # Fresh instruments each round: records seen before would be skipped as replays.
            records = trades(args.symbols, per_symbol, args.trades_per_minute, f"bench{run}r{round_}")
            events = events_of(records, args.batch)
            t_decode, n_decoded = timed(decode_only, events)
            t_domain, n_signals = timed(domain_only, records)
            started = time.perf_counter()
            failures = 0
            for event in events:
                failures += len(handler.handler(event, FakeLambdaContext("strategy"))["batchItemFailures"])
            t_handler = time.perf_counter() - started
            if failures:
                raise SystemExit(f"{failures} records failed")
            best["decode"] = max(best["decode"], n_decoded / t_decode)
            best["domain"] = max(best["domain"], len(records) / t_domain)
            best["handler"] = max(best["handler"], len(records) / t_handler)
    finally:
        asyncio.run(cleanup(topic, prefix))

    ceiling, peer, rate = best["decode"], best["domain"], best["handler"]
    print(f"ceiling  decode-only            {ceiling:>12,.0f} records/s")
    print(f"peer     domain-only (memory)   {peer:>12,.0f} records/s   ({n_signals} signals per round)")
    print(
        f"handler  Redis + Kafka + MSK    {rate:>12,.0f} records/s   = {rate / ceiling:.1%} of the ceiling,"
    )
    print(f"                                {'':>12}              {rate / peer:.1%} of the domain-only peer")
    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")  # fmt: skip


if __name__ == "__main__":
    main()
