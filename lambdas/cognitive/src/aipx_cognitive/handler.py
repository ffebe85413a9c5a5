"""Lambda entry point of the cognitive function: trading-signals -> ensemble -> trading-decisions (+ OMS),
and the analysis endpoint behind the function URL (same function, told apart by the event shape)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aipx.lambda_kit import KafkaBatch, MskRecord, RecordIdempotency, dead_letter, default_runtime
from aipx.msk import EVENT_SOURCES
from aipx.topics import TRADING_SIGNALS
from aipx.v1.signals_pb2 import TradingSignal
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from aipx_cognitive.http_api import build_app
from aipx_cognitive.service import FUNCTION, CognitiveService, InvalidSignalError
from aipx_cognitive.settings import CognitiveSettings

logger = Logger(service=FUNCTION)
metrics = Metrics(namespace="AIPX", service=FUNCTION)
batch = KafkaBatch(FUNCTION, logger=logger, metrics=metrics, idempotency=RecordIdempotency(FUNCTION))


@cache
def service() -> CognitiveService:
    """The function's service, built on first use from the environment (kept while the container is warm)."""
    return CognitiveService.from_settings(CognitiveSettings(), default_runtime())


app = build_app(service)


@batch.on(TRADING_SIGNALS, TradingSignal, idempotent=True)
def on_signal(signal: TradingSignal, record: MskRecord) -> dict[str, Any]:
    try:
        outcome = service().handle_signal(signal)
    except InvalidSignalError as exc:
        dlq = dead_letter(default_runtime(), record, exc, consumer=FUNCTION)
        logger.warning("invalid signal dead-lettered", extra={"dlq": dlq, "error": str(exc)})
        return {"dead_lettered": dlq, "error": str(exc)}
    metrics.add_metric(name="Decisions", unit=MetricUnit.Count, value=1)
    if outcome.order_created is not None:
        metrics.add_metric(name="OrdersSubmitted", unit=MetricUnit.Count, value=1)
    return outcome.to_json()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("eventSource") in EVENT_SOURCES:
        return batch.process(event, context)
    metrics.add_metric(name="AnalysisRequests", unit=MetricUnit.Count, value=1)
    return app.resolve(event, context)
