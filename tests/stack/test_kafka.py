"""The Kafka broker holds the catalogue's topics and carries records end to end."""

from __future__ import annotations

import os

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aipx.settings import KafkaSettings, S3Settings
from aipx.topics import catalogue
from aipx_stack import Endpoints, Stack
from aipx_stack.pytest_plugin import TopicFactory

pytestmark = pytest.mark.integration


async def test_catalogue_topics_exist_with_their_partition_counts(kafka_bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        expected = {spec.name: spec.partitions for spec in catalogue().topics}
        assert set(expected) <= existing, f"missing: {set(expected) - existing}"
        described = await admin.describe_topics(list(expected))
        partitions = {t["topic"]: len(t["partitions"]) for t in described}
        assert partitions == expected
    finally:
        await admin.close()


async def test_new_topic_carries_records_per_key(kafka_bootstrap: str, new_topic: TopicFactory) -> None:
    topic = await new_topic(3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, f"v{i}".encode(), key=b"BTC-USDT") for i in range(5)]
    finally:
        await producer.stop()
    assert len({m.partition for m in sent}) == 1  # one key, one partition: ordered
    assert [m.offset for m in sent] == list(range(5))

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, sent[0].partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        batch = await consumer.getmany(tp, timeout_ms=10_000, max_records=5)
        assert [r.value for r in batch[tp]] == [f"v{i}".encode() for i in range(5)]
        assert all(r.key == b"BTC-USDT" for r in batch[tp])
    finally:
        await consumer.stop()


async def test_new_topic_has_the_requested_partitions(kafka_bootstrap: str, new_topic: TopicFactory) -> None:
    topic = await new_topic(4, config={"retention.ms": "60000"})
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        assert len(described["partitions"]) == 4
    finally:
        await admin.close()
    with pytest.raises(ValueError, match="at least one partition"):
        await new_topic(0)


async def topic_config(bootstrap: str, topic: str, name: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    [resource] = response.resources
    values = {entry[0]: entry[1] for entry in resource[4]}
    return str(values[name])


async def test_new_topic_keeps_records_with_historical_timestamps(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    # Tests publish records with fixed 2026-01 event times; 7-day retention would delete them mid-test.
    assert await topic_config(kafka_bootstrap, await new_topic(), "retention.ms") == "-1"
    limited = await new_topic(config={"retention.ms": "60000"})
    assert await topic_config(kafka_bootstrap, limited, "retention.ms") == "60000"


def test_session_exports_the_endpoints_for_aipx_settings(stack: Stack, stack_endpoints: Endpoints) -> None:
    assert os.environ["AIPX_KAFKA_BOOTSTRAP_SERVERS"] == stack_endpoints.kafka_bootstrap
    assert os.environ["AIPX_POSTGRES_DSN"] == stack_endpoints.postgres_dsn
    assert os.environ["AIPX_REDIS_URL"] == stack_endpoints.redis_url
    # The shared settings accept every exported variable (they reject unknown AIPX_* names).
    assert KafkaSettings().bootstrap_servers == stack_endpoints.kafka_bootstrap
    s3 = S3Settings()
    assert (s3.endpoint_url, s3.bucket) == (stack_endpoints.s3_endpoint_url, stack_endpoints.s3_bucket)
    statuses = {s.name: s.state for s in stack.status()}
    assert statuses == {"kafka": "running", "postgres": "running", "redis": "running", "s3": "running"}
