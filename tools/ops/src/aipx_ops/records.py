"""Dead-lettered and topic records as an operator sees them: decoded, filtered, ready for replay. No I/O."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aipx import serde
from aipx.serde import (
    HEADER_DLQ_CONSUMER,
    HEADER_DLQ_ERROR,
    HEADER_DLQ_ERROR_TYPE,
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_PARTITION,
    HEADER_DLQ_TIME,
    HEADER_DLQ_TOPIC,
    HEADER_EVENT_ID,
    HEADER_SCHEMA,
    Headers,
)
from google.protobuf.json_format import MessageToDict

DLQ_PREFIX = "aipx-dlq-"
# Added to a replayed record: where it was replayed from (the DLQ or S3 coordinates).
HEADER_REPLAY_OF = "aipx-replay-of"

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class OpsError(ValueError):
    """A clear operator error (bad argument, missing record): printed, exit code 2."""


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as read from a topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @property
    def coordinates(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    def header(self, name: str) -> str | None:
        return serde.header(self.headers, name)

    @property
    def dlq_time_ns(self) -> int:
        """When it was dead-lettered (the aipx-dlq-time-ns header, else the record timestamp)."""
        text = self.header(HEADER_DLQ_TIME)
        return int(text) if text and text.isdigit() else self.timestamp_ms * 1_000_000

    @property
    def error_type(self) -> str | None:
        return self.header(HEADER_DLQ_ERROR_TYPE)

    @property
    def original_topic(self) -> str | None:
        return self.header(HEADER_DLQ_TOPIC)


def parse_time(text: str, *, now: datetime) -> datetime:
    """'2h', '30m', '90s', '1d' (ago), or an ISO 8601 time (UTC when it names no zone)."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: float(relative.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise OpsError(f"not a time: {text!r} (use e.g. 2h, 30m, 1d or 2026-12-04T10:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Filters:
    """Which dead-lettered records an operator means (every given condition must hold)."""

    since: datetime | None = None
    until: datetime | None = None
    key: str | None = None
    error_type: str | None = None

    def match(self, record: Record) -> bool:
        at = datetime.fromtimestamp(record.dlq_time_ns / 1e9, tz=UTC)
        if self.since is not None and at < self.since:
            return False
        if self.until is not None and at > self.until:
            return False
        if self.key is not None and (record.key or b"").decode("utf-8", errors="replace") != self.key:
            return False
        return self.error_type is None or record.error_type == self.error_type


def decode_payload(record: Record, schema: str | None = None) -> dict[str, Any]:
    """{"schema", "message"} when the value decodes as `schema` (default: its aipx-schema header), else
    {"schema", "undecodable": reason, "value_base64"}: a poison record is shown, never a crash."""
    name = schema or record.header(HEADER_SCHEMA)
    if record.value is None:
        return {"schema": name, "undecodable": "tombstone (no value)", "value_base64": None}
    raw = base64.b64encode(record.value).decode()
    if not name:
        return {"schema": None, "undecodable": "no aipx-schema header", "value_base64": raw}
    try:
        message = serde.decode(
            record.value,
            record.headers,
            serde.message_type(name),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
    except (serde.DecodeError, KeyError) as exc:
        return {"schema": name, "undecodable": str(exc), "value_base64": raw}
    return {"schema": name, "message": MessageToDict(message, preserving_proto_field_name=True)}


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


def describe(record: Record, *, schema: str | None = None, with_payload: bool = True) -> dict[str, Any]:
    """The record as JSON-ready data: coordinates, key, every header, DLQ facts and the decoded payload."""
    out: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC).isoformat(),
        "key": _text(record.key),
        "headers": {name: _text(value) for name, value in record.headers},
    }
    if record.header(HEADER_DLQ_TOPIC) is not None:
        out["dlq"] = {
            "error_type": record.error_type,
            "error": record.header(HEADER_DLQ_ERROR),
            "original_topic": record.original_topic,
            "original_partition": record.header(HEADER_DLQ_PARTITION),
            "original_offset": record.header(HEADER_DLQ_OFFSET),
            "consumer": record.header(HEADER_DLQ_CONSUMER),
            "dead_lettered_at": datetime.fromtimestamp(record.dlq_time_ns / 1e9, tz=UTC).isoformat(),
        }
    if with_payload:
        out["payload"] = decode_payload(record, schema)
    return out


def summary_line(record: Record) -> str:
    """One line of `dlq list`: coordinates, time, key, error type, origin, error."""
    at = datetime.fromtimestamp(record.dlq_time_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    partition, offset = record.header(HEADER_DLQ_PARTITION), record.header(HEADER_DLQ_OFFSET)
    origin = f"{record.original_topic}/{partition}/{offset}"
    error = (record.header(HEADER_DLQ_ERROR) or "").replace("\n", " ")
    if len(error) > 80:
        error = error[:77] + "..."
    key = _text(record.key) or "-"
    return f"{record.partition}:{record.offset}\t{at}\t{key}\t{record.error_type or '-'}\t{origin}\t{error}"


def replay_headers(headers: Sequence[tuple[str, bytes]], replay_of: str) -> Headers:
    """The original headers (aipx-event-id kept: consumers de-duplicate on it) without the aipx-dlq-* ones,
    plus aipx-replay-of naming where the replayed record came from."""
    kept = [(n, v) for n, v in headers if not n.startswith(DLQ_PREFIX) and n != HEADER_REPLAY_OF]
    return [*kept, (HEADER_REPLAY_OF, replay_of.encode())]


def replay_target(record: Record, to: str | None) -> str:
    """Where a dead-lettered record goes back to: `to`, else its aipx-dlq-original-topic header."""
    target = to or record.original_topic
    if not target:
        raise OpsError(f"{record.coordinates} has no {HEADER_DLQ_TOPIC} header: name a topic with --to")
    return target


def event_id(headers: Sequence[tuple[str, bytes]]) -> str | None:
    return serde.header(headers, HEADER_EVENT_ID)


def parse_coordinates(text: str) -> tuple[int, int]:
    """'PARTITION:OFFSET' -> (partition, offset)."""
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise OpsError(f"expected PARTITION:OFFSET (e.g. 0:42), got {text!r}")
    return int(partition), int(offset)
