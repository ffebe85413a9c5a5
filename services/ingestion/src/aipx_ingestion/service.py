"""Wiring: settings -> venue adapters, feeds, the Kafka sink and the ops endpoint; start and graceful stop."""

from __future__ import annotations

import asyncio
import logging
import ssl

import aiohttp
from aiokafka import AIOKafkaProducer
from aipx.ids import now_ns
from aipx.kafka import create_producer
from aipx.ops import OpsServer
from prometheus_client import REGISTRY, CollectorRegistry

from aipx_ingestion.adapters.kafka import KafkaSink
from aipx_ingestion.adapters.rest import SnapshotClient, WeightBudget
from aipx_ingestion.adapters.websocket import ConnectionPolicy
from aipx_ingestion.domain.symbols import SymbolMap
from aipx_ingestion.feed import VenueFeed
from aipx_ingestion.metrics import IngestionMetrics
from aipx_ingestion.settings import IngestionSettings
from aipx_ingestion.venues import FeedAdapter, VenueConfig, venue_class

log = logging.getLogger(__name__)


def build_adapter(settings: IngestionSettings, venue: str) -> FeedAdapter:
    """The configured adapter of `venue` (settings override the adapter's real endpoints and channels)."""
    cls = venue_class(venue)
    return cls(
        VenueConfig(
            ws_url=settings.ws_urls.get(venue, cls.default_ws_url),
            rest_url=settings.rest_urls.get(venue, cls.default_rest_url),
            symbols=SymbolMap(settings.symbols, cls.venue_symbol),
            channels=settings.channels.get(venue, cls.default_channels),
            snapshot_depth=settings.snapshot_depth,
        )
    )


def connection_policy(settings: IngestionSettings, adapter: FeedAdapter) -> ConnectionPolicy:
    """Connection timing for `adapter`, rotating `rotation_margin_s` before the venue's lifetime."""
    lifetime = settings.connection_lifetime_s.get(adapter.name, adapter.connection_lifetime_s)
    rotate = None if lifetime is None else max(1.0, lifetime - settings.rotation_margin_s)
    return ConnectionPolicy(
        reconnect_initial_s=settings.reconnect_initial_s,
        reconnect_max_s=settings.reconnect_max_s,
        open_timeout_s=settings.open_timeout_s,
        ping_interval_s=settings.ping_interval_s,
        ping_timeout_s=settings.ping_timeout_s,
        stale_after_s=settings.stale_after_s,
        rotate_after_s=rotate,
        subscribe_interval_s=settings.subscribe_interval_s,
        healthy_after_s=settings.reconnect_reset_after_s,
        ssl_context=tls_context(settings),
    )


def tls_context(settings: IngestionSettings) -> ssl.SSLContext | None:
    """The TLS context of wss:// connections: the system's CAs plus `tls_ca_file` (None: the default)."""
    if settings.tls_ca_file is None:
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=settings.tls_ca_file)
    return context


def weight_budget(adapter: FeedAdapter) -> WeightBudget | None:
    """The venue's REST weight limit, if its responses report the weight used."""
    if adapter.rest_weight_header is None:
        return None
    return WeightBudget(
        adapter.rest_weight_header,
        adapter.rest_weight_limit,
        adapter.rest_weight_window_s,
        adapter.snapshot_weight(),
    )


class IngestionService:
    """The running service: feeds of every configured venue publishing into one topic."""

    def __init__(self, settings: IngestionSettings, *, registry: CollectorRegistry = REGISTRY) -> None:
        self.settings = settings
        self.metrics = IngestionMetrics(registry)
        self.ops = OpsServer(settings.metrics, registry=registry)
        self.producer: AIOKafkaProducer | None = None
        self.sink: KafkaSink | None = None
        self.feeds: list[VenueFeed] = []
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Start the producer, the ops endpoint, then the venue feeds."""
        s = self.settings
        # The producer retries a batch for produce_timeout_ms: long enough to ride out a broker restart.
        self.producer = create_producer(
            s.kafka,
            client_id="ingestion",
            request_timeout_ms=max(s.produce_timeout_ms, s.kafka.request_timeout_ms),
        )
        await self.producer.start()
        self.sink = KafkaSink(
            self.producer,
            s.topic,
            capacity=s.buffer_size,
            metrics=self.metrics,
            linger_s=s.batch_linger_ms / 1000,
        )
        self.sink.start()
        self._http = aiohttp.ClientSession()
        sequence_start = now_ns() // 1_000
        for venue in s.venues:
            adapter = build_adapter(s, venue)
            snapshots = (
                SnapshotClient(
                    self._http,
                    rate_per_s=s.snapshot_rate_per_s,
                    burst=s.snapshot_burst,
                    budget=weight_budget(adapter),
                )
                if adapter.rest_snapshots
                else None
            )
            self.feeds.append(
                VenueFeed(
                    adapter,
                    sink=self.sink,
                    metrics=self.metrics,
                    policy=connection_policy(s, adapter),
                    snapshots=snapshots,
                    sequence_start=sequence_start,
                    streams_per_connection=s.streams_per_connection,
                    stale_stream_after_s=s.stale_stream_after_s,
                    book_snapshot_interval_s=s.book_snapshot_interval_s,
                    snapshot_depth=s.snapshot_depth,
                    log_sample_every=s.log_sample_every,
                )
            )
        self.ops.add_check("kafka", lambda: self.sink is not None and self.sink.healthy)
        self.ops.add_check("feeds", lambda: all(f.connected for f in self.feeds))
        await self.ops.start()
        for feed in self.feeds:
            await feed.start()
        log.info("ingestion started: venues=%s symbols=%d topic=%s", list(s.venues), len(s.symbols), s.topic)

    async def stop(self) -> None:
        """Graceful stop: close the feeds, publish what is buffered, flush and close the producer."""
        await asyncio.gather(*(feed.stop() for feed in self.feeds))
        if self.sink is not None:
            await self.sink.close(self.settings.shutdown_timeout_s)
        if self.producer is not None:
            await self.producer.stop()
        if self._http is not None:
            await self._http.close()
        await self.ops.stop()
        log.info("ingestion stopped")

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
