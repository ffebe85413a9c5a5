"""aipx.kafka.BatchPublisher against the real broker: records land on the partition the producer's own `send`
picks for their key, in order, byte-identical with their headers; every token is reported with the batch that
carries it; a full batch rolls over to the next one; batches not submitted survive a failed flush."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import ProducerClosed
from aipx import serde
from aipx.kafka import BatchPublisher, create_producer
from aipx.settings import KafkaSettings
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx_stack.pytest_plugin import TopicFactory

from tests.foundation.test_kafka_roundtrip import consume_all, quote

pytestmark = pytest.mark.integration
SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT", "ADA-USDT")


async def test_batches_land_where_send_would_put_them_in_order_with_headers(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic(6)
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    producer = create_producer(settings, client_id="batch-test")
    await producer.start()
    try:
        # Where the producer's own send() puts each key.
        expected_partition = {}
        for symbol in SYMBOLS:
            meta = await (await producer.send(topic, b"probe", key=symbol.encode()))
            expected_partition[symbol] = meta.partition
        batches: BatchPublisher[int] = BatchPublisher(producer, topic)
        await batches.prepare()
        envelopes = [quote(SYMBOLS[i % len(SYMBOLS)], i) for i in range(500)]
        for i, env in enumerate(envelopes):
            record = serde.encode(env, event_id=env.event_id, event_time_ns=env.exchange_time_ns)
            batches.add(env.symbol.encode(), record, env.exchange_time_ns // 1_000_000, i)
        assert batches.pending == 500
        submitted: list[tuple[asyncio.Future[Any], list[int]]] = []
        await batches.flush(lambda future, tokens: submitted.append((future, tokens)))
        assert batches.pending == 0
        await asyncio.gather(*(f for f, _ in submitted))
    finally:
        await producer.stop()

    # One batch per partition in use, and every token reported exactly once.
    assert len(submitted) == len(set(expected_partition.values()))
    assert sorted(t for _, tokens in submitted for t in tokens) == list(range(500))
    records = [r for r in await consume_all(kafka_bootstrap, topic, 505) if r.value != b"probe"]
    assert len(records) == 500
    by_partition: dict[int, list[int]] = {}
    for r in records:
        env = serde.decode(r.value, r.headers, MarketDataEnvelope)
        assert r.partition == expected_partition[env.symbol]
        assert r.key == env.symbol.encode()
        assert r.timestamp == env.exchange_time_ns // 1_000_000
        assert dict(r.headers)[serde.HEADER_EVENT_ID] == env.event_id.encode()
        by_partition.setdefault(r.partition, []).append(env.source_sequence)
    for sequences in by_partition.values():
        assert sequences == sorted(sequences), "each partition keeps the order of add()"


async def test_a_full_batch_rolls_over_and_unsubmitted_batches_survive_a_failed_flush(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic(1)
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, max_batch_size=16 * 1024)
    producer = create_producer(settings, client_id="batch-test", compression_type=None)
    await producer.start()
    batches: BatchPublisher[int] = BatchPublisher(producer, topic)
    await batches.prepare()
    value = serde.Encoded(b"x" * 1000, [])
    for i in range(40):  # ~40 KB in 16 KiB batches: at least three batches
        batches.add(b"k", value, 1, i)
    assert batches.pending == 40
    await producer.stop()
    with pytest.raises(ProducerClosed):
        await batches.flush(lambda future, tokens: None)
    assert batches.pending == 40, "nothing submitted, nothing lost"

    producer = create_producer(settings, client_id="batch-test", compression_type=None)
    await producer.start()
    try:
        batches.producer = producer
        submitted: list[tuple[asyncio.Future[Any], list[int]]] = []
        await batches.flush(lambda future, tokens: submitted.append((future, tokens)))
        await asyncio.gather(*(f for f, _ in submitted))
    finally:
        await producer.stop()
    assert len(submitted) >= 3
    assert [t for _, tokens in submitted for t in tokens] == list(range(40))
    records = await consume_all(kafka_bootstrap, topic, 40)
    assert [r.offset for r in records] == list(range(40))
    assert batches.discard() == 0
