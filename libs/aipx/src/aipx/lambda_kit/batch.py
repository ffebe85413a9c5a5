"""Typed Kafka batch processing for Lambda handlers: powertools BatchProcessor + protobuf + DLQ + idempotency.

`KafkaBatch` routes each record of an MSK event by topic to a domain callback with the decoded protobuf
message. Outcomes per record:

- callback returns           -> processed;
- value cannot be decoded    -> dead-lettered to the topic's DLQ (raw bytes, error in headers) and counted
  as handled, so the batch goes on (replaying it would fail the same way forever);
- callback raises (anything) -> the record is a failure, reported in `batchItemFailures`; the event source
  mapping commits below the lowest failed offset of its partition and retries from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEventRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from google.protobuf.message import Message

from aipx.lambda_kit.idempotency import RecordIdempotency
from aipx.lambda_kit.runtime import AsyncRuntime, default_runtime
from aipx.msk import EVENT_SOURCES, InvalidEventError, MskRecord
from aipx.serde import HEADER_EVENT_ID, HEADER_TRACE_ID, DecodeError
from aipx.topics import catalogue

M = TypeVar("M", bound=Message)

PartialBatchResponse = dict[str, list[dict[str, Any]]]
RecordCallback = Callable[[M, MskRecord], object]


class UnroutedTopicError(LookupError):
    """A record arrived from a topic the function has no route for (an event source misconfiguration)."""


@dataclass(frozen=True, slots=True)
class Route(Generic[M]):
    """How one topic's records are handled."""

    topic: str
    message_type: type[M]
    callback: RecordCallback[M]
    idempotent: bool
    dlq: str


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """Returned (as the record's result) for a record sent to the DLQ."""

    dlq_topic: str
    error: str


def correlation_id(record: MskRecord) -> str:
    """The id that ties this record's logs to its flow: trace id, else event id, else its coordinates."""
    return record.header(HEADER_TRACE_ID) or record.header(HEADER_EVENT_ID) or record.ident


def dead_letter(
    runtime: AsyncRuntime, record: MskRecord, error: BaseException, *, consumer: str, dlq: str | None = None
) -> str:
    """Send `record` (raw key, value, headers) to `dlq` (default: its topic's DLQ in the catalogue) with the
    error in headers; returns the DLQ's name."""
    dlq = dlq or catalogue().dlq_for(record.topic).name

    async def send() -> None:
        publisher = await runtime.dead_letters(consumer)
        await publisher.publish(
            dlq,
            key=record.key,
            value=record.value,
            headers=record.headers,
            error=error,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )

    runtime.run(send())
    return dlq


