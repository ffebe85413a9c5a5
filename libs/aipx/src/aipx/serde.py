"""Protobuf serialization for Kafka records, with the standard AIPX headers.

Every record carries:
    content-type        application/x-protobuf
    aipx-schema         fully-qualified message name (e.g. aipx.v1.MarketDataEnvelope)
    aipx-event-id       unique id of the event (consumers de-duplicate on it)
    aipx-event-time-ns  event time, unix epoch nanoseconds, ASCII digits
    aipx-trace-id       correlation id propagated across services (optional)
Dead-lettered records keep the original value and headers and add the aipx-dlq-* headers below.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

from google.protobuf.message import DecodeError as PbDecodeError
from google.protobuf.message import Message

import aipx.v1
from aipx.numbers import InvalidNumberError, epoch_ns

CONTENT_TYPE = "application/x-protobuf"
_CONTENT_TYPE_BYTES = CONTENT_TYPE.encode()
HEADER_CONTENT_TYPE = "content-type"
HEADER_SCHEMA = "aipx-schema"
HEADER_EVENT_ID = "aipx-event-id"
HEADER_EVENT_TIME = "aipx-event-time-ns"
HEADER_TRACE_ID = "aipx-trace-id"

HEADER_DLQ_ERROR = "aipx-dlq-error"
HEADER_DLQ_ERROR_TYPE = "aipx-dlq-error-type"
HEADER_DLQ_TOPIC = "aipx-dlq-original-topic"
HEADER_DLQ_PARTITION = "aipx-dlq-original-partition"
HEADER_DLQ_OFFSET = "aipx-dlq-original-offset"
HEADER_DLQ_CONSUMER = "aipx-dlq-consumer"
HEADER_DLQ_TIME = "aipx-dlq-time-ns"

Headers = list[tuple[str, bytes]]
M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class Encoded:
    """A record value with its headers, ready for a producer."""

    value: bytes
    headers: Headers


class DecodeError(ValueError):
    """A record could not be decoded into the expected message. Carries where it came from and why."""

    def __init__(
        self,
        reason: str,
        *,
        expected: str,
        schema: str | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.expected = expected
        self.schema = schema
        self.topic = topic
        self.partition = partition
        self.offset = offset
        where = f"{topic}[{partition}]@{offset}" if topic is not None else "record"
        super().__init__(f"cannot decode {where} as {expected}: {reason}")


def encode(message: Message, *, event_id: str, event_time_ns: int, trace_id: str | None = None) -> Encoded:
    """Serialize a message and build its standard headers."""
    return encoded(
        message.SerializeToString(),
        message.DESCRIPTOR.full_name,
        event_id=event_id,
        event_time_ns=event_time_ns,
        trace_id=trace_id,
    )


def encoded(
    value: bytes, schema: str, *, event_id: str, event_time_ns: int, trace_id: str | None = None
) -> Encoded:
    """An already serialized message of type `schema` (full protobuf name) with its standard headers: for
    payloads stored serialized (the OMS outbox), so they are published without a decode/encode round trip."""
    headers: Headers = [
        (HEADER_CONTENT_TYPE, CONTENT_TYPE.encode()),
        (HEADER_SCHEMA, schema.encode()),
        (HEADER_EVENT_ID, event_id.encode()),
        (HEADER_EVENT_TIME, str(event_time_ns).encode()),
    ]
    if trace_id:
        headers.append((HEADER_TRACE_ID, trace_id.encode()))
    return Encoded(value, headers)


def header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> str | None:
    """The text value of header `name` (last one wins), or None."""
    found: str | None = None
    for key, value in headers or ():
        if key == name:
            found = value.decode("utf-8", errors="replace") if value is not None else None
    return found


def event_time_header(raw: bytes) -> int:
    """The value of an aipx-event-time-ns header: ASCII digits in [0, 2^63 - 1] (an int64 timestamp).

    Raises aipx.numbers.InvalidNumberError naming the header otherwise (a consumer dead-letters the record
    rather than computing with, or stalling a partition on, a time no timestamp column can hold).
    """
    if len(raw) > _MAX_TIME_HEADER:
        raise InvalidNumberError(
            HEADER_EVENT_TIME, f"is {len(raw)} bytes long (at most {_MAX_TIME_HEADER} digits)"
        )
    if not raw.isdigit():  # bytes.isdigit: ASCII digits only (no sign, no full-width digits)
        raise InvalidNumberError(HEADER_EVENT_TIME, f"{raw[:40]!r} is not ASCII digits")
    return epoch_ns(raw.decode("ascii"), field=HEADER_EVENT_TIME)


_MAX_TIME_HEADER = 20


def decode(
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None,
    message_type: type[M],
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> M:
    """Decode a record value into `message_type`, checking the content-type and schema headers.

    Raises DecodeError (never returns a half-parsed message) when the value is missing, the headers name
    another schema or content type, or the bytes are not a valid encoding.
    """
    schema_raw = content_type_raw = None
    for key, raw in headers or ():  # one pass for both headers, last one wins (hot path: every record)
        if raw is None:
            continue
        if key == HEADER_SCHEMA:
            schema_raw = raw
        elif key == HEADER_CONTENT_TYPE:
            content_type_raw = raw
    # Header values are compared as bytes, decoded to text only for an error (hot path: every record).
    expected = message_type.DESCRIPTOR.full_name
    if (
        value is None
        or (content_type_raw is not None and content_type_raw != _CONTENT_TYPE_BYTES)
        or (schema_raw is not None and schema_raw != expected.encode())
    ):
        raise _rejected(value, content_type_raw, schema_raw, expected, topic, partition, offset)
    message = message_type()
    try:
        message.ParseFromString(value)
    except (PbDecodeError, RuntimeError, ValueError) as exc:
        schema = None if schema_raw is None else schema_raw.decode("utf-8", errors="replace")
        raise DecodeError(
            f"invalid protobuf encoding ({exc})",
            expected=expected,
            schema=schema,
            topic=topic,
            partition=partition,
            offset=offset,
        ) from exc
    return message


def _rejected(  # noqa: PLR0917 (private helper of decode)
    value: bytes | None,
    content_type_raw: bytes | None,
    schema_raw: bytes | None,
    expected: str,
    topic: str | None,
    partition: int | None,
    offset: int | None,
) -> DecodeError:
    """Why `decode` rejects a record before parsing it: no value, another content type or schema."""
    schema = None if schema_raw is None else schema_raw.decode("utf-8", errors="replace")
    if value is None:
        reason = "record has no value (tombstone)"
    elif content_type_raw is not None and content_type_raw != _CONTENT_TYPE_BYTES:
        content_type = content_type_raw.decode("utf-8", errors="replace")
        reason = f"content-type is {content_type!r}, expected {CONTENT_TYPE!r}"
    else:
        reason = f"schema header is {schema!r}"
    return DecodeError(
        reason, expected=expected, schema=schema, topic=topic, partition=partition, offset=offset
    )


@cache
def message_types() -> dict[str, type[Message]]:
    """Every message class of the aipx.v1 contracts by full name (for generic consumers like the recorder)."""
    types: dict[str, type[Message]] = {}
    for info in pkgutil.iter_modules(aipx.v1.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"aipx.v1.{info.name}")
        for desc in module.DESCRIPTOR.message_types_by_name.values():
            types[desc.full_name] = getattr(module, desc.name)
    return types


def message_type(full_name: str) -> type[Message]:
    """The class of a message named `full_name`; KeyError if the contracts have none."""
    try:
        return message_types()[full_name]
    except KeyError:
        raise KeyError(f"no message {full_name!r} in aipx.v1") from None


def dead_letter_headers(
    original: Sequence[tuple[str, bytes]] | None,
    *,
    error: BaseException | str,
    topic: str,
    partition: int,
    offset: int,
    consumer: str,
    time_ns: int,
) -> Headers:
    """The original headers plus the aipx-dlq-* headers describing where the record came from and why."""
    error_type = type(error).__name__ if isinstance(error, BaseException) else "Error"
    return [
        *(original or ()),
        (HEADER_DLQ_ERROR, str(error)[:4000].encode()),
        (HEADER_DLQ_ERROR_TYPE, error_type.encode()),
        (HEADER_DLQ_TOPIC, topic.encode()),
        (HEADER_DLQ_PARTITION, str(partition).encode()),
        (HEADER_DLQ_OFFSET, str(offset).encode()),
        (HEADER_DLQ_CONSUMER, consumer.encode()),
        (HEADER_DLQ_TIME, str(time_ns).encode()),
    ]
