"""Recorder benchmark: records/s from Kafka to the S3-compatible server vs the in-memory Parquet ceiling.

Recorder path (measured): the local event source runner consumes a fresh market-data topic from the real
broker, builds the exact MSK events, invokes the real recorder handler (aipx_recorder.handler.handler), which
decodes, buffers, encodes Parquet (zstd) and uploads to the S3-compatible server; a record counts once the
handler reports it durable. Runner settings are the manifest's recorder/market-data-raw event source except
the batching window (given in the output), so the last partial batch does not sit in a 10 s window.

Ceiling (same process, same records, same batch size): protobuf decode + Arrow conversion + Parquet (zstd)
encoding into memory, with no Kafka, no event building and no upload.

    uv run python bench/recorder_bench.py [--records 200000] [--partitions 4] [--window 0.5]

Needs the local stack (`uv run aipx-stack up`); it is started if it is not running.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aipx.kafka import Publisher, create_producer
from aipx.msk import MskRecord
from aipx.serde import encode
from aipx.settings import KafkaSettings, S3Settings
from aipx.topics import MARKET_DATA_RAW
from aipx.v1.common_pb2 import SIDE_BUY, SIDE_SELL
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx_recorder.layout import NS_PER_HOUR, Directory
from aipx_recorder.reader import read_topic
from aipx_recorder.recorder import Pending, encode_parquet, event_time_and_id
from aipx_runner import Runner, RunnerConfig
from aipx_stack import scratch

# A recent hour: the broker's retention (by record timestamp) must not delete the records mid-run.
HOUR0 = (time.time_ns() // NS_PER_HOUR - 2) * NS_PER_HOUR
SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT", "DOGE-USDT", "ADA-USDT", "BNB-USDT", "AVAX-USDT"]


def trade(i: int) -> tuple[bytes, MarketDataEnvelope, int]:
    """A realistic trade envelope; event times spread over one hour."""
    symbol = SYMBOLS[i % len(SYMBOLS)]
    t = HOUR0 + (i * 17_000_000) % NS_PER_HOUR
    env = MarketDataEnvelope(
        venue="binance",
        symbol=symbol,
        venue_symbol=symbol.replace("-", ""),
        exchange_time_ns=t,
        ingest_time_ns=t + 1_500_000,
        source_sequence=i,
        event_id=f"binance:{symbol}:trade:{i}",
    )
    env.trade.trade_id = str(3_000_000_000 + i)
    env.trade.price.value = f"{27000 + (i % 5000) / 100:.2f}"
    env.trade.quantity.value = f"0.{(i * 7919) % 100000:05d}"
    env.trade.aggressor_side = SIDE_BUY if i % 3 else SIDE_SELL
    return f"binance:{symbol}".encode(), env, t


def pending(record: MskRecord) -> Pending:
    """What the recorder keeps of a record: the decoded message, event time and id, its directory."""
    t, event_id = event_time_and_id(record)
    directory = Directory(record.topic, t // NS_PER_HOUR)
    return Pending(record, MarketDataEnvelope.FromString(record.value or b""), t, directory, event_id)


def ceiling(values: list[MskRecord], batch_size: int) -> float:
    """Records/s of decode + Arrow + Parquet (zstd) in memory, in batches of `batch_size`."""
    descriptor = MarketDataEnvelope.DESCRIPTOR
    start = time.perf_counter()
    size = 0
    for lo in range(0, len(values), batch_size):
        chunk = values[lo : lo + batch_size]
        items = [pending(r) for r in chunk]
        size += len(encode_parquet(descriptor, items))
    elapsed = time.perf_counter() - start
    print(f"  ceiling: {len(values)} records -> {size / 1e6:.1f} MB Parquet in {elapsed:.2f} s")
    return len(values) / elapsed


async def produce(bootstrap: str, topic: str, n: int) -> list[MskRecord]:
    producer = create_producer(KafkaSettings(bootstrap_servers=bootstrap), client_id="recorder-bench")
    await producer.start()
    records: list[MskRecord] = []
    try:
        publisher = Publisher(producer)
        futures = []
        for i in range(n):
            key, env, t = trade(i)
            futures.append(await publisher.send(topic, key, env, event_id=env.event_id, event_time_ns=t))
            enc = encode(env, event_id=env.event_id, event_time_ns=t)
            records.append(MskRecord(topic, 0, i, t // 1_000_000, key, enc.value, enc.headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return records


async def run_recorder(config: RunnerConfig, n: int) -> tuple[float, int]:
    """Run until n records are durable; (seconds from the first invocation, invocations)."""
    from aipx_recorder import handler as handler_module

    durable = 0
    first: float | None = None
    last = 0.0
    invocations = 0
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        nonlocal durable, first, last, invocations
        if first is None:
            first = time.perf_counter()
        response: dict[str, Any] = handler_module.handler(event, context)
        invocations += 1
        # Counted from the event's record lists: parsing them again here would bill the handler for it.
        durable += sum(map(len, event["records"].values())) - len(response["batchItemFailures"])
        last = time.perf_counter()
        if durable >= n:
            loop.call_soon_threadsafe(done.set)
        return response

    import dataclasses

    config = dataclasses.replace(
        config, sources=tuple(dataclasses.replace(s, handler=handler) for s in config.sources)
    )
    runner = Runner(config)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(done.wait(), timeout=600)
    finally:
        runner.stop()
        await task
    assert first is not None
    stats = runner.pollers[0].stats
    print(
        f"  runner time: fetch+batch {stats.gather_s:.2f} s, build events {stats.build_s:.2f} s, "
        f"handler {stats.invoke_s:.2f} s, settle+commit {stats.settle_s:.2f} s"
    )
    return last - first, invocations


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--window", type=float, default=0.5, help="batching window override (s)")
    args = parser.parse_args()

    from aipx_stack.select import open_stack

    stack = open_stack()
    stack.up()
    for key, value in stack.endpoints.as_env(aws=True).items():
        os.environ.setdefault(key, value)
    endpoints = stack.endpoints
    bootstrap = endpoints.kafka_bootstrap
    tag = uuid.uuid4().hex[:8]
    topic, dlq, bucket = f"bench-md-{tag}", f"bench-md-{tag}.dlq", f"bench-lake-{tag}"
    await scratch.create_topics(bootstrap, {topic: args.partitions, dlq: 1})
    s3 = S3Settings(
        endpoint_url=endpoints.s3_endpoint_url,
        bucket=bucket,
        region=endpoints.s3_region,
        access_key_id=endpoints.s3_access_key,
        secret_access_key=endpoints.s3_secret_key,
    )
    endpoints.s3.client().create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": s3.region}
    )

    print(f"recorder bench: {args.records} market-data trades, {args.partitions} partitions, topic {topic}")
    values = await produce(bootstrap, topic, args.records)
    size = sum(len(r.value or b"") for r in values) / len(values)
    print(f"  produced {len(values)} records, {size:.0f} B protobuf each")

    from aipx_recorder import handler as handler_module
    from aipx_recorder.adapters.s3 import S3Store
    from aipx_recorder.recorder import ParquetRecorder

    handler_module.recorder = ParquetRecorder(
        S3Store(s3), policy=handler_module.settings.policy, topics={topic: MARKET_DATA_RAW}, dlqs={topic: dlq}
    )
    config = RunnerConfig.from_manifest(
        ["recorder"],
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        topics={MARKET_DATA_RAW: topic, f"{MARKET_DATA_RAW}.dlq": dlq},
        group_ids={f"recorder:{MARKET_DATA_RAW}": f"bench-recorder-{tag}"},
        batching_window_s=args.window,
    )
    import dataclasses

    config = dataclasses.replace(config, sources=tuple(s for s in config.sources if s.topic == topic))
    batch_size = config.sources[0].batch_size
    # Silence per-invocation logs/EMF lines of the handler during the run.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    handler_module.logger.setLevel("WARNING")

    from aipx.tuning import tune_gc

    tune_gc()  # as `python -m aipx_runner` does, for both measurements
    ceiling_rps = ceiling(values, batch_size)
    seconds, invocations = await run_recorder(config, args.records)
    recorder_rps = args.records / seconds
    table = read_topic(topic, settings=s3)
    assert table.num_rows == args.records, f"lake has {table.num_rows} rows, expected {args.records}"
    ratio = recorder_rps / ceiling_rps

    print(f"  runner: batch size {batch_size} (manifest), batching window {args.window} s (override)")
    print(
        f"  recorder (Kafka -> runner -> handler -> S3): {recorder_rps:,.0f} records/s "
        f"({args.records} in {seconds:.2f} s, {invocations} invocations; "
        f"lake read back: {table.num_rows} rows)"
    )
    print(f"  ceiling  (decode + Arrow + Parquet in memory): {ceiling_rps:,.0f} records/s")
    print(f"  ratio recorder/ceiling: {ratio:.0%}  (targets: >= 50% and >= 100,000 records/s)")
    print(
        f"  machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
        f"; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


if __name__ == "__main__":
    asyncio.run(main())
