"""Kafka for the runner: the mapping's consumer, and consumed records as MSK event records."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aipx.kafka import create_consumer
from aipx.msk import MskRecord
from aipx.settings import KafkaSettings


def mapping_consumer(
    settings: KafkaSettings, *, topic: str, group_id: str, auto_offset_reset: str, batch_size: int
) -> AIOKafkaConsumer:
    """A manual-commit consumer in the mapping's fixed consumer group (subscribe it to `topic`)."""
    return create_consumer(
        settings=settings,
        client_id=f"runner-{group_id}",
        group_id=group_id,
        auto_offset_reset=auto_offset_reset,
        max_poll_records=batch_size,
        # The handler may take a while; do not let the group evict us between polls.
        max_poll_interval_ms=15 * 60 * 1000,
    )


def to_msk_record(record: ConsumerRecord[Any, Any]) -> MskRecord:
    """An aiokafka record as the record of an MSK event."""
    # Positional: keyword construction of the frozen dataclass costs ~1 us more (hot path: every record).
    return MskRecord(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value,
        list(record.headers),
        "LOG_APPEND_TIME" if record.timestamp_type == 1 else "CREATE_TIME",
    )
