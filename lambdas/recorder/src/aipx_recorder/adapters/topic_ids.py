"""Kafka topic ids (a topic's incarnation: a deleted and re-created topic gets a new one).

aiokafka (0.14) speaks Metadata up to v5, which has no topic ids (they arrived in v10, KIP-516), so this
module declares Metadata v12 with aiokafka's own protocol types and sends it with aiokafka's client: the
recorder's one use of the Kafka wire protocol below aiokafka's public API, kept here and tested against the
real broker (tests/lambdas/recorder/test_recorder_incarnation.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.abstract import AbstractType
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Boolean, CompactArray, CompactString, Int16, Int32, Schema, TaggedFields
from aipx.kafka.clients import client_config
from aipx.settings import KafkaSettings

_NO_ID = b"\x00" * 16


class _Uuid(AbstractType[bytes]):  # type: ignore[misc]
    """Kafka's UUID type: 16 raw bytes."""

    @classmethod
    def encode(cls, value: bytes) -> bytes:
        return value

    @classmethod
    def decode(cls, data: BytesIO) -> bytes:
        value = data.read(16)
        if len(value) != 16:
            raise ValueError("buffer underrun decoding a UUID")
        return value


class _MetadataResponseV12(Response):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 12
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            CompactArray(
                ("node_id", Int32),
                ("host", CompactString("utf-8")),
                ("port", Int32),
                ("rack", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            CompactArray(
                ("error_code", Int16),
                ("name", CompactString("utf-8")),
                ("topic_id", _Uuid),
                ("is_internal", Boolean),
                (
                    "partitions",
                    CompactArray(
                        ("error_code", Int16),
                        ("partition_index", Int32),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("replica_nodes", CompactArray(Int32)),
                        ("isr_nodes", CompactArray(Int32)),
                        ("offline_replicas", CompactArray(Int32)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("topic_authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _MetadataRequestV12(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 12
    RESPONSE_TYPE = _MetadataResponseV12
    SCHEMA = Schema(
        (
            "topics",
            CompactArray(("topic_id", _Uuid), ("name", CompactString("utf-8")), ("tags", TaggedFields)),
        ),
        ("allow_auto_topic_creation", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class _TopicIdsRequest(Request[_MetadataRequestV12]):  # type: ignore[misc]
    API_KEY = 3

    def __init__(self, topics: list[str]) -> None:
        self._topics = topics

    def build(self, request_struct_class: type[_MetadataRequestV12]) -> _MetadataRequestV12:
        return request_struct_class([(_NO_ID, t, {}) for t in self._topics], False, False, {})


async def fetch_topic_ids(settings: KafkaSettings, topics: Iterable[str]) -> dict[str, str]:
    """{topic: topic id (UUID text)} for the topics that exist (a missing topic is left out)."""
    wanted = sorted(set(topics))
    config: dict[str, Any] = client_config(settings, client_id="recorder-topic-ids")
    client = AIOKafkaClient(**config)
    await client.bootstrap()
    try:
        response = await client.send(client.get_random_node(), _TopicIdsRequest(wanted))
    finally:
        await client.close()
    ids: dict[str, str] = {}
    for error_code, name, topic_id, *_ in response.topics:
        if error_code == 0 and name and topic_id != _NO_ID:
            ids[name] = str(uuid.UUID(bytes=topic_id))
    return ids


def kafka_topic_ids(settings: KafkaSettings) -> Callable[[list[str]], dict[str, str]]:
    """A synchronous lookup for the recorder (runs on the process's shared event loop, aipx.lambda_kit)."""

    def lookup(topics: list[str]) -> dict[str, str]:
        from aipx.lambda_kit import default_runtime

        return default_runtime().run(fetch_topic_ids(settings, topics), timeout=60)

    return lookup
