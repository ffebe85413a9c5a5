"""The recorder's durable index is keyed by the topic's incarnation (Kafka topic id): a deleted and re-created
topic starts its offsets at 0 again, and its new records of the same hour are stored, not skipped as "already
in the lake". Real broker (topic ids over the Kafka protocol) and S3 server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aipx.settings import KafkaSettings
from aipx.topics import TRADING_SIGNALS
from aipx_recorder.adapters.s3 import S3Store
from aipx_recorder.adapters.topic_ids import fetch_topic_ids, kafka_topic_ids
from aipx_recorder.layout import Directory, DurableIndex, file_name, incarnation_of, parse_file_name
from aipx_recorder.reader import read_topic
from aipx_recorder.recorder import ParquetRecorder
from aipx_recorder.settings import RotationPolicy

from .test_recorder_lake import messages, s3_settings


def test_file_names_carry_the_incarnation_and_old_names_still_parse() -> None:
    tag = incarnation_of("256eeae8-4912-4cb5-8333-7697c71fdcf7")
    assert tag == "256eeae849124cb5"
    name = file_name("trading-signals.dlq", 3, 10, 20, tag)
    assert name == "trading-signals.dlq-3-10-20.256eeae849124cb5.parquet"
    parsed = parse_file_name(name)
    assert parsed is not None and (parsed.topic, parsed.partition, parsed.first, parsed.last) == (
        "trading-signals.dlq",
        3,
        10,
        20,
    )
    assert parsed.incarnation == tag
    legacy = parse_file_name("trading-signals.dlq-3-10-20.parquet")
    assert legacy is not None and legacy.topic == "trading-signals.dlq" and legacy.incarnation is None


def test_the_index_tells_incarnations_apart() -> None:
    here = Directory("trading-signals", 480_000)
    index = DurableIndex()
    index.learn_listing(here, [file_name("trading-signals", 0, 0, 99, "aaaaaaaaaaaaaaaa")])
    assert index.covers(here, 0, 5, "aaaaaaaaaaaaaaaa")
    assert not index.covers(here, 0, 5, "bbbbbbbbbbbbbbbb")  # the re-created topic's offset 5
    assert index.covering(here, 0, 0, 10, "bbbbbbbbbbbbbbbb") is None
    assert not index.covers(here, 0, 5)  # a legacy name is its own (unknown) incarnation


async def _recreate(admin: AIOKafkaAdminClient, topic: str) -> None:
    await admin.delete_topics([topic])
    deadline = asyncio.get_running_loop().time() + 120
    while True:  # deletion is asynchronous: the name is free once the broker has finished it
        try:
            await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"retention.ms": "-1"})])
            return
        except TopicAlreadyExistsError:
            assert asyncio.get_running_loop().time() < deadline, f"{topic} was not deleted"
            await asyncio.sleep(0.5)


@pytest.mark.integration
async def test_a_recreated_topics_records_of_the_same_hour_are_stored(  # noqa: PLR0917 (fixtures)
    kafka_bootstrap: str,
    kafka_io: Any,
    builders: Any,
    new_topic: Any,
    new_bucket: Any,
    s3_endpoint: Any,
    lambda_runtime: Any,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topic, dlq, bucket = f"rec-incarnation-{uuid.uuid4().hex[:8]}", await new_topic(1), await new_bucket()
    settings = s3_settings(s3_endpoint)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()

    def recorder() -> ParquetRecorder:
        return ParquetRecorder(
            S3Store(settings, bucket=bucket),
            policy=RotationPolicy(max_records=1),  # every invocation writes its records
            topics={topic: TRADING_SIGNALS},
            dlqs={topic: dlq},
            topic_ids=kafka_topic_ids(kafka),
        )

    def batch(tag: str, n: int) -> list[Any]:
        return [
            builders.outgoing(key, message, event_id=f"{tag}-{i}", event_time_ns=t)
            for i, (key, message, t) in enumerate(messages(TRADING_SIGNALS, n, step_s=1))  # one hour
        ]

    try:
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"retention.ms": "-1"})])
        first_id = (await fetch_topic_ids(kafka, [topic]))[topic]
        warm = recorder()
        old = await kafka_io.produce(topic, batch("old", 5))
        assert [r.offset for r in old] == [0, 1, 2, 3, 4]
        result = await asyncio.to_thread(warm.process, old)
        assert sum(f.records for f in result.written) == 5

        await _recreate(admin, topic)
        second_id = (await fetch_topic_ids(kafka, [topic]))[topic]
        assert second_id != first_id, "a re-created topic has a new id"
        new = await kafka_io.produce(topic, batch("new", 3))
        assert [r.offset for r in new] == [0, 1, 2]  # the same offsets, the same hour, other records

        result = await asyncio.to_thread(warm.process, new)  # the same warm instance sees offsets go back
        assert result.already_durable == 0 and sum(f.records for f in result.written) == 3
        assert all(incarnation_of(second_id) in f.key for f in result.written)
        again = await asyncio.to_thread(recorder().process, new)  # a cold start redelivered the same
        assert again.already_durable == 3 and again.written == []
    finally:
        await admin.delete_topics([topic])
        await admin.close()

    table = await asyncio.to_thread(read_topic, topic, settings=settings, bucket=bucket)
    # Both incarnations' records of the same partition, offsets and hour, each exactly once.
    ids = sorted(str(v) for v in table.column("_event_id").to_pylist())
    assert ids == sorted([f"new-{i}" for i in range(3)] + [f"old-{i}" for i in range(5)])
