"""KafkaFeed: reads the platform's topics (no consumer group: every console sees everything) into the state.

Starts each partition a few records before its end (`backlog`) so the page has recent signals, decisions and
orders at once; counts the dead-letter topics from their offsets; reports the broker up or down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aipx import serde
from aipx.aio import cancel_and_wait
from aipx.functions import manifest
from aipx.kafka import client_config, create_consumer
from aipx.settings import KafkaSettings
from aipx.topics import catalogue
from aipx.v1 import decisions_pb2, market_data_pb2, orders_pb2, signals_pb2
from google.protobuf.message import Message
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from aipx_console.domain.state import ConsoleState
from aipx_console.metrics import CONSUMER_LAG, DLQ_RECORDS, UNDECODABLE
from aipx_console.settings import ConsoleSettings

log = logging.getLogger(__name__)

COMPONENT = "kafka"


@dataclass(frozen=True)
class Route:
    """A topic, the message its records hold, and where a decoded one goes."""

    topic: str
    message_type: type[Message]
    apply: Callable[[ConsoleState, Message, int], None]
    backlog: bool


def routes(settings: ConsoleSettings) -> list[Route]:
    """The topics the console reads, from its settings."""
    return [
        Route(
            settings.market_data_topic,
            market_data_pb2.MarketDataEnvelope,
            lambda s, m, now: s.on_market_data(m, now),  # type: ignore[arg-type]
            backlog=False,
        ),
        Route(
            settings.signals_topic,
            signals_pb2.TradingSignal,
            lambda s, m, _: s.on_signal(m),  # type: ignore[arg-type]
            backlog=True,
        ),
        Route(
            settings.decisions_topic,
            decisions_pb2.Decision,
            lambda s, m, _: s.on_decision(m),  # type: ignore[arg-type]
            backlog=True,
        ),
        Route(
            settings.order_events_topic,
            orders_pb2.OrderEvent,
            lambda s, m, _: s.on_order_event(m),  # type: ignore[arg-type]
            backlog=True,
        ),
    ]


def dlq_topics(settings: ConsoleSettings) -> list[str]:
    """The dead-letter topics to count: configured, or the catalogue's DLQ of each topic read."""
    if settings.dlq_topics is not None:
        return list(settings.dlq_topics)
    names = {t.name: t.dlq for t in catalogue().topics}
    topics = (
        settings.market_data_topic,
        settings.signals_topic,
        settings.decisions_topic,
        settings.order_events_topic,
    )
    return [dlq for t in topics if (dlq := names.get(t))]


def consumer_groups() -> list[tuple[str, str]]:
    """(consumer group, topic) of every event source of the function manifest (the cold path's readers)."""
    return sorted(
        {(src.consumer_group, src.topic) for fn in manifest().functions for src in fn.event_sources}
    )