class KafkaBatch:
    """Per-function batch machinery: routes, the powertools processor, DLQ routing, idempotency, metrics."""

    def __init__(
        self,
        function: str,
        *,
        logger: Logger,
        metrics: Metrics | None = None,
        runtime: AsyncRuntime | None = None,
        idempotency: RecordIdempotency | None = None,
    ) -> None:
        self.function = function
        self.logger = logger
        self.metrics = metrics
        self._runtime = runtime
        self.idempotency = idempotency
        self.processor = BatchProcessor(event_type=EventType.Kafka, raise_on_entire_batch_failure=False)
        self._routes: dict[str, Route[Any]] = {}
        self._dead_lettered = 0

    @property
    def runtime(self) -> AsyncRuntime:
        """The runtime for DLQ sends (the process-wide default unless one was given)."""
        return self._runtime or default_runtime()

    def route(
        self, topic: str, message_type: type[M], callback: RecordCallback[M], *, idempotent: bool = False
    ) -> None:
        """Handle `topic`'s records with `callback(message, record)`; the type must match the catalogue."""
        spec = catalogue().get(topic)
        if spec.payload != message_type.DESCRIPTOR.full_name:
            raise ValueError(
                f"topic {topic!r} carries {spec.payload}, not {message_type.DESCRIPTOR.full_name}"
            )
        if idempotent and self.idempotency is None:
            raise ValueError(f"route {topic!r} is idempotent but KafkaBatch has no RecordIdempotency")
        self._routes[topic] = Route(
            topic, message_type, callback, idempotent, catalogue().dlq_for(topic).name
        )

    def alias(self, topic: str, as_topic: str, *, dlq: str) -> None:
        """Handle `topic` like `as_topic` (same route), dead-lettering to `dlq`: for tests on fresh topics."""
        route = self._routes.get(as_topic)
        if route is None:
            raise UnroutedTopicError(f"{self.function}: no route for {as_topic!r} to alias {topic!r} to")
        self._routes[topic] = Route(topic, route.message_type, route.callback, route.idempotent, dlq)

    def on(
        self, topic: str, message_type: type[M], *, idempotent: bool = False
    ) -> Callable[[RecordCallback[M]], RecordCallback[M]]:
        """Decorator form of `route`."""

        def register(callback: RecordCallback[M]) -> RecordCallback[M]:
            self.route(topic, message_type, callback, idempotent=idempotent)
            return callback

        return register

    def handle_record(self, record: MskRecord) -> object:
        """Decode and dispatch one record (DLQ on DecodeError); raises on processing failure."""
        route = self._routes.get(record.topic)
        if route is None:
            raise UnroutedTopicError(
                f"{self.function}: no route for topic {record.topic!r} (routes: {sorted(self._routes)})"
            )
        # One update per record (the next record overwrites it; `process` clears it after the batch).
        self.logger.append_keys(correlation_id=correlation_id(record), kafka_record=record.ident)
        try:
            message = record.decode(route.message_type)
        except DecodeError as exc:
            try:
                dlq = dead_letter(self.runtime, record, exc, consumer=self.function, dlq=route.dlq)
            except Exception:
                self.logger.exception("dead-lettering failed; the record will be retried")
                raise
            self._dead_lettered += 1
            self.logger.warning("undecodable record dead-lettered", extra={"dlq": dlq, "error": str(exc)})
            return DeadLettered(dlq, str(exc))
        try:
            if route.idempotent and self.idempotency is not None:
                return self.idempotency.run_record(record, lambda: route.callback(message, record))
            return route.callback(message, record)
        except Exception:
            self.logger.exception("record failed; it will be retried")
            raise

    def _record_handler(self, record: KafkaEventRecord) -> object:
        return self.handle_record(MskRecord.from_event_record(record.raw_event))

    def process(self, event: Mapping[str, Any], context: LambdaContext | None = None) -> PartialBatchResponse:
        """Process an MSK event; the partial batch response naming every failed record."""
        if event.get("eventSource") not in EVENT_SOURCES:
            raise InvalidEventError(f"not a Kafka event: eventSource={event.get('eventSource')!r}")
        records = event.get("records")
        if not isinstance(records, Mapping):
            raise InvalidEventError("Kafka event has no 'records' mapping")
        if not any(records.values()):
            return {"batchItemFailures": []}
        if self.idempotency is not None:
            self.idempotency.register_lambda_context(context)
        self._dead_lettered = 0
        started = time.perf_counter()
        try:
            response = process_partial_response(
                event=dict(event),
                record_handler=self._record_handler,
                processor=self.processor,
                context=context,
            )
        finally:
            self.logger.remove_keys(["kafka_record"])
            self.logger.set_correlation_id(None)
        failures = [dict(item) for item in response.get("batchItemFailures", [])]
        total = sum(len(v) for v in records.values())
        if self.metrics is not None:
            self.metrics.add_metric(name="RecordsReceived", unit=MetricUnit.Count, value=total)
            self.metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=len(failures))
            self.metrics.add_metric(
                name="RecordsDeadLettered", unit=MetricUnit.Count, value=self._dead_lettered
            )
            self.metrics.add_metric(
                name="BatchDuration",
                unit=MetricUnit.Milliseconds,
                value=(time.perf_counter() - started) * 1e3,
            )
        if failures:
            self.logger.warning("batch had failed records", extra={"failed": len(failures), "records": total})
        return {"batchItemFailures": failures}
