"""The platform's producers drain per broker, like the Java producer: when one partition's batch is ready,
the other partitions' batches on that broker leave in the same produce request instead of each lingering on.
Against the real broker, with a long linger so the timing is unambiguous."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.producer.sender import Sender
from aipx.kafka import create_producer
from aipx.kafka.clients import NodeDrainingAccumulator
from aipx.settings import KafkaSettings
from aipx_stack.pytest_plugin import TopicFactory

pytestmark = pytest.mark.integration
LINGER_S = 0.4


async def test_a_ready_batch_takes_the_other_partitions_batches_along(
    kafka_bootstrap: str, new_topic: TopicFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = await new_topic(3)
    requests: list[int] = []
    original = Sender._send_produce_req

    async def counted(self: Sender, node_id: int, batches: dict[object, object]) -> object:
        requests.append(len(batches))
        return await original(self, node_id, batches)

    monkeypatch.setattr(Sender, "_send_produce_req", counted)
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, linger_ms=int(LINGER_S * 1000))
    producer = create_producer(settings, client_id="drain-test")
    assert isinstance(producer._message_accumulator, NodeDrainingAccumulator)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm-up", partition=2)
        requests.clear()
        first = await producer.send(topic, b"a", partition=0)
        await asyncio.sleep(LINGER_S * 0.75)
        sent_second = time.monotonic()
        second = await producer.send(topic, b"b", partition=1)
        await asyncio.gather(first, second)
        waited = time.monotonic() - sent_second
    finally:
        await producer.stop()
    # The second record left with the first one's batch (~0.1 s after it was sent), not after its own linger.
    assert waited < LINGER_S * 0.75, f"partition 1's batch waited {waited:.2f}s"
    assert requests == [2], "one produce request carried both partitions' batches"
