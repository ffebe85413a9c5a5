"""Lambda entry point of the strategy function: market-data-raw -> candles -> strategies -> trading-signals.

Module-level powertools objects; the handler only wraps the batch in an invocation of `StrategyService`
(plain code underneath). Idempotency is by record position: each instrument's state remembers the offset of
the last record applied, so a replayed record is skipped, and signal ids are deterministic.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aipx.lambda_kit import KafkaBatch, MskRecord, default_runtime
from aipx.topics import MARKET_DATA_RAW
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from aipx_strategy.service import FUNCTION, StrategyService
from aipx_strategy.settings import StrategySettings

logger = Logger(service=FUNCTION)
metrics = Metrics(namespace="AIPX", service=FUNCTION)
batch = KafkaBatch(FUNCTION, logger=logger, metrics=metrics)


@cache
def service() -> StrategyService:
    """The function's service, built on first use from the environment (kept while the container is warm)."""
    return StrategyService.from_settings(StrategySettings(), default_runtime())


@batch.on(MARKET_DATA_RAW, MarketDataEnvelope)
def on_market_data(envelope: MarketDataEnvelope, record: MskRecord) -> object:
    return service().on_record(envelope, record)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    svc = service()
    records = batch.parse(event)  # once: the service loads state for them, the batch processes them
    svc.begin(records)
    try:
        response = batch.process_records(records, context)
    except BaseException:
        svc.abandon()
        raise
    stats = svc.finish()
    for name, value in (
        ("TradesApplied", stats.trades),
        ("RecordsIgnored", stats.ignored),
        ("RecordsReplayed", stats.duplicates),
        ("TradesLate", stats.late),
        ("FeedGaps", stats.feed_gaps),
        ("CandlesClosed", stats.candles_closed),
        ("SignalsEmitted", stats.signals),
        ("InvalidTradesDeadLettered", stats.dead_lettered),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    return response
