"""Typed Kafka batch processing for Lambda handlers: powertools BatchProcessor + protobuf + DLQ + idempotency.

`KafkaBatch` routes each record of an MSK event by topic to a domain callback with the decoded protobuf
message. Each record is parsed once (`KafkaBatch.parse`, also for handlers that look at the batch before
processing it); powertools' BatchProcessor then runs over the parsed records. Outcomes per record:

- callback returns           -> processed;
- value cannot be decoded    -> dead-lettered to the topic's DLQ (raw bytes, error in headers) and counted
  as handled, so the batch goes on (replaying it would fail the same way forever);
- callback raises (anything) -> the record is a failure, reported in `batchItemFailures`; the event source
  mapping commits below the lowest failed offset of its partition and retries from there;
- the event record itself is malformed (bad base64 or headers) -> a failure of that record alone, as above.

In on-demand mode (`aipx.lambda_kit.mode`, AIPX_LAMBDA_ESM_MODE=on-demand) the mapping ignores partial
batch responses, so a batch with failed records raises `BatchFailedError` instead: the whole invocation
fails and Lambda retries the batch (idempotent routes skip what already succeeded). A record that has
failed more often than its event source's `max_retries` (function manifest) is a poison record: it is
dead-lettered with its last error and counts as handled, so it cannot block its partition. Attempts are
counted durably (`aipx.lambda_kit.attempts`: Redis, shared by every instance of the function, counted
before a record runs so that one that crashes the process or times out the invocation is counted too); a
record whose earlier attempts used up its retries is dead-lettered without running again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import BasePowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.typing import LambdaContext
from google.protobuf.message import Message

from aipx.functions import manifest
from aipx.lambda_kit.attempts import AttemptCounter, RecordCrashedError, attempt_counter
from aipx.lambda_kit.idempotency import RecordIdempotency
from aipx.lambda_kit.mode import ON_DEMAND, EsmMode, esm_mode
from aipx.lambda_kit.runtime import AsyncRuntime, default_runtime
from aipx.msk import EVENT_SOURCES, InvalidEventError, MskRecord
from aipx.serde import HEADER_EVENT_ID, HEADER_TRACE_ID, DecodeError
from aipx.topics import catalogue

M = TypeVar("M", bound=Message)

PartialBatchResponse = dict[str, list[dict[str, Any]]]
RecordCallback = Callable[[M, MskRecord], object]


# Retries of a failing record in on-demand mode for a function the manifest does not list (tests, tools).
DEFAULT_MAX_RETRIES = 3


class BatchFailedError(RuntimeError):
    """On-demand mode: records of the batch failed, so the whole invocation fails and Lambda retries it."""

    def __init__(self, function: str, failures: Sequence[Mapping[str, Any]], total: int) -> None:
        self.function = function
        self.failures = [dict(f) for f in failures]
        shown = ", ".join(
            f"{f['itemIdentifier']['partition']}@{f['itemIdentifier']['offset']}" for f in self.failures[:5]
        )
        more = f" and {len(self.failures) - 5} more" if len(self.failures) > 5 else ""
        super().__init__(
            f"{function}: {len(self.failures)} of {total} record(s) failed ({shown}{more}); failing the "
            "whole invocation because the event source mapping does not honour partial batch responses "
            "(AIPX_LAMBDA_ESM_MODE=on-demand)"
        )


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


@dataclass(frozen=True, slots=True)
class MalformedRecord:
    """An event record that could not be parsed (bad base64, headers or fields): it fails alone."""

    topic: str
    partition: int
    offset: int
    error: InvalidEventError


def correlation_id(record: MskRecord) -> str:
    """The id that ties this record's logs to its flow: trace id, else event id, else its coordinates."""
    trace = event = None
    for name, value in record.headers:  # one pass, last one wins (hot path: every record)
        if name == HEADER_TRACE_ID:
            trace = value
        elif name == HEADER_EVENT_ID:
            event = value
    found = trace or event
    return found.decode("utf-8", errors="replace") if found else record.ident


