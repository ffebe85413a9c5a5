"""Shared fixtures for the function integration tests: a private AsyncRuntime as the process default, and
real Kafka records (produced to the broker, then fetched back) to build exact MSK events from."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aipx.lambda_kit import AsyncRuntime, MskRecord, set_default_runtime
from aipx.serde import encode
from aipx.settings import KafkaSettings
from google.protobuf.message import Message


@pytest.fixture
def lambda_runtime(kafka_bootstrap: str) -> Iterator[AsyncRuntime]:
    """A fresh runtime on the test broker, installed as the default the handlers use."""
    runtime = AsyncRuntime(KafkaSettings(bootstrap_servers=kafka_bootstrap), client_id="function-test")
    previous = set_default_runtime(runtime)
    yield runtime
    if previous is not None:
        set_default_runtime(previous)
    runtime.close()


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def outgoing(key: bytes, message: Message, *, event_id: str, event_time_ns: int) -> Outgoing:
    """A protobuf message with the standard AIPX headers, as a producer would send it."""
    enc = encode(message, event_id=event_id, event_time_ns=event_time_ns)
    return Outgoing(key, enc.value, enc.headers)


def raw_outgoing(key: bytes | None, value: bytes | None, *, schema: str) -> Outgoing:
    """Bytes that claim to be `schema` (e.g. an undecodable value) with content-type and schema headers."""
    return Outgoing(
        key, value, [("content-type", b"application/x-protobuf"), ("aipx-schema", schema.encode())]
    )


class KafkaIO:
    """Produce records and read them back as they sit in the log (partition, offset, timestamp, headers)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    async def produce(self, topic: str, items: Sequence[Outgoing]) -> list[MskRecord]:
        """Send `items` in order, then fetch exactly those records back from the broker."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True, linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(topic, item.value, key=item.key, headers=item.headers) for item in items
            ]
            metas = [await f for f in futures]
        finally:
            await producer.stop()
        wanted = {(m.partition, m.offset) for m in metas}
        first: dict[int, int] = {}
        for m in metas:
            first[m.partition] = min(m.offset, first.get(m.partition, m.offset))
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        found: dict[tuple[int, int], MskRecord] = {}
        try:
            partitions = [TopicPartition(topic, p) for p in first]
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, first[tp.partition])
            async with asyncio.timeout(30):
                while len(found) < len(wanted):
                    for tp, recs in (await consumer.getmany(timeout_ms=500, max_records=5000)).items():
                        for r in recs:
                            if (tp.partition, r.offset) in wanted:
                                found[(tp.partition, r.offset)] = MskRecord(
                                    topic=topic,
                                    partition=tp.partition,
                                    offset=r.offset,
                                    timestamp_ms=r.timestamp,
                                    key=r.key,
                                    value=r.value,
                                    headers=[(k, bytes(v)) for k, v in r.headers],
                                )
        finally:
            await consumer.stop()
        return [found[(m.partition, m.offset)] for m in metas]

    async def read(self, topic: str, *, min_count: int = 0, idle_s: float = 1.0) -> list[MskRecord]:
        """All of `topic` from the beginning: at least `min_count`, then until idle for `idle_s`."""
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        out: list[MskRecord] = []
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            last_new = loop.time()
            while loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for tp, recs in batch.items():
                    out.extend(
                        MskRecord(topic, tp.partition, r.offset, r.timestamp, r.key, r.value,
                                  [(k, bytes(v)) for k, v in r.headers])
                        for r in recs
                    )  # fmt: skip
                    last_new = loop.time()
                if len(out) >= min_count and loop.time() - last_new >= idle_s:
                    break
        finally:
            await consumer.stop()
        return out


@pytest.fixture
def kafka_io(kafka_bootstrap: str) -> KafkaIO:
    return KafkaIO(kafka_bootstrap)


class Records:
    """Builders of outgoing records (fixture `builders`)."""

    outgoing = staticmethod(outgoing)
    raw = staticmethod(raw_outgoing)


@pytest.fixture
def builders() -> type[Records]:
    return Records
