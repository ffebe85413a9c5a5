"""The Amazon MSK (Kafka) Lambda event shape: parse it into typed records, build it, answer it.

The same code runs in AWS (the event source mapping invokes the function) and locally (lambdas/runner builds
the exact event from records it consumed). Event shape::

    {"eventSource": "aws:kafka", "eventSourceArn": "...", "bootstrapServers": "b-1:9092,...",
     "records": {"<topic>-<partition>": [
        {"topic": ..., "partition": 0, "offset": 15, "timestamp": 1545084650987,
         "timestampType": "CREATE_TIME", "key": "<base64>", "value": "<base64>",
         "headers": [{"<name>": [<byte>, <byte>, ...]}]}]}}

A partial batch response names each failed record as
``{"itemIdentifier": {"partition": "<topic>-<partition>", "offset": <offset>}}`` (what powertools'
BatchProcessor(EventType.Kafka) returns); the mapping retries from the lowest failed offset per partition.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf.message import Message

from aipx.serde import Headers, decode

M = TypeVar("M", bound=Message)

EVENT_SOURCES = ("aws:kafka", "SelfManagedKafka")
# Lambda's synchronous invocation payload limit: an event source mapping never sends a larger event.
MAX_EVENT_BYTES = 6 * 1024 * 1024
# JSON framing and per-record fields of an event record beyond its key, value and headers.
_RECORD_OVERHEAD_BYTES = 160
# Base64 at C level (base64.b64encode/b64decode add a Python wrapper per call; hot path: every record).
_a2b = binascii.a2b_base64
_b2a = binascii.b2a_base64


class InvalidEventError(ValueError):
    """The invocation event is not a Kafka event source mapping event."""


@dataclass(frozen=True, slots=True, init=False)
class MskRecord:
    """One Kafka record of an invocation, raw bytes decoded from base64."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    timestamp_type: str = "CREATE_TIME"

    def __init__(  # noqa: PLR0917 (the dataclass's positional signature, kept)
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        timestamp_type: str = "CREATE_TIME",
    ) -> None:
        # Still frozen (assignment raises FrozenInstanceError), but filled through the slots' own setters:
        # the generated __init__ of a frozen dataclass calls object.__setattr__ per field, about 3x slower,
        # and one or two MskRecords are built per consumed record (runner, then handler).
        _set_topic(self, topic)
        _set_partition(self, partition)
        _set_offset(self, offset)
        _set_timestamp_ms(self, timestamp_ms)
        _set_key(self, key)
        _set_value(self, value)
        _set_headers(self, [] if headers is None else headers)
        _set_timestamp_type(self, timestamp_type)

    @property
    def ident(self) -> str:
        """'topic-partition-offset': unique per record, the natural idempotency key."""
        return f"{self.topic}-{self.partition}-{self.offset}"

    @property
    def topic_partition(self) -> str:
        return f"{self.topic}-{self.partition}"

    def header(self, name: str) -> str | None:
        """Text value of a header (last wins), or None."""
        found: str | None = None
        for k, v in self.headers:
            if k == name:
                found = v.decode("utf-8", errors="replace")
        return found

    def decode(self, message_type: type[M]) -> M:
        """The value as `message_type`; aipx.serde.DecodeError (with topic/partition/offset) if it is not."""
        return decode(
            self.value,
            self.headers,
            message_type,
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
        )

    @classmethod
    def from_event_record(cls, raw: Mapping[str, Any]) -> MskRecord:
        """Parse one record of the event's `records` lists."""
        # Hot path (every record of every invocation): one explicit loop for the headers, binascii rather
        # than base64.b64decode (a Python wrapper per call), positional construction.
        try:
            headers: Headers = []
            for entry in raw.get("headers") or ():
                for name, values in entry.items():
                    headers.append((name, bytes(values)))
            key, value = raw.get("key"), raw.get("value")
            return cls(
                str(raw["topic"]),
                int(raw["partition"]),
                int(raw["offset"]),
                int(raw.get("timestamp", 0)),
                _a2b(key) if key is not None else None,
                _a2b(value) if value is not None else None,
                headers,
                str(raw.get("timestampType", "CREATE_TIME")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidEventError(f"malformed Kafka event record: {exc}") from exc

    @property
    def event_bytes(self) -> int:
        """Approximate size of this record in an invocation event (base64 key/value, headers as byte lists
        of up to 4 characters per byte, JSON framing): what counts against MAX_EVENT_BYTES."""
        raw = len(self.key or b"") + len(self.value or b"")
        size = (raw + 2) // 3 * 4 + _RECORD_OVERHEAD_BYTES
        for name, value in self.headers:  # a loop, not sum(generator): the runner sizes every record
            size += len(name) + 4 * len(value)
        return size

    def to_event_record(self) -> dict[str, Any]:
        """The record as it appears in the event (base64 key/value, headers as byte lists)."""
        record: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp_ms,
            "timestampType": self.timestamp_type,
            "headers": [{name: list(value)} for name, value in self.headers],
        }
        if self.key is not None:
            record["key"] = _b2a(self.key, newline=False).decode("ascii")
        if self.value is not None:
            record["value"] = _b2a(self.value, newline=False).decode("ascii")
        return record


# The slot descriptors' setters (bypass the frozen __setattr__; see MskRecord.__init__).
_set_topic = MskRecord.__dict__["topic"].__set__
_set_partition = MskRecord.__dict__["partition"].__set__
_set_offset = MskRecord.__dict__["offset"].__set__
_set_timestamp_ms = MskRecord.__dict__["timestamp_ms"].__set__
_set_key = MskRecord.__dict__["key"].__set__
_set_value = MskRecord.__dict__["value"].__set__
_set_headers = MskRecord.__dict__["headers"].__set__
_set_timestamp_type = MskRecord.__dict__["timestamp_type"].__set__


def records_of(event: Mapping[str, Any]) -> list[MskRecord]:
    """All records of an invocation event, in partition order then offset order."""
    if event.get("eventSource") not in EVENT_SOURCES:
        raise InvalidEventError(f"not a Kafka event: eventSource={event.get('eventSource')!r}")
    groups = event.get("records")
    if not isinstance(groups, Mapping):
        raise InvalidEventError("Kafka event has no 'records' mapping")
    return [MskRecord.from_event_record(r) for records in groups.values() for r in records]


def build_event(
    records: Iterable[MskRecord],
    *,
    event_source_arn: str = "arn:aws:kafka:local:000000000000:cluster/aipx-local/local",
    bootstrap_servers: str = "",
) -> dict[str, Any]:
    """The exact MSK invocation event for `records` (grouped by 'topic-partition')."""
    groups: dict[str, list[dict[str, Any]]] = {}
    group: list[dict[str, Any]] = []
    topic: str | None = None
    partition: int | None = None
    for record in records:
        if record.partition != partition or record.topic != topic:  # records come in runs per partition
            topic, partition = record.topic, record.partition
            group = groups.setdefault(f"{topic}-{partition}", [])
        group.append(record.to_event_record())
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": event_source_arn,
        "bootstrapServers": bootstrap_servers,
        "records": groups,
    }


