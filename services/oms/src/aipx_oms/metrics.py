"""Prometheus metrics of the OMS (module level: one set per process)."""

from __future__ import annotations

from aipx.ops import LATENCY_BUCKETS
from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("aipx_oms_requests_total", "gRPC requests by method and status code", ["method", "code"])
REQUEST_SECONDS = Histogram(
    "aipx_oms_request_seconds", "gRPC request latency by method and status code", ["method", "code"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
ORDER_STATES = Counter("aipx_oms_order_state_changes_total", "Orders entering each state", ["state"])
OPEN_ORDERS = Gauge("aipx_oms_open_orders", "Working orders held in memory across all loaded accounts")
RISK_DENIALS = Counter(
    "aipx_oms_risk_denials_total", "Orders denied by pre-trade risk, by reason", ["reason"]
)
OUTBOX_LAG_EVENTS = Gauge("aipx_oms_outbox_lag_events", "Events committed but not yet published to Kafka")
OUTBOX_LAG_SECONDS = Gauge("aipx_oms_outbox_lag_seconds", "Age of the oldest unpublished event")
EVENTS_PUBLISHED = Counter("aipx_oms_events_published_total", "Order events published to Kafka by the relay")
OUTBOX_PRUNED = Counter("aipx_oms_outbox_pruned_total", "Published outbox rows deleted by the relay")
VENUE_REPORTS = Counter(
    "aipx_oms_venue_reports_total", "Execution reports by venue and kind", ["venue", "kind"]
)
VENUE_ERRORS = Counter(
    "aipx_oms_venue_errors_total", "Failed venue calls and unusable reports", ["venue", "what"]
)
BALANCE_DIVERGENCES = Counter(
    "aipx_oms_balance_divergences_total",
    "Assets whose ledger total differed from the venue's balance (each reconciled by an ADJUSTMENT entry)",
    ["venue", "asset"],
)
MARKET_DATA_MALFORMED = Counter(
    "aipx_oms_market_data_malformed_total",
    "Market-data records skipped by the paper venue's cache: a malformed or out-of-range number",
)
