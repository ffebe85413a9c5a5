"""Kafka for the runner: the mapping's consumer, records as MSK records, the on-failure publisher."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aipx.kafka import create_consumer
from aipx.msk import MskRecord
from aipx.settings import KafkaSettings

# What Lambda's event holds beyond the raw bytes (base64 inflation, JSON framing, per-record fields).
_RECORD_OVERHEAD = 160


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
    return MskRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        timestamp_type="LOG_APPEND_TIME" if record.timestamp_type == 1 else "CREATE_TIME",
        key=record.key,
        value=record.value,
        headers=[(k, bytes(v)) for k, v in record.headers],
    )


def event_size(record: MskRecord) -> int:
    """Approximate bytes the record adds to the invocation payload."""
    raw = len(record.key or b"") + len(record.value or b"")
    headers = sum(len(k) + 4 * len(v) for k, v in record.headers)  # byte lists: ~4 chars per byte
    return raw * 4 // 3 + headers + _RECORD_OVERHEAD
