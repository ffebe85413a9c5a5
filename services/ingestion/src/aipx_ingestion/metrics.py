"""Prometheus metrics of the ingestion service (one registry per service instance; tests use their own)."""

from __future__ import annotations

from aipx.ops import LATENCY_BUCKETS
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestionMetrics:
    """Every metric the service exports, created once against `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        ns = "aipx_ingestion"
        self.messages_in = Counter(
            f"{ns}_messages_in",
            "Venue events received, by venue and type",
            ["venue", "type"],
            registry=registry,
        )
        self.messages_out = Counter(
            f"{ns}_messages_out",
            "Envelopes acknowledged by Kafka, by venue and payload type",
            ["venue", "type"],
            registry=registry,
        )
        self.malformed = Counter(
            f"{ns}_malformed_frames",
            "Frames skipped as malformed or unknown",
            ["venue", "reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            f"{ns}_duplicates", "Events dropped as duplicates (replays, overlapping connections)",
            ["venue", "type"], registry=registry,
        )  # fmt: skip
        self.unsynced = Counter(
            f"{ns}_unsynced_book_updates",
            "Book updates held back while the book resynchronises (not published: the book is invalid)",
            ["venue"],
            registry=registry,
        )
        self.gaps = Counter(f"{ns}_gaps", "Sequence gaps detected", ["venue", "stream"], registry=registry)
        self.resyncs = Counter(
            f"{ns}_resyncs",
            "Book resynchronisations started after a gap",
            ["venue", "stream"],
            registry=registry,
        )
        self.snapshots = Counter(
            f"{ns}_snapshot_requests", "REST depth snapshot requests", ["venue", "outcome"], registry=registry
        )
        self.reconnects = Counter(
            f"{ns}_reconnects", "WebSocket reconnects and rotations", ["venue", "reason"], registry=registry
        )
        self.resubscribes = Counter(
            f"{ns}_resubscribes",
            "Streams resubscribed (stale or resync)",
            ["venue", "reason"],
            registry=registry,
        )
        self.dropped = Counter(
            f"{ns}_dropped", "Envelopes that could not be delivered (lost)", ["reason"], registry=registry
        )
        self.produce_retries = Counter(
            f"{ns}_produce_retries",
            "Sends retried because the producer could not take them",
            registry=registry,
        )
        self.buffer_depth = Gauge(
            f"{ns}_buffer_depth", "Envelopes waiting for the producer", registry=registry
        )
        self.buffer_capacity = Gauge(
            f"{ns}_buffer_capacity", "Bound of the envelope buffer", registry=registry
        )
        self.in_flight = Gauge(
            f"{ns}_in_flight", "Envelopes sent but not yet acknowledged", registry=registry
        )
        self.backpressure_seconds = Counter(
            f"{ns}_backpressure_seconds", "Time feed readers waited for buffer space", registry=registry
        )
        self.reconnect_delay = Gauge(
            f"{ns}_reconnect_delay_seconds",
            "Backoff before the next reconnect attempt (grows while connections fail or end early)",
            ["connection"],
            registry=registry,
        )
        self.connections = Gauge(
            f"{ns}_connections", "Open WebSocket connections", ["venue"], registry=registry
        )
        self.stale_streams = Gauge(
            f"{ns}_stale_streams", "Streams silent too long", ["venue"], registry=registry
        )
        self.produce_latency = Histogram(
            f"{ns}_produce_latency_seconds",
            "From handing an envelope to the producer to the broker acknowledgement (every 8th record)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.end_to_end_latency = Histogram(
            f"{ns}_end_to_end_latency_seconds",
            "From the exchange event time to the broker acknowledgement (every 8th record)",
            ["venue"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
