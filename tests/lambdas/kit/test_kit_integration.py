"""lambda_kit against the real broker (DLQ path) and real Redis (powertools idempotency)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aipx.lambda_kit import AsyncRuntime, FakeLambdaContext, KafkaBatch, MskRecord, RecordIdempotency
from aipx.msk import build_event
from aipx.serde import (
    HEADER_DLQ_CONSUMER,
    HEADER_DLQ_ERROR,
    HEADER_DLQ_ERROR_TYPE,
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_TOPIC,
    HEADER_EVENT_ID,
    encode,
    header,
)
from aipx.settings import KafkaSettings
from aipx.topics import TRADING_SIGNALS
from aipx.v1.signals_pb2 import TradingSignal
from aws_lambda_powertools import Logger

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(kafka_bootstrap: str) -> Iterator[AsyncRuntime]:
    rt = AsyncRuntime(KafkaSettings(bootstrap_servers=kafka_bootstrap), client_id="kit-test")
    yield rt
    rt.close()


def signal_record(topic: str, offset: int, event_id: str) -> MskRecord:
    enc = encode(TradingSignal(signal_id=event_id, symbol="BTC-USDT"), event_id=event_id, event_time_ns=1)
    return MskRecord(topic, 0, offset, 0, b"BTC-USDT", enc.value, enc.headers)


Read = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


async def read_all(bootstrap: str, topic: str, n: int) -> list[Read]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        out: list[Read] = []
        async with asyncio.timeout(20):
            while len(out) < n:
                for recs in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend((r.key, r.value, list(r.headers)) for r in recs)
        return out
    finally:
        await consumer.stop()


def test_undecodable_record_lands_in_the_dlq_with_error_headers(
    kafka_bootstrap: str, new_topic: Any, runtime: AsyncRuntime
) -> None:
    source, dlq = new_topic.sync(1), new_topic.sync(1)
    batch = KafkaBatch("kit-test", logger=Logger(service="kit-test"), runtime=runtime)
    handled: list[str] = []
    batch.route(TRADING_SIGNALS, TradingSignal, lambda m, r: handled.append(m.signal_id))
    batch.alias(source, TRADING_SIGNALS, dlq=dlq)
    bad = MskRecord(source, 0, 1, 0, b"BTC-USDT", b"\x0a\xff\xff", [(HEADER_EVENT_ID, b"bad-1")])
    event = build_event([signal_record(source, 0, "s-0"), bad, signal_record(source, 2, "s-2")])

    assert batch.process(event, FakeLambdaContext("kit-test")) == {"batchItemFailures": []}
    assert handled == ["s-0", "s-2"]
    [(key, value, headers)] = asyncio.run(read_all(kafka_bootstrap, dlq, 1))
    assert (key, value) == (b"BTC-USDT", b"\x0a\xff\xff")
    assert header(headers, HEADER_EVENT_ID) == "bad-1"  # original headers kept
    assert header(headers, HEADER_DLQ_TOPIC) == source
    assert header(headers, HEADER_DLQ_OFFSET) == "1"
    assert header(headers, HEADER_DLQ_CONSUMER) == "kit-test"
    assert header(headers, HEADER_DLQ_ERROR_TYPE) == "DecodeError"
    assert "invalid protobuf encoding" in (header(headers, HEADER_DLQ_ERROR) or "")


def test_idempotent_route_runs_once_per_event_id_across_replays(
    redis_url: str, runtime: AsyncRuntime
) -> None:
    name = f"kit-idem-{uuid.uuid4().hex[:8]}"
    batch = KafkaBatch(
        name,
        logger=Logger(service=name),
        runtime=runtime,
        idempotency=RecordIdempotency(name, redis_url=redis_url),
    )
    calls: list[str] = []
    failing = {"s-1"}

    def on_signal(message: TradingSignal, record: MskRecord) -> None:
        calls.append(message.signal_id)
        if message.signal_id in failing:
            raise RuntimeError("transient")

    batch.route(TRADING_SIGNALS, TradingSignal, on_signal, idempotent=True)
    records = [signal_record(TRADING_SIGNALS, i, f"s-{i}") for i in range(3)]
    first = batch.process(build_event(records), FakeLambdaContext(name))
    assert first["batchItemFailures"] == [{"itemIdentifier": {"partition": "trading-signals-0", "offset": 1}}]
    failing.clear()
    # The mapping replays from the failed offset; s-2 already succeeded and must not run again.
    # The same event id at another offset (re-published) is also a duplicate.
    replay = [
        signal_record(TRADING_SIGNALS, 1, "s-1"),
        signal_record(TRADING_SIGNALS, 2, "s-2"),
        signal_record(TRADING_SIGNALS, 7, "s-0"),
    ]
    assert batch.process(build_event(replay), FakeLambdaContext(name)) == {"batchItemFailures": []}
    assert calls == ["s-0", "s-1", "s-2", "s-1"]
