"""Lambda entry point of the recorder: module-level powertools objects and recorder, thin handler."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from aipx_recorder.adapters.s3 import S3Store
from aipx_recorder.adapters.topic_ids import kafka_topic_ids
from aipx_recorder.recorder import ParquetRecorder
from aipx_recorder.settings import RecorderSettings

logger = Logger(service="recorder")
metrics = Metrics(namespace="AIPX", service="recorder")
settings = RecorderSettings()
# Kept across warm invocations: the per-partition buffers live here (see aipx_recorder.recorder).
recorder = ParquetRecorder(
    S3Store(settings.s3), policy=settings.policy, topic_ids=kafka_topic_ids(settings.kafka)
)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """MSK event -> buffered/written records -> partial batch response (what is not durable yet); in
    on-demand mode everything is written before returning, else the invocation fails."""
    result = recorder.process_event(event)
    records = sum(len(group) for group in event["records"].values())
    metrics.add_metric(
        name="RecordsWritten", unit=MetricUnit.Count, value=sum(f.records for f in result.written)
    )
    metrics.add_metric(name="FilesWritten", unit=MetricUnit.Count, value=len(result.written))
    metrics.add_metric(name="RecordsHeld", unit=MetricUnit.Count, value=result.held)
    metrics.add_metric(name="RecordsDeadLettered", unit=MetricUnit.Count, value=result.dead_lettered)
    if result.written or result.dead_lettered:
        logger.info(
            "flushed",
            extra={"files": len(result.written), "reasons": result.flush_reasons, "held": result.held},
        )
    return result.respond(recorder.mode, records)  # raises in on-demand mode if a record is not durable
