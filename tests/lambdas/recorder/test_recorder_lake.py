"""The recorder through the runner against the real broker and the S3-compatible server, read back."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aipx.kafka import Publisher, create_producer
from aipx.settings import KafkaSettings, S3Settings
from aipx.topics import MARKET_DATA_RAW, ORDER_EVENTS, TRADING_DECISIONS, TRADING_SIGNALS
from aipx.v1.common_pb2 import SIDE_SELL
from aipx.v1.decisions_pb2 import VERDICT_APPROVE, Decision
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx.v1.orders_pb2 import ORDER_EVENT_TYPE_ACCEPTED, OrderEvent
from aipx.v1.signals_pb2 import TradingSignal
from aipx_recorder import handler as handler_module
from aipx_recorder.adapters.s3 import S3Store
from aipx_recorder.layout import NS_PER_HOUR
from aipx_recorder.reader import read_lake, read_topic
from aipx_recorder.recorder import ParquetRecorder, RecordResult
from aipx_recorder.settings import RotationPolicy
from aipx_runner import Backoff, Runner, RunnerConfig
from aipx_runner.runner import EventSourcePoller

pytestmark = pytest.mark.integration

# Recent event times: the broker's retention (7 days, by record timestamp) must not delete test data.
HOUR0 = (time.time_ns() // NS_PER_HOUR - 3) * NS_PER_HOUR


def date_hour(t_ns: int) -> tuple[str, int]:
    moment = datetime.fromtimestamp(t_ns / 1e9, tz=UTC)
    return moment.strftime("%Y-%m-%d"), moment.hour


def s3_settings(s3_endpoint: Any) -> S3Settings:
    return S3Settings(
        endpoint_url=s3_endpoint.endpoint_url,
        bucket=s3_endpoint.bucket,
        region=s3_endpoint.region,
        access_key_id=s3_endpoint.access_key,
        secret_access_key=s3_endpoint.secret_key,
    )


def envelope(i: int) -> MarketDataEnvelope:
    env = MarketDataEnvelope(venue="binance", symbol=["BTC-USDT", "ETH-USDT"][i % 2], event_id=f"md-{i}")
    env.exchange_time_ns = HOUR0 + i * 60_000_000_000
    env.trade.trade_id = str(i)
    env.trade.price.value = f"{27000 + i}.{i:02d}"
    env.trade.quantity.value = "0.00100000"
    env.trade.aggressor_side = SIDE_SELL
    return env


def event_time(i: int, step_s: int = 120) -> int:
    """HH:50 + step * i, three hours ago: records cross hour boundaries, and none is in the future (the
    broker rejects timestamps too far ahead)."""
    return HOUR0 + 50 * 60_000_000_000 + i * step_s * 1_000_000_000


def messages(topic: str, n: int, step_s: int = 120) -> list[tuple[bytes, Any, int]]:
    """(key, message, event time) for a topic; event times cross an hour boundary."""
    out: list[tuple[bytes, Any, int]] = []
    for i in range(n):
        t = event_time(i, step_s)
        if topic == MARKET_DATA_RAW:
            out.append((b"binance:BTC-USDT", envelope(i), t))
        elif topic == TRADING_SIGNALS:
            sig = TradingSignal(signal_id=f"sig-{i}", symbol="BTC-USDT", reasons=["x"])
            sig.price.value = f"{i}.5"
            sig.indicators["rsi"] = float(i)
            out.append((b"BTC-USDT", sig, t))
        elif topic == TRADING_DECISIONS:
            dec = Decision(decision_id=f"dec-{i}", signal_id=f"sig-{i}", verdict=VERDICT_APPROVE)
            dec.votes.add(analyst="technical", confidence=0.5)
            out.append((b"BTC-USDT", dec, t))
        else:
            ev = OrderEvent(event_id=f"oe-{i}", type=ORDER_EVENT_TYPE_ACCEPTED, account_id="acct-1")
            ev.order.quantity.value = "1.000000000000000001"
            out.append((b"acct-1", ev, t))
    return out


async def publish(bootstrap: str, topic: str, items: list[tuple[bytes, Any, int]]) -> None:
    producer = create_producer(KafkaSettings(bootstrap_servers=bootstrap), client_id="recorder-test")
    await producer.start()
    try:
        publisher = Publisher(producer)
        futures = [
            await publisher.send(topic, key, msg, event_id=f"{topic}-{i}", event_time_ns=t)
            for i, (key, msg, t) in enumerate(items)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_rows(read: Any, n: int, within_s: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        try:
            table = await asyncio.to_thread(read)
            if table.num_rows >= n:
                return table
        except FileNotFoundError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the lake did not reach {n} rows in {within_s}s")
        await asyncio.sleep(0.2)


async def test_each_topic_through_the_runner_lands_in_the_lake(
    kafka_bootstrap: str, new_topic: Any, new_bucket: Any, s3_endpoint: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    logical = [MARKET_DATA_RAW, TRADING_SIGNALS, TRADING_DECISIONS, ORDER_EVENTS]
    actual = {t: await new_topic(2, prefix=f"rec-{t}") for t in logical}
    dlqs = {t: await new_topic(1) for t in logical}
    bucket = await new_bucket()
    settings = s3_settings(s3_endpoint)
    recorder = ParquetRecorder(
        S3Store(settings, bucket=bucket),
        topics={a: t for t, a in actual.items()},
        dlqs={actual[t]: dlqs[t] for t in logical},
    )
    monkeypatch.setattr(handler_module, "recorder", recorder)  # the real handler, on a test bucket
    tag = uuid.uuid4().hex[:8]
    config = RunnerConfig.from_manifest(
        ["recorder"],
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        topics={**actual, **{f"{t}.dlq": dlqs[t] for t in logical}},
        group_ids={f"recorder:{t}": f"rec-{tag}-{t}" for t in logical},
        backoff=Backoff(base_s=0.05, max_s=0.2),
        batching_window_s=0.1,
    )
    assert config.sources[0].resolve_handler() is handler_module.handler
    counts = {MARKET_DATA_RAW: 40, TRADING_SIGNALS: 12, TRADING_DECISIONS: 7, ORDER_EVENTS: 9}
    for t in logical:
        await publish(kafka_bootstrap, actual[t], messages(t, counts[t]))
    runner = Runner(config)
    task = asyncio.create_task(runner.run())
    try:
        tables = {
            t: await wait_rows(lambda t=t: read_topic(actual[t], settings=settings, bucket=bucket), counts[t])
            for t in logical
        }
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)
    for t in logical:
        table = tables[t]
        assert table.num_rows == counts[t], t
        assert sorted(table.column("_event_id").to_pylist()) == sorted(
            f"{actual[t]}-{i}" for i in range(counts[t])
        )
        expected = sorted(date_hour(event_time(i)) for i in range(counts[t]))
        got = sorted(zip(table.column("date").to_pylist(), table.column("hour").to_pylist(), strict=True))
        assert got == expected  # Hive partitions by event date and hour
    md = tables[MARKET_DATA_RAW].to_pylist()
    by_id = {r["event_id"]: r for r in md}
    assert by_id["md-7"]["trade"]["price"] == Decimal("27007.07")
    assert by_id["md-7"]["trade"]["aggressor_side"] == "SIDE_SELL" and by_id["md-7"]["quote"] is None
    oe = tables[ORDER_EVENTS].to_pylist()[0]
    assert (
        oe["order"]["quantity"] == Decimal("1.000000000000000001")
        and oe["type"] == "ORDER_EVENT_TYPE_ACCEPTED"
    )
    assert tables[TRADING_SIGNALS].to_pylist()[0]["indicators"] == [("rsi", 0.0)]
    lake = read_lake([actual[t] for t in logical], settings=settings, bucket=bucket)
    assert {k: v.num_rows for k, v in lake.items()} == {actual[t]: counts[t] for t in logical}
    s3 = s3_endpoint.client()
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"topic={actual[ORDER_EVENTS]}/")["Contents"]
    ]
    date, _ = date_hour(event_time(0))
    assert all(k.endswith(".parquet") and f"/date={date}/hour=" in k for k in keys)


class Crash(Exception):
    """The runner process dies here (after the handler's upload, before the offsets are committed)."""


async def test_every_record_lands_exactly_once_across_a_crash_between_upload_and_commit(
    kafka_bootstrap: str, new_topic: Any, new_bucket: Any, s3_endpoint: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, dlq, bucket = await new_topic(2), await new_topic(1), await new_bucket()
    settings = s3_settings(s3_endpoint)
    n = 300
    items = [(b"k%d" % (i % 7), sig, t) for i, (_, sig, t) in enumerate(messages(TRADING_SIGNALS, n, 30))]
    await publish(kafka_bootstrap, topic, items)
    group = f"rec-crash-{uuid.uuid4().hex[:8]}"
    results: list[RecordResult] = []

    def config_for(recorder: ParquetRecorder, batch_size: int) -> RunnerConfig:
        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            result = recorder.process_event(event)
            results.append(result)
            return result.response()

        config = RunnerConfig.from_manifest(
            ["recorder"],
            kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
            topics={TRADING_SIGNALS: topic, "trading-signals.dlq": dlq},
            group_ids={f"recorder:{TRADING_SIGNALS}": group},
            handlers={"recorder": handler},
            backoff=Backoff(base_s=0.05, max_s=0.2),
            batching_window_s=0.05,
            batch_size=batch_size,
        )
        return replace(config, sources=tuple(s for s in config.sources if s.topic == topic))

    def new_recorder() -> ParquetRecorder:
        # max_records below the batch size: every invocation uploads files.
        return ParquetRecorder(
            S3Store(settings, bucket=bucket),
            policy=RotationPolicy(max_records=20),
            topics={topic: TRADING_SIGNALS},
            dlqs={topic: dlq},
        )

    commits = 0
    original_commit = EventSourcePoller._commit

    async def crashing_commit(self: EventSourcePoller, consumer: Any, offsets: Any) -> None:
        nonlocal commits
        commits += 1
        if commits == 3:
            raise Crash("killed between upload and commit")
        await original_commit(self, consumer, offsets)

    monkeypatch.setattr(EventSourcePoller, "_commit", crashing_commit)
    first = Runner(config_for(new_recorder(), batch_size=50))
    with pytest.raises(Crash):
        await asyncio.wait_for(first.run(), 60)
    uploaded_before_crash = sum(f.records for r in results for f in r.written)
    assert uploaded_before_crash > 0
    monkeypatch.setattr(EventSourcePoller, "_commit", original_commit)

    results.clear()
    second = Runner(config_for(new_recorder(), batch_size=70))  # a new process, other batch boundaries
    task = asyncio.create_task(second.run())
    try:
        table = await wait_rows(lambda: read_topic(topic, settings=settings, bucket=bucket), n)
        await asyncio.sleep(0.5)  # anything extra would show up now
        table = read_topic(topic, settings=settings, bucket=bucket)
    finally:
        second.stop()
        await asyncio.wait_for(task, 30)
    assert sum(r.already_durable for r in results) > 0  # the redelivery really overlapped the lake
    coords = list(
        zip(table.column("_partition").to_pylist(), table.column("_offset").to_pylist(), strict=True)
    )
    assert len(coords) == len(set(coords)) == n  # every record once: none lost, none twice
    per_partition = {p: sorted(o for q, o in coords if q == p) for p in (0, 1)}
    assert all(offs == list(range(len(offs))) for offs in per_partition.values())
    assert sorted(table.column("signal_id").to_pylist()) == sorted(f"sig-{i}" for i in range(n))
