"""Fixtures for the ingestion integration tests: the exchange simulator and a running ingestion service
publishing into a fresh topic of the real Kafka broker, plus helpers to read that topic back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pytest
from aipx.kafka import create_consumer
from aipx.serde import HEADER_EVENT_ID, HEADER_EVENT_TIME, HEADER_SCHEMA, decode
from aipx.settings import KafkaSettings, MetricsSettings
from aipx.topics import MARKET_DATA_RAW, catalogue
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx_exchange_sim.server import ExchangeSimulator
from aipx_exchange_sim.settings import SimSettings
from aipx_ingestion.service import IngestionService
from aipx_ingestion.settings import IngestionSettings
from prometheus_client import CollectorRegistry

SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT")


@dataclass(frozen=True)
class Record:
    """One consumed record of the topic."""

    key: str
    partition: int
    offset: int
    envelope: MarketDataEnvelope
    headers: dict[str, str]


@dataclass
class Pipeline:
    """The simulator feeding a running ingestion service that publishes into `topic`."""

    sim: ExchangeSimulator
    service: IngestionService
    topic: str
    bootstrap: str
    registry: CollectorRegistry
    stopped: bool = False
    records: list[Record] = field(default_factory=list)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples matching `labels` (0 if none)."""
        total = 0.0
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    async def until(
        self, condition: Callable[[], bool], within_s: float = 15.0, what: str = "condition"
    ) -> None:
        """Wait until `condition()` holds; fail naming `what` after `within_s` seconds."""
        deadline = time.monotonic() + within_s
        while not condition():
            if time.monotonic() > deadline:
                samples = {
                    f"{s.name}{s.labels}": s.value
                    for f in self.registry.collect()
                    for s in f.samples
                    if s.name.endswith("_total") and s.value
                }
                pytest.fail(
                    f"timed out after {within_s}s waiting for {what}; simulator {dict(self.sim.stats)}, "
                    f"metrics {samples}"
                )
            await asyncio.sleep(0.05)

    async def synced(self) -> None:
        """Wait until every book of every venue was initialised (one snapshot out per symbol and venue)."""
        await self.until(
            lambda: (
                self.metric("aipx_ingestion_messages_out_total", type="book_snapshot") >= 2 * len(SYMBOLS)
            ),
            what="books of both venues to be initialised",
        )

    async def stop(self) -> None:
        """Stop the service (it flushes the producer) and the simulator."""
        if not self.stopped:
            self.stopped = True
            await self.service.stop()
            await self.sim.stop()

    async def consume(self, within_s: float = 30.0) -> list[Record]:
        """Stop, then read back every record the service reported as acknowledged."""
        await self.stop()
        expected = int(self.metric("aipx_ingestion_messages_out_total"))
        consumer = create_consumer(
            self.topic, settings=KafkaSettings(bootstrap_servers=self.bootstrap), client_id="ingestion-test",
            group_id=None,
        )  # fmt: skip
        await consumer.start()
        records: list[Record] = []
        deadline = time.monotonic() + within_s
        try:
            while len(records) < expected and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, messages in batch.items():
                    for m in messages:
                        env = decode(m.value, m.headers, MarketDataEnvelope, topic=m.topic, offset=m.offset)
                        hdrs = {k: v.decode() for k, v in m.headers}
                        records.append(Record((m.key or b"").decode(), tp.partition, m.offset, env, hdrs))
        finally:
            await consumer.stop()
        assert len(records) == expected, f"read {len(records)} records, the service acknowledged {expected}"
        self.records = records
        return records


PipelineFactory = Callable[..., Awaitable[Pipeline]]


