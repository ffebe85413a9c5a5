"""Catalogue topics stamp records with the broker's append time, so retention counts from when a record was
written, not from its event time: a replay of old market data is not deleted at the next retention check.
The event time still travels in the aipx-event-time-ns header (and in the payload)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import ConsumerRecord
from aipx import serde, topics
from aipx.kafka import Publisher, create_producer
from aipx.kafka.admin import ensure_topics, new_topic, reconcile_configs
from aipx.settings import KafkaSettings
from aipx.topics import TopicCatalogue
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx_stack import scratch
from aipx_stack.probes import kafka_admin

from tests.foundation.test_kafka_roundtrip import consume_all, quote

OLD_EVENT_NS = 1_767_225_600_000_000_000  # 2026-01-01: older than market-data-raw's 7-day retention


def test_every_catalogue_topic_and_dead_letter_topic_uses_append_time() -> None:
    for spec in topics.catalogue().topics:
        assert spec.topic_configs().get("message.timestamp.type") == "LogAppendTime", spec.name


@pytest.mark.integration
async def test_an_old_event_is_stamped_with_its_append_time_and_keeps_its_event_time(
    kafka_bootstrap: str,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    spec = topics.catalogue().get(topics.MARKET_DATA_RAW)
    renamed = spec.model_copy(update={"name": f"test-catalogue-{suffix}", "dlq": None})
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    created = await ensure_topics(settings=settings, topics=TopicCatalogue(topics=(renamed,)))
    assert created == [renamed.name]
    try:
        producer = create_producer(settings, client_id="timestamp-test")
        await producer.start()
        try:
            env = quote("BTC-USDT", 1)
            env.exchange_time_ns = OLD_EVENT_NS
            written_ms = time.time_ns() // 1_000_000
            await Publisher(producer).publish(
                renamed.name, b"binance:BTC-USDT", env, event_id=env.event_id, event_time_ns=OLD_EVENT_NS
            )
        finally:
            await producer.stop()
        records: list[ConsumerRecord[bytes, bytes]] = await consume_all(kafka_bootstrap, renamed.name, 1)
    finally:
        await scratch.delete_topics(kafka_bootstrap, [renamed.name])
    assert len(records) == 1
    record = records[0]
    assert record.timestamp_type == 1, "LogAppendTime"
    assert abs(record.timestamp - written_ms) < 60_000, "stamped when written, not with the event time"
    assert dict(record.headers)[serde.HEADER_EVENT_TIME] == str(OLD_EVENT_NS).encode()
    decoded = serde.decode(record.value, record.headers, MarketDataEnvelope)
    assert decoded.exchange_time_ns == OLD_EVENT_NS


async def topic_configs(admin: Any, name: str) -> dict[str, str]:
    resource = ConfigResource(ConfigResourceType.TOPIC, name, None)
    (response,) = await admin.describe_configs([resource])
    return {entry[0]: entry[1] for entry in response.resources[0][4]}


@pytest.mark.integration
async def test_the_bootstrap_gives_an_existing_topic_the_catalogue_configs(kafka_bootstrap: str) -> None:
    """A topic created before a catalogue change (here: CreateTime, broker-default retention) is brought to
    the catalogue's configs by the next bootstrap; once the broker has applied them (config changes reach
    DescribeConfigs asynchronously), a second bootstrap finds nothing to change."""
    spec = topics.catalogue().get(topics.MARKET_DATA_RAW)
    renamed = spec.model_copy(update={"name": f"test-catalogue-{uuid.uuid4().hex[:8]}", "dlq": None})
    # min.insync.replicas is capped at the replication factor (1 here)
    wanted = {k: v for k, v in renamed.topic_configs().items() if k != "min.insync.replicas"}
    await scratch.create_topics(kafka_bootstrap, {renamed.name: renamed.partitions})
    admin = kafka_admin(kafka_bootstrap)
    await admin.start()
    try:
        assert (await topic_configs(admin, renamed.name))["message.timestamp.type"] == "CreateTime"
        requests = [new_topic(renamed, 1)]
        assert await reconcile_configs(admin, requests) == [renamed.name]
        deadline = time.monotonic() + 15
        while (configs := await topic_configs(admin, renamed.name)) and any(
            configs.get(k) != v for k, v in wanted.items()
        ):
            assert time.monotonic() < deadline, f"configs not applied after 15 s: {configs}"
            await asyncio.sleep(0.1)
        assert await reconcile_configs(admin, requests) == []
        settings = KafkaSettings(bootstrap_servers=kafka_bootstrap)
        assert await ensure_topics(settings=settings, topics=TopicCatalogue(topics=(renamed,))) == []
    finally:
        await admin.close()
        await scratch.delete_topics(kafka_bootstrap, [renamed.name])
    assert configs["message.timestamp.type"] == "LogAppendTime"
