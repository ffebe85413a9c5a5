"""Prometheus metrics of the console (module level: one set per process): what it measures of Kafka itself."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONSUMER_LAG = Gauge(
    "aipx_console_consumer_lag_records",
    "Records the platform's consumer groups are behind the end of their topics (summed over partitions)",
    ["group", "topic"],
)
DLQ_RECORDS = Gauge("aipx_console_dlq_records", "Records held in each dead-letter topic", ["topic"])
UNDECODABLE = Counter(
    "aipx_console_undecodable_records_total", "Records the console could not decode (not shown)", ["topic"]
)
BROWSERS = Gauge("aipx_console_browsers", "Browsers connected to the event stream")
