"""Stopping and starting Kafka through the stack handle keeps its data (runs last: `disruptive`)."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aipx_stack import Stack
from aipx_stack.probes import probe_kafka
from aipx_stack.pytest_plugin import TopicFactory

pytestmark = [pytest.mark.integration, pytest.mark.disruptive]


async def test_kafka_stop_and_start_keeps_records(
    stack: Stack, kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    if stack.mode == "external":
        pytest.fail("this test needs a stack aipx-stack controls; got AIPX_STACK_MODE=external")
    topic = await new_topic(1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before-restart", key=b"k")
    finally:
        await producer.stop()

    stack.stop("kafka")
    try:
        assert probe_kafka(kafka_bootstrap, timeout_s=2.0) is not None, "Kafka still answers after stop"
        assert {s.name: s.state for s in stack.status()}["kafka"] == "stopped"
    finally:
        stack.start("kafka")
    assert probe_kafka(kafka_bootstrap) is None

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        batch = await consumer.getmany(tp, timeout_ms=15_000)
        assert [r.value for r in batch[tp]] == [b"before-restart"]
    finally:
        await consumer.stop()
