"""Kafka client setup: producer/consumer factories, a typed publisher, the topic bootstrap."""

from aipx.kafka.clients import (
    BatchPublisher,
    DeadLetterPublisher,
    Publisher,
    client_config,
    consumer_config,
    create_consumer,
    create_producer,
    producer_config,
)

__all__ = [
    "BatchPublisher",
    "DeadLetterPublisher",
    "Publisher",
    "client_config",
    "consumer_config",
    "create_consumer",
    "create_producer",
    "producer_config",
]