def parse_event(event: Mapping[str, Any]) -> list[MskRecord | MalformedRecord]:
    """Every record of an MSK event, parsed once, in event order. A record that cannot be parsed becomes a
    `MalformedRecord` (it fails alone); InvalidEventError if the event is not a Kafka event or a record has
    no usable topic/partition/offset (the mapping could not retry it alone)."""
    if event.get("eventSource") not in EVENT_SOURCES:
        raise InvalidEventError(f"not a Kafka event: eventSource={event.get('eventSource')!r}")
    groups = event.get("records")
    if not isinstance(groups, Mapping):
        raise InvalidEventError("Kafka event has no 'records' mapping")
    parse = MskRecord.from_event_record
    parsed: list[MskRecord | MalformedRecord] = []
    for records in groups.values():
        for raw in records:
            try:
                parsed.append(parse(raw))
            except InvalidEventError as exc:
                try:
                    parsed.append(
                        MalformedRecord(str(raw["topic"]), int(raw["partition"]), int(raw["offset"]), exc)
                    )
                except (KeyError, TypeError, ValueError) as no_coordinates:
                    raise InvalidEventError(
                        f"Kafka event record without topic/partition/offset: {no_coordinates!r}"
                    ) from exc
    return parsed


class _ParsedRecordProcessor(BatchProcessor):
    """powertools' Kafka BatchProcessor over records the kit has already parsed (`MskRecord`s carry the
    topic/partition/offset its failure report reads), instead of wrapping each raw record again."""

    def _to_batch_type(self, record: Any, event_type: Any, model: Any = None) -> Any:
        return record


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
        mode: EsmMode | None = None,
        max_retries: int | None = None,
        attempts: AttemptCounter | None = None,
    ) -> None:
        self.function = function
        self._mode = mode
        self._max_retries = max_retries
        # On-demand mode: failed attempts per (topic, partition, offset), and this batch's error of each.
        self._attempts = attempts
        self._on_demand = False  # set per batch
        self._errors: dict[tuple[str, int, int], BaseException] = {}
        self.logger = logger
        self.metrics = metrics
        self._runtime = runtime
        self.idempotency = idempotency
        self.processor: BatchProcessor = _ParsedRecordProcessor(
            event_type=EventType.Kafka, raise_on_entire_batch_failure=False
        )
        self._routes: dict[str, Route[Any]] = {}
        self._dead_lettered = 0
        # The logger's formatter, looked up once per batch (set while `process_records` runs).
        self._formatter: BasePowertoolsFormatter | None = None

    @property
    def mode(self) -> EsmMode:
        """The event source mapping mode (given, else AIPX_LAMBDA_ESM_MODE, read once)."""
        if self._mode is None:
            self._mode = esm_mode()
        return self._mode

    def max_retries(self, topic: str) -> int:
        """Retries of a failing record before it is dead-lettered in on-demand mode: the given value, else the
        manifest's `max_retries` of this function's event source for `topic`, else DEFAULT_MAX_RETRIES."""
        if self._max_retries is not None:
            return self._max_retries
        try:
            sources = manifest().get(self.function).event_sources
        except KeyError:
            return DEFAULT_MAX_RETRIES
        route = self._routes.get(topic)
        wanted = {topic, route.topic} if route else {topic}
        for src in sources:
            if src.topic in wanted:
                return src.max_retries
        return DEFAULT_MAX_RETRIES

    @property
    def attempts(self) -> AttemptCounter:
        """On-demand mode's attempt counter (given, else AIPX_LAMBDA_ATTEMPT_STORE, made on first use)."""
        if self._attempts is None:
            self._attempts = attempt_counter(self.function)
        return self._attempts

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

    def handle_record(self, record: MskRecord | MalformedRecord) -> object:
        """Decode and dispatch one record (DLQ on DecodeError); raises on processing failure."""
        if self._on_demand:
            poison = self._dead_letter_if_exhausted(record)
            if poison is not None:
                return poison
        if isinstance(record, MalformedRecord):
            self._errors[(record.topic, record.partition, record.offset)] = record.error
            raise record.error
        route = self._routes.get(record.topic)
        if route is None:
            raise UnroutedTopicError(
                f"{self.function}: no route for topic {record.topic!r} (routes: {sorted(self._routes)})"
            )
        # One update per record (the next record overwrites it; `process_records` clears it after the batch).
        (self._formatter or self.logger.registered_formatter).append_keys(
            correlation_id=correlation_id(record), kafka_record=record.ident
        )
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
        if self._on_demand:
            self.attempts.starting(record)
        try:
            if route.idempotent and self.idempotency is not None:
                return self.idempotency.run_record(record, lambda: route.callback(message, record))
            return route.callback(message, record)
        except Exception as exc:
            self._errors[(record.topic, record.partition, record.offset)] = exc
            self.logger.exception("record failed; it will be retried")
            raise

    def parse(self, event: Mapping[str, Any]) -> list[MskRecord | MalformedRecord]:
        """The event's records, parsed once (see `parse_event`): for handlers that look at the batch before
        `process_records` (e.g. to load state for it)."""
        return parse_event(event)

    def process(self, event: Mapping[str, Any], context: LambdaContext | None = None) -> PartialBatchResponse:
        """Process an MSK event; the partial batch response naming every failed record."""
        return self.process_records(parse_event(event), context)

    def process_records(
        self, records: Sequence[MskRecord | MalformedRecord], context: LambdaContext | None = None
    ) -> PartialBatchResponse:
        """Process the records of one event (from `parse`); the partial batch response naming every failed
        record (provisioned mode), or BatchFailedError when records failed in on-demand mode."""
        if not records:
            return {"batchItemFailures": []}
        self._errors.clear()
        self._on_demand = self.mode == ON_DEMAND
        if self._on_demand:
            self.attempts.begin([(r.topic, r.partition, r.offset) for r in records])
        if self.idempotency is not None:
            self.idempotency.register_lambda_context(context)
        self._dead_lettered = 0
        started = time.perf_counter()
        self._formatter = self.logger.registered_formatter
        try:
            with self.processor(list(records), self.handle_record, context):  # type: ignore[arg-type]
                self.processor.process()
            response = self.processor.response()
        finally:
            self._formatter = None
            self.logger.remove_keys(["kafka_record"])
            self.logger.set_correlation_id(None)
        failures = [dict(item) for item in response.get("batchItemFailures", [])]
        total = len(records)
        if self._on_demand:
            failures = self._give_up_on_poison(records, failures)
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
            if self.mode == ON_DEMAND:
                raise BatchFailedError(self.function, failures, total)
        return {"batchItemFailures": failures}

    def _dead_letter_poison(
        self, record: MskRecord | MalformedRecord, error: BaseException, attempts: int
    ) -> DeadLettered | None:
        """Send a record that used up its retries to its DLQ; None (and logged) if that failed."""
        raw = (
            record
            if isinstance(record, MskRecord)
            else MskRecord(record.topic, record.partition, record.offset, 0, None, None, [])
        )
        route = self._routes.get(record.topic)
        try:
            dlq = dead_letter(
                self.runtime, raw, error, consumer=self.function, dlq=route.dlq if route else None
            )
        except Exception:
            self.logger.exception("dead-lettering a poison record failed; the batch will be retried")
            return None
        self._dead_lettered += 1
        self.logger.error(
            "record failed on every attempt: dead-lettered",
            extra={"dlq": dlq, "attempts": attempts, "error": str(error), "kafka_record": raw.ident},
        )
        return DeadLettered(dlq, str(error))

    def _dead_letter_if_exhausted(self, record: MskRecord | MalformedRecord) -> DeadLettered | None:
        """On-demand mode, before a record runs: if earlier attempts (crashes and timeouts included) used up
        its retries, dead-letter it instead of running it again (raises if the DLQ write fails)."""
        prior = self.attempts.prior((record.topic, record.partition, record.offset))
        if not prior or prior <= self.max_retries(record.topic):
            return None
        error = RecordCrashedError(
            f"{self.function}: {prior} earlier attempts of this record failed or ended the invocation "
            "without an answer (crash, out of memory or timeout)"
        )
        dead = self._dead_letter_poison(record, error, prior)
        if dead is None:
            raise error
        return dead

    def _give_up_on_poison(
        self, records: Sequence[MskRecord | MalformedRecord], failures: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """On-demand mode: count each failed record's attempt; dead-letter those past their retries (they
        count as handled); forget the records that succeeded. Returns the failures still to retry."""
        by_item = {(f"{r.topic}-{r.partition}", r.offset): r for r in records}
        failed: list[tuple[dict[str, Any], MskRecord | MalformedRecord | None]] = []
        for item in failures:
            ident = item["itemIdentifier"]
            failed.append((item, by_item.get((str(ident["partition"]), int(ident["offset"])))))
        totals = self.attempts.finish([(r.topic, r.partition, r.offset) for _, r in failed if r is not None])
        still: list[dict[str, Any]] = []
        dead: list[tuple[str, int, int]] = []
        for item, record in failed:
            if record is None:
                still.append(item)
                continue
            key = (record.topic, record.partition, record.offset)
            attempts = totals.get(key, 1)
            if attempts <= self.max_retries(record.topic):
                still.append(item)
                continue
            error = self._errors.get(key) or RuntimeError("record failed")
            if self._dead_letter_poison(record, error, attempts) is None:
                still.append(item)
                continue
            dead.append(key)
        self.attempts.forget(dead)
        return still
