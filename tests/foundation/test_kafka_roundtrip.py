"""The shared Kafka factories against the real broker: byte-identical round trips, no loss across a restart,
and undecodable records reported clearly."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, RecordMetadata
from aipx import money, serde
from aipx.ids import now_ns
from aipx.kafka import Publisher, create_consumer, create_producer
from aipx.settings import KafkaSettings
from aipx.topics import MARKET_DATA_RAW, catalogue
from aipx.v1.market_data_pb2 import MarketDataEnvelope, Quote

pytestmark = pytest.mark.integration

NewTopic = Callable[..., Awaitable[str]]


def quote(symbol: str, seq: int) -> MarketDataEnvelope:
    t = now_ns()
    return MarketDataEnvelope(
        venue="binance",
        symbol=symbol,
        venue_symbol=symbol.replace("-", ""),
        exchange_time_ns=t,
        ingest_time_ns=t,
        source_sequence=seq,
        event_id=f"binance:{symbol}:quote:{seq}",
        quote=Quote(
            bid_price=money.to_pb("100.10"),
            bid_size=money.to_pb("1.5"),
            ask_price=money.to_pb("100.20"),
            ask_size=money.to_pb("2"),
            update_id=seq,
        ),
    )


async def consume_all(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer: AIOKafkaConsumer = create_consumer(
        topic, settings=KafkaSettings(bootstrap_servers=bootstrap), client_id="test", group_id=None
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def test_envelope_round_trips_byte_identical_with_headers(
    kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=catalogue().get(MARKET_DATA_RAW).partitions)
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    producer = create_producer(settings, client_id="test")
    await producer.start()
    try:
        publisher = Publisher(producer)
        sent = [quote("BTC-USDT", i) for i in range(1, 51)]
        key = catalogue().get(MARKET_DATA_RAW).key_for(venue="binance", symbol="BTC-USDT")
        acks: list[RecordMetadata] = []
        for msg in sent:
            acks.append(
                await publisher.publish(
                    topic,
                    key,
                    msg,
                    event_id=msg.event_id,
                    event_time_ns=msg.exchange_time_ns,
                    trace_id="trace-7",
                )
            )
    finally:
        await producer.stop()

    assert len({a.partition for a in acks}) == 1, "one key -> one partition"
    records = await consume_all(kafka_bootstrap, topic, len(sent))
    assert len(records) == len(sent)
    for msg, record in zip(sent, records, strict=True):
        assert record.key == key
        assert record.value == msg.SerializeToString()
        headers = list(record.headers)
        assert serde.header(headers, serde.HEADER_SCHEMA) == "aipx.v1.MarketDataEnvelope"
        assert serde.header(headers, serde.HEADER_EVENT_ID) == msg.event_id
        assert serde.header(headers, serde.HEADER_EVENT_TIME) == str(msg.exchange_time_ns)
        assert serde.header(headers, serde.HEADER_TRACE_ID) == "trace-7"
        decoded = serde.decode(record.value, headers, MarketDataEnvelope, topic=topic)
        assert decoded == msg


async def test_undecodable_record_is_reported_with_its_position(
    kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    producer = create_producer(KafkaSettings(bootstrap_servers=kafka_bootstrap), client_id="test")
    await producer.start()
    try:
        good = quote("ETH-USDT", 1)
        enc = serde.encode(good, event_id=good.event_id, event_time_ns=good.exchange_time_ns)
        await (await producer.send(topic, b"\xff\xfe not protobuf", headers=enc.headers))
        await (await producer.send(topic, enc.value, headers=enc.headers))
    finally:
        await producer.stop()

    records = await consume_all(kafka_bootstrap, topic, 2)
    assert len(records) == 2
    bad, ok = records
    with pytest.raises(serde.DecodeError) as info:
        serde.decode(
            bad.value, list(bad.headers), MarketDataEnvelope, topic=topic, partition=0, offset=bad.offset
        )
    assert info.value.offset == bad.offset == 0
    assert f"{topic}[0]@0" in str(info.value)
    assert "invalid protobuf encoding" in str(info.value)
    # the stream goes on: the next record decodes
    assert serde.decode(ok.value, list(ok.headers), MarketDataEnvelope) == good


@pytest.mark.disruptive
async def test_broker_restart_mid_stream_loses_no_acknowledged_message(
    kafka_bootstrap: str, new_topic: NewTopic, stack: object
) -> None:
    topic = await new_topic(partitions=3)
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, request_timeout_ms=60_000)
    producer = create_producer(settings, client_id="restart-test", linger_ms=5)
    await producer.start()
    publisher = Publisher(producer)
    acked: list[str] = []
    failed: list[str] = []
    total = 3000
    restarted = asyncio.Event()

    async def produce() -> None:
        pending: list[tuple[str, asyncio.Future[RecordMetadata]]] = []
        for i in range(total):
            msg = quote(f"SYM{i % 6}-USDT", i)
            key = f"binance:{msg.symbol}".encode()
            fut = await publisher.send(
                topic, key, msg, event_id=msg.event_id, event_time_ns=msg.exchange_time_ns
            )
            pending.append((msg.event_id, fut))
            if i == total // 3:
                restarted.set()
            await asyncio.sleep(0.002)
        for event_id, fut in pending:
            try:
                await fut
                acked.append(event_id)
            except Exception:
                failed.append(event_id)

    async def restart() -> None:
        await restarted.wait()
        await asyncio.to_thread(stack.restart, "kafka")  # type: ignore[attr-defined]

    try:
        await asyncio.wait_for(asyncio.gather(produce(), restart()), timeout=240)
    finally:
        await producer.stop()

    assert acked, "nothing was acknowledged"
    records = await consume_all(kafka_bootstrap, topic, len(acked), timeout_s=90)
    seen = [serde.header(list(r.headers), serde.HEADER_EVENT_ID) for r in records]
    missing = set(acked) - set(seen)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
    assert len(seen) == len(set(seen)), "the idempotent producer must not duplicate on retry"
    # Nothing unacknowledged may be claimed as sent either; with retries all should have been acknowledged.
    assert len(acked) + len(failed) == total
    assert not failed, f"{len(failed)} sends failed outright across a short broker restart"