def item_failure(record: MskRecord) -> dict[str, Any]:
    """The batchItemFailures entry naming one failed record."""
    return {"itemIdentifier": {"partition": record.topic_partition, "offset": record.offset}}


def failed_offsets(response: Mapping[str, Any] | None) -> dict[str, int]:
    """From a partial batch response: the lowest failed offset per 'topic-partition' (empty: all succeeded).

    Raises InvalidEventError for a response the event source mapping would treat as a whole-batch failure
    (an item without a valid partition/offset identifier).
    """
    lowest: dict[str, int] = {}
    for item in (response or {}).get("batchItemFailures") or ():
        ident = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(ident, Mapping) or "partition" not in ident or "offset" not in ident:
            raise InvalidEventError(f"invalid batch item failure {item!r}")
        tp, offset = str(ident["partition"]), int(ident["offset"])
        lowest[tp] = min(offset, lowest.get(tp, offset))
    return lowest


def split_topic_partition(tp: str) -> tuple[str, int]:
    """'market-data-raw-3' -> ('market-data-raw', 3)."""
    topic, _, partition = tp.rpartition("-")
    return topic, int(partition)


def sort_records(records: Sequence[MskRecord]) -> list[MskRecord]:
    """Records ordered by (topic, partition, offset)."""
    return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