@pytest.fixture
async def pipeline(kafka_bootstrap: str, new_topic: Any) -> AsyncIterator[PipelineFactory]:
    """`await pipeline(sim_rate=..., **ingestion_settings)` starts the simulator and the service."""
    started: list[Pipeline] = []

    async def start(sim_rate: float = 150.0, sim: dict[str, Any] | None = None, **overrides: Any) -> Pipeline:
        """`sim`: extra simulator settings; `overrides`: ingestion settings."""
        topic = await new_topic(catalogue().get(MARKET_DATA_RAW).partitions)
        sim_settings = {"ws_port": 0, "rest_port": 0, "rate": sim_rate, "symbols": SYMBOLS, "seed": 11,
                        "kline_interval_ms": 300, **(sim or {})}  # fmt: skip
        simulator = ExchangeSimulator(SimSettings(**sim_settings))
        await simulator.start()
        values: dict[str, Any] = {
            "kafka": KafkaSettings(bootstrap_servers=kafka_bootstrap),
            "metrics": MetricsSettings(host="127.0.0.1", port=0),
            "topic": topic,
            "symbols": SYMBOLS,
            "ws_urls": {
                "binance": f"{simulator.ws_url}/binance/stream",
                "bybit": f"{simulator.ws_url}/bybit/v5/public/spot",
            },
            "rest_urls": {"binance": simulator.rest_url},
            "channels": {"bybit": ("publicTrade", "orderbook.50", "orderbook.1", "kline.1")},
            "subscribe_interval_s": 0.01,
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.5,
            "book_snapshot_interval_s": 0,
            "shutdown_timeout_s": 20,
            "snapshot_rate_per_s": 50,
            "snapshot_burst": 10,
            **overrides,
        }
        registry = CollectorRegistry()
        service = IngestionService(IngestionSettings(**values), registry=registry)
        await service.start()
        p = Pipeline(simulator, service, topic, kafka_bootstrap, registry)
        started.append(p)
        return p

    yield start
    for p in started:
        await p.stop()


def by_key(records: list[Record]) -> dict[str, list[Record]]:
    """Records grouped by key, each group in offset order."""
    groups: dict[str, list[Record]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        groups.setdefault(r.key, []).append(r)
    return groups


def assert_ordered_and_complete(records: list[Record]) -> None:
    """Per key: one partition, the key names the instrument, source_sequence contiguous in offset order
    (nothing lost or reordered after receipt), no event published twice; standard headers present."""
    twice = [i for i, n in Counter(r.envelope.event_id for r in records).items() if n > 1]
    assert not twice, f"event ids published twice: {twice[:5]}"
    for key, group in by_key(records).items():
        assert len({r.partition for r in group}) == 1, f"{key} spread over several partitions"
        venue, symbol = group[0].envelope.venue, group[0].envelope.symbol
        assert key == f"{venue}:{symbol}"
        sequences = [r.envelope.source_sequence for r in group]
        holes = [(a, b) for a, b in pairwise(sequences) if b != a + 1]
        assert not holes, f"{key}: source_sequence not contiguous at {holes[:3]} (of {len(sequences)})"
        for r in group:
            assert r.headers[HEADER_SCHEMA] == "aipx.v1.MarketDataEnvelope"
            assert r.headers[HEADER_EVENT_ID] == r.envelope.event_id
            assert int(r.headers[HEADER_EVENT_TIME]) in (
                r.envelope.exchange_time_ns,
                r.envelope.ingest_time_ns,
            )


def assert_books_consistent(records: list[Record]) -> None:
    """Replaying each key's book data obeys the venue's rules: deltas only on top of a snapshot, none
    stale, none leaving a hole (Binance: U <= last + 1 <= u; Bybit: u = last + 1); after a depth gap,
    nothing until the next snapshot."""
    for key, group in by_key(records).items():
        last: int | None = None
        for r in group:
            env = r.envelope
            kind = env.WhichOneof("payload")
            if kind == "book_snapshot":
                last = env.book_snapshot.last_update_id
            elif kind == "gap" and env.gap.stream == "depth":
                last = None
            elif kind == "book_delta":
                d = env.book_delta
                assert last is not None, f"{key}: delta {d.first_update_id} published without a valid book"
                assert d.final_update_id > last, f"{key}: stale delta {d.final_update_id} <= {last}"
                if env.venue == "binance":
                    assert d.first_update_id <= last + 1, (
                        f"{key}: hole between {last} and {d.first_update_id}"
                    )
                else:
                    assert d.first_update_id == last + 1, f"{key}: {d.first_update_id} does not follow {last}"
                last = d.final_update_id
