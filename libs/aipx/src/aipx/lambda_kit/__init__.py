"""Common machinery for AIPX Lambda functions on Kafka (MSK event source mappings).

USAGE NOTE (for function authors) -- the handler recipe::

    # lambdas/<fn>/src/aipx_<fn>/handler.py -- module-level powertools objects, thin handler
    from typing import Any
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from aipx.lambda_kit import KafkaBatch, MskRecord, RecordIdempotency
    from aipx.topics import TRADING_SIGNALS
    from aipx.v1.signals_pb2 import TradingSignal
    from aipx_<fn> import domain

    logger = Logger(service="<fn>")                    # JSON logs; correlation id set per record
    metrics = Metrics(namespace="AIPX", service="<fn>") # CloudWatch EMF, flushed by log_metrics
    batch = KafkaBatch("<fn>", logger=logger, metrics=metrics,
                       idempotency=RecordIdempotency("<fn>"))   # Redis from AIPX_REDIS_URL

    @batch.on(TRADING_SIGNALS, TradingSignal, idempotent=True)
    def on_signal(signal: TradingSignal, record: MskRecord) -> None:
        domain.assess(signal)                          # plain domain code does the work

    @logger.inject_lambda_context
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return batch.process(event, context)           # {"batchItemFailures": [...]}

What `batch.process` guarantees:
- records are parsed once with `aipx.msk.MskRecord` (a handler that needs the records before processing
  them calls `records = batch.parse(event)`, then `batch.process_records(records, context)`) and decoded
  into the typed protobuf class of the route (the message type must match the topic catalogue's payload;
  checked at registration);
- an undecodable record (aipx.serde.DecodeError) goes to the topic's DLQ (catalogue `dlq_for`) with the
  aipx-dlq-* error headers and counts as handled; the batch goes on;
- any other exception, or a malformed event record, fails only that record: it is listed in
  `batchItemFailures` as {"itemIdentifier": {"partition": "<topic>-<partition>", "offset": N}} and retried
  by the mapping;
- `idempotent=True` routes run at most once per key (the `aipx-event-id` header, else
  topic-partition-offset) through powertools idempotency on Redis; the callback's return value must then be
  JSON-serializable (return None if you have nothing to keep);
- logs carry the correlation id (`aipx-trace-id`, else `aipx-event-id`, else the record coordinates);
- the mapping's mode decides how failures reach AWS (`aipx.lambda_kit.mode`, AIPX_LAMBDA_ESM_MODE, set by
  Terraform): `provisioned` returns the partial batch response above; `on-demand` (where AWS ignores partial
  responses) raises `BatchFailedError` so the whole invocation fails and is retried, and dead-letters a record
  once it has failed more than its event source's `max_retries` times, so one bad record cannot block a
  partition. The attempts are counted in Redis (`aipx.lambda_kit.attempts`, AIPX_LAMBDA_ATTEMPT_STORE),
  shared by every instance and counted before a record runs, so a record that crashes the process or times
  out the invocation is counted too. Handlers need no change: `batch.process` does both.

Async work (publishing, Redis) from a sync handler: `default_runtime().run(coro)` executes on one
persistent event loop per process, so clients started once are reused across warm invocations;
`await runtime.publisher()` / `await runtime.producer()` give the shared, lazily-started Kafka producer
(settings from AIPX_KAFKA_*). Tests: call the handler with `aipx.msk.build_event([...])` and
`FakeLambdaContext("<fn>")`; point the default runtime elsewhere with
`set_default_runtime(AsyncRuntime(...))`.

A handler serves one invocation at a time per process (as in Lambda): `KafkaBatch` and powertools' Metrics
keep per-invocation state; the local runner (lambdas/runner) invokes each function from one worker thread.
Tracer is optional: `Tracer(service=...)` + `@tracer.capture_lambda_handler` where useful; it needs the
`aws-lambda-powertools[tracer]` extra (aws-xray-sdk), which the shared library does not pull in.
"""

from aipx.lambda_kit.attempts import AttemptCounter, RecordCrashedError, attempt_counter
from aipx.lambda_kit.batch import (
    BatchFailedError,
    DeadLettered,
    KafkaBatch,
    MalformedRecord,
    PartialBatchResponse,
    Route,
    UnroutedTopicError,
    correlation_id,
    dead_letter,
    parse_event,
)
from aipx.lambda_kit.context import FakeLambdaContext
from aipx.lambda_kit.idempotency import RecordIdempotency, idempotency_key, redis_persistence
from aipx.lambda_kit.mode import ON_DEMAND, PROVISIONED, EsmMode, LambdaSettings, esm_mode
from aipx.lambda_kit.runtime import AsyncRuntime, default_runtime, set_default_runtime
from aipx.msk import MskRecord

__all__ = [
    "ON_DEMAND",
    "PROVISIONED",
    "AsyncRuntime",
    "AttemptCounter",
    "BatchFailedError",
    "DeadLettered",
    "EsmMode",
    "FakeLambdaContext",
    "KafkaBatch",
    "LambdaSettings",
    "MalformedRecord",
    "MskRecord",
    "PartialBatchResponse",
    "RecordCrashedError",
    "RecordIdempotency",
    "Route",
    "UnroutedTopicError",
    "attempt_counter",
    "correlation_id",
    "dead_letter",
    "default_runtime",
    "esm_mode",
    "idempotency_key",
    "parse_event",
    "redis_persistence",
    "set_default_runtime",
]
