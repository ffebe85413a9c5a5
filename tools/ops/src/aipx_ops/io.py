"""Kafka and S3 for the operator tools: bounded reads of a topic, a live tail, replay sends, S3 objects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aipx.kafka import create_consumer, create_producer
from aipx.kafka.clients import client_config
from aipx.settings import KafkaSettings, S3Settings

from aipx_ops.records import OpsError, Record

# A read stops when no record arrived for this long although the end offsets were not reached yet
# (records below the end that are no longer there: transaction markers, compaction).
_STALL_S = 10.0


def _record(r: Any) -> Record:
    return Record(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, list(r.headers))


async def partitions_of(settings: KafkaSettings, topic: str) -> set[int]:
    """The topic's partitions, from fresh cluster metadata (OpsError if the topic does not exist)."""
    admin = AIOKafkaAdminClient(**client_config(settings, client_id="ops-admin"))
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described.get("error_code") or not described.get("partitions"):
        raise OpsError(f"topic {topic!r} does not exist")
    return {int(p["partition"]) for p in described["partitions"]}


def _consumer(settings: KafkaSettings) -> AIOKafkaConsumer:
    # No group: an operator's reads never move a consumer group's offsets.
    return create_consumer(
        settings=settings, client_id="ops", group_id=None, isolation_level="read_committed"
    )


async def read_all(settings: KafkaSettings, topic: str) -> AsyncIterator[Record]:
    """Every record of `topic` present when the read starts (from the log start to the end offsets)."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await partitions_of(settings, topic))]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        pending = {tp for tp in partitions if ends[tp] > starts[tp]}
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        loop = asyncio.get_running_loop()
        last = loop.time()
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            if not batch:
                if loop.time() - last > _STALL_S:
                    break
                continue
            last = loop.time()
            for tp, records in batch.items():
                for r in records:
                    if r.offset < ends[tp]:
                        yield _record(r)
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()


async def read_one(settings: KafkaSettings, topic: str, partition: int, offset: int) -> Record:
    """The record at `partition`/`offset` of `topic` (OpsError if it is not there)."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        partitions = await partitions_of(settings, topic)
        if partition not in partitions:
            raise OpsError(f"topic {topic!r} has no partition {partition} (it has {sorted(partitions)})")
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        start, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
        if not start <= offset < end:
            raise OpsError(f"{topic}/{partition} holds offsets {start}..{end - 1}; {offset} is not there")
        consumer.seek(tp, offset)
        async with asyncio.timeout(30):
            while True:
                for r in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if r.offset == offset:
                        return _record(r)
                    if r.offset > offset:
                        raise OpsError(f"{topic}/{partition}/{offset} is not a record (compacted away?)")
    finally:
        await consumer.stop()


async def tail(
    settings: KafkaSettings, topic: str, *, from_beginning: bool, ready: Callable[[], None] | None = None
) -> AsyncIterator[Record]:
    """Records of `topic` as they arrive (after the existing ones when `from_beginning`); `ready()` is called
    once the start positions are resolved."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await partitions_of(settings, topic))]
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                await consumer.position(tp)  # resolve "end" now: records produced from here on are shown
        if ready is not None:
            ready()
        while True:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    yield _record(r)
    finally:
        await consumer.stop()


class Sender:
    """The replay producer (idempotent, acks=all: what the platform's producers are)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.producer: AIOKafkaProducer = create_producer(settings, client_id="ops-replay")

    async def __aenter__(self) -> Sender:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> tuple[int, int]:
        """Send and wait for the acknowledgement; (partition, offset) of the new record."""
        metadata = await (await self.producer.send(topic, value, key=key, headers=headers))
        return int(metadata.partition), int(metadata.offset)


def s3_client(settings: S3Settings) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id.get_secret_value() if settings.access_key_id else None,
        aws_secret_access_key=(
            settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
        ),
    )


def failure_objects(client: Any, bucket: str, prefix: str) -> Iterator[tuple[str, bytes]]:
    """(key, body) of every object under `prefix` in `bucket`, in key order."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            yield item["Key"], body