class KafkaFeed:
    """One consumer for every topic, decoding records into the console state."""

    def __init__(
        self, settings: ConsoleSettings, state: ConsoleState, kafka: KafkaSettings | None = None
    ) -> None:
        self.settings = settings
        self.state = state
        self.kafka = kafka or settings.kafka
        self.routes = {r.topic: r for r in routes(settings)}
        self.dlq = dlq_topics(settings)
        self.undecodable = 0
        self.groups = consumer_groups()
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._dlq_partitions: list[TopicPartition] = []

    def _set(self, up: bool, message: str) -> None:
        self.state.set_component(COMPONENT, up, message, time.time_ns())

    async def run(self) -> None:
        """Connect (retrying while the broker is down), read until cancelled; reconnect after a failure."""
        while True:
            try:
                async for attempt in AsyncRetrying(
                    wait=wait_exponential(multiplier=0.5, max=5),
                    retry=retry_if_exception_type((KafkaError, OSError, TimeoutError)),
                    before_sleep=self._unreachable,
                ):
                    with attempt:
                        await self._connect()
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the feed die: show it and start over
                log.warning("kafka feed failed, reconnecting", exc_info=True)
                self._set(False, f"Kafka feed failed: {exc}")
                await asyncio.sleep(1)
            finally:
                await self._close()

    def _unreachable(self, retry: RetryCallState) -> None:
        error = retry.outcome.exception() if retry.outcome is not None else None
        self._set(False, f"Kafka unreachable at {self.kafka.bootstrap_servers}: {error or 'no answer'}")

    async def _connect(self) -> None:
        await self._close()
        consumer = create_consumer(
            settings=self.kafka,
            client_id="aipx-console",
            group_id=None,
            isolation_level="read_uncommitted",
            auto_offset_reset="latest",
            request_timeout_ms=10_000,
            max_partition_fetch_bytes=1024 * 1024,
        )
        try:
            async with asyncio.timeout(15):
                await consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._consumer = consumer
        async with asyncio.timeout(10):
            existing = await consumer.topics()
        missing = [t for t in [*self.routes, *self.dlq] if t not in existing]
        readable = [t for t in self.routes if t in existing]
        dlq = [t for t in self.dlq if t in existing]
        # Without a group, a subscription is assigned every partition of its topics as metadata arrives.
        consumer.subscribe([*readable, *dlq])
        deadline = time.monotonic() + 15
        wanted = set(readable) | set(dlq)
        while {tp.topic for tp in consumer.assignment()} != wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partitions assigned for {sorted(wanted)}")
            await asyncio.sleep(0.1)
        assigned = consumer.assignment()
        self._dlq_partitions = [tp for tp in assigned if tp.topic in dlq]
        consumer.pause(*self._dlq_partitions)  # counted from their offsets, not read
        backlog = [tp for tp in assigned if (r := self.routes.get(tp.topic)) is not None and r.backlog]
        rest = [tp for tp in assigned if tp not in backlog]
        if rest:
            await consumer.seek_to_end(*rest)
        if backlog:
            ends = await consumer.end_offsets(backlog)
            starts = await consumer.beginning_offsets(backlog)
            for tp in backlog:
                consumer.seek(tp, max(starts[tp], ends[tp] - self.settings.backlog))
        note = f"; missing topics: {', '.join(missing)}" if missing else ""
        self._set(not missing, f"connected to {self.kafka.bootstrap_servers}{note}")
        log.info("kafka feed reading %d partitions%s", len(assigned), note)

    async def _close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _read(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        probe = asyncio.create_task(self._probe(consumer))
        try:
            while True:
                if probe.done():
                    probe.result()  # raises what made the broker unreachable
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                now = time.time_ns()
                for tp, records in batches.items():
                    route = self.routes.get(tp.topic)
                    if route is None:
                        continue
                    for r in records:
                        try:
                            message = serde.decode(
                                r.value, r.headers, route.message_type, topic=r.topic, partition=r.partition,
                                offset=r.offset,
                            )  # fmt: skip
                        except serde.DecodeError as exc:
                            self.undecodable += 1
                            UNDECODABLE.labels(r.topic).inc()
                            log.warning("skipping a record the console cannot show: %s", exc)
                            continue
                        route.apply(self.state, message, now)
        finally:
            await cancel_and_wait(probe, what="console lag probe")

    async def _probe(self, consumer: AIOKafkaConsumer) -> None:
        """Every few seconds: the dead-letter counts, which also tell whether the broker still answers."""
        failures = 0
        while True:
            try:
                counts: dict[str, int] = dict.fromkeys(self.dlq, 0)
                if self._dlq_partitions:
                    async with asyncio.timeout(8):
                        ends = await consumer.end_offsets(self._dlq_partitions)
                    async with asyncio.timeout(8):
                        starts = await consumer.beginning_offsets(self._dlq_partitions)
                    for tp in self._dlq_partitions:
                        counts[tp.topic] += ends[tp] - starts[tp]
                else:
                    async with asyncio.timeout(8):
                        await consumer.topics()
                self.state.set_dlq(counts)
                for topic, count in counts.items():
                    DLQ_RECORDS.labels(topic).set(count)
                self.state.set_lag(await self._lag(consumer))
                if failures:
                    self._set(True, f"connected to {self.kafka.bootstrap_servers}")
                failures = 0
            except (KafkaError, OSError, TimeoutError) as exc:
                failures += 1
                self._set(
                    False,
                    f"Kafka not answering at {self.kafka.bootstrap_servers}: {exc or type(exc).__name__}",
                )
            await asyncio.sleep(3)

    async def _lag(self, consumer: AIOKafkaConsumer) -> dict[str, dict[str, int]]:
        """Lag of the manifest's consumer groups on the topics this console reads: end minus committed."""
        if self._admin is None:
            config = client_config(self.kafka, client_id="aipx-console-admin")
            config.pop("client_id", None)
            admin = AIOKafkaAdminClient(**config)
            async with asyncio.timeout(8):
                await admin.start()
            self._admin = admin
        readable = {tp.topic: tp for tp in consumer.assignment()}
        partitions = [tp for tp in consumer.assignment() if tp.topic in self.routes]
        if not partitions:
            return {}
        async with asyncio.timeout(8):
            ends = await consumer.end_offsets(partitions)
        lag: dict[str, dict[str, int]] = {}
        for group, topic in self.groups:
            if topic not in readable:
                continue
            async with asyncio.timeout(8):
                committed = await self._admin.list_consumer_group_offsets(group)
            behind = sum(
                max(0, end - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else end))
                for tp, end in ends.items()
                if tp.topic == topic
            )
            lag.setdefault(group, {})[topic] = behind
            CONSUMER_LAG.labels(group, topic).set(behind)
        return lag
