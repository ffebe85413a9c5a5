"""Lambda entry point of the notification function: order-events and trading-decisions -> Telegram / Slack /
webhooks. Idempotent per event id (powertools idempotency) and per (event id, channel) (sent-markers)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from aipx.lambda_kit import KafkaBatch, MskRecord, RecordIdempotency, dead_letter, default_runtime
from aipx.topics import ORDER_EVENTS, TRADING_DECISIONS
from aipx.v1.decisions_pb2 import Decision
from aipx.v1.orders_pb2 import OrderEvent
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from aipx_notification.domain.events import NotifiableEvent, from_decision, from_order_event
from aipx_notification.service import FUNCTION, NotificationService
from aipx_notification.settings import NotificationSettings

logger = Logger(service=FUNCTION)
metrics = Metrics(namespace="AIPX", service=FUNCTION)
batch = KafkaBatch(FUNCTION, logger=logger, metrics=metrics, idempotency=RecordIdempotency(FUNCTION))


@cache
def service() -> NotificationService:
    """The function's service, built on first use from the environment (kept while the container is warm)."""
    return NotificationService.from_settings(NotificationSettings(), default_runtime())


def _notify(build: Callable[[], NotifiableEvent], record: MskRecord) -> dict[str, Any]:
    try:
        event = build()
    except ValueError as exc:  # decodable but unusable (no event id): nothing can dedupe it, so park it
        dlq = dead_letter(default_runtime(), record, exc, consumer=FUNCTION)
        logger.warning("unusable event dead-lettered", extra={"dlq": dlq, "error": str(exc)})
        return {"dead_lettered": dlq}
    report = service().notify(event)
    metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=len(report.sent))
    return report.to_json()


@batch.on(ORDER_EVENTS, OrderEvent, idempotent=True)
def on_order_event(event: OrderEvent, record: MskRecord) -> dict[str, Any]:
    return _notify(lambda: from_order_event(event), record)


@batch.on(TRADING_DECISIONS, Decision, idempotent=True)
def on_decision(decision: Decision, record: MskRecord) -> dict[str, Any]:
    return _notify(lambda: from_decision(decision), record)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return batch.process(event, context)
