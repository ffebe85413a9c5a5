"""The Kafka side: a bounded buffer between the feed readers and the shared producer.

Readers `put` envelopes; when the buffer is full they wait, so they stop reading their sockets and the
venue sees TCP backpressure. One task drains the buffer into the idempotent, acks=all producer (aipx.kafka),
a record batch per partition at a time;
the producer retries batches for `produce_timeout_ms`, chosen to outlast a broker restart. Anything that is
nevertheless not delivered (a batch expired, the shutdown deadline passed) is counted in `dropped` and
logged: never silent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from functools import partial
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, ProducerClosed
from aipx.aio import cancel_and_wait
from aipx.kafka import BatchPublisher
from aipx.serde import encoded
from aipx.v1.market_data_pb2 import MarketDataEnvelope

from aipx_ingestion.metrics import IngestionMetrics

log = logging.getLogger(__name__)

_RETRY_BACKOFF_S = 0.2
_REAP_INTERVAL_S = 0.005


_SCHEMA = MarketDataEnvelope.DESCRIPTOR.full_name


class Outgoing(msgspec.Struct, gc=False):
    """One serialized MarketDataEnvelope to publish, with its record key and what the record headers, the
    metrics and the logs need. The headers are built when the record is published: a buffer of 100,000
    items holds bytes and scalars, not 100,000 header lists for the garbage collector to scan (a Struct
    with gc=False: built in C, and not tracked by the collector at all)."""

    key: bytes
    value: bytes
    event_time_ns: int
    venue: str
    kind: str
    """Payload kind (a metric label)."""
    event_id: str
    exchange_time_ns: int


class KafkaSink:
    """Bounded, backpressured, at-least-once publishing of envelopes to one topic.

    One task takes everything buffered (up to `max_batch` envelopes; after the first one it waits `linger_s`
    for more, as a producer lingers) and publishes it as one record batch per partition
    (`aipx.kafka.BatchPublisher`): a coroutine and a delivery future per batch, not per record.
    Acknowledgements are accounted in bulk: batch futures queue up in send order and a reaper settles the
    completed ones every few milliseconds. Latency histograms observe every `latency_sample`-th batch (its
    first record) at its exact acknowledgement time.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        capacity: int,
        metrics: IngestionMetrics,
        latency_sample: int = 8,
        max_batch: int = 2_000,
        linger_s: float = 0.0,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.metrics = metrics
        self.latency_sample = max(1, latency_sample)
        # The buffer: a list taken a batch at a time (no per-item queue operations); `_ready` is set while
        # it holds something, `_room` while it is below capacity, `_idle` while it is empty and not sending.
        self.capacity = capacity
        self._buffer: list[Outgoing] = []
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.max_batch = max_batch
        self.linger_s = linger_s
        self._batches: BatchPublisher[Outgoing] = BatchPublisher(producer, topic)
        self._pending: deque[tuple[list[Outgoing], asyncio.Future[Any]]] = deque()
        self._in_flight = 0  # records in self._pending
        self._sent = 0  # batches
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.delivery_errors = 0
        self.last_error: str | None = None
        metrics.buffer_capacity.set(capacity)
        metrics.buffer_depth.set_function(lambda: len(self._buffer))
        metrics.in_flight.set_function(lambda: self._in_flight)
        # Metric children cached per label set: labels() is slow on the hot path.
        self._out: dict[tuple[str, str], Any] = {}
        self._e2e: dict[str, Any] = {}
        self._current: list[Outgoing] = []

    def start(self) -> None:
        """Start draining the buffer into the producer, and settling acknowledgements."""
        self._tasks = [
            asyncio.create_task(self._run(), name="kafka-sink"),
            asyncio.create_task(self._reap_loop(), name="kafka-sink-acks"),
        ]

    @property
    def depth(self) -> int:
        return len(self._buffer)

    @property
    def healthy(self) -> bool:
        """False while sends or deliveries are failing (e.g. the broker is unreachable)."""
        return self.last_error is None and bool(self._tasks) and not any(t.done() for t in self._tasks)

    def offer(self, item: Outgoing) -> bool:
        """Buffer an envelope if there is room (True), without waiting; False if the buffer is full."""
        buffer = self._buffer
        if len(buffer) >= self.capacity:
            if self._closing:
                self._drop("closed", 1)
                return True
            self._room.clear()
            return False
        if self._closing:
            self._drop("closed", 1)
            return True
        buffer.append(item)
        if len(buffer) == 1:
            self._ready.set()
            self._idle.clear()
        return True

    async def put(self, item: Outgoing) -> None:
        """Buffer an envelope; waits while the buffer is full (backpressure on the caller)."""
        while not self.offer(item):
            await self.room()

    async def room(self) -> None:
        """Wait until the buffer has room (counted as backpressure time)."""
        if len(self._buffer) < self.capacity:
            return
        self._room.clear()
        started = time.perf_counter()
        await self._room.wait()
        self.metrics.backpressure_seconds.inc(time.perf_counter() - started)

    async def _run(self) -> None:
        buffer = self._buffer
        max_batch = self.max_batch
        while True:
            if not buffer:
                self._idle.set()
                await self._ready.wait()
            if self.linger_s and len(buffer) < max_batch:
                # Let a batch gather (the producer's linger, moved here: the batches go out closed, at once).
                await asyncio.sleep(self.linger_s)
            items = buffer[:max_batch]
            del buffer[:max_batch]
            if not buffer:
                self._ready.clear()
            self._room.set()
            self._current = items
            await self._send(items)

    async def _send(self, items: list[Outgoing]) -> None:
        """Publish what the buffer held, a record batch per partition, retried until the producer takes it."""
        batches = self._batches
        while True:
            try:
                await batches.prepare()
                break
            except KafkaError as exc:  # no metadata yet (broker away at startup): the buffer fills meanwhile
                self._retry(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(_RETRY_BACKOFF_S)
        for item in items:
            t = item.event_time_ns
            record = encoded(item.value, _SCHEMA, event_id=item.event_id, event_time_ns=t)
            batches.add(item.key, record, t // 1_000_000, item)
        self._current = []  # all in `batches` now
        while True:
            try:
                await batches.flush(self._submitted)
                return
            except ProducerClosed:
                self._drop("producer_closed", batches.discard())
                return
            except KafkaTimeoutError:
                # The producer could not take a batch within its timeout (broker away, buffers full): keep it
                # and retry; meanwhile the bounded buffer fills and the readers are slowed down.
                self._retry("producer buffer full")
            except KafkaError as exc:
                self._retry(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(_RETRY_BACKOFF_S)

    def _retry(self, error: str) -> None:
        self.metrics.produce_retries.inc()
        self.last_error = error
        log.warning("send to %s failed (%s); retrying", self.topic, error)

    def _submitted(self, future: asyncio.Future[Any], items: list[Outgoing]) -> None:
        self._pending.append((items, future))
        self._in_flight += len(items)
        self._sent += 1
        if not self._sent % self.latency_sample:
            future.add_done_callback(partial(self._observe_latency, items[0], time.perf_counter()))

    def _observe_latency(self, item: Outgoing, sent: float, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        self.metrics.produce_latency.observe(time.perf_counter() - sent)
        if item.exchange_time_ns:
            hist = self._e2e.get(item.venue)
            if hist is None:
                hist = self._e2e[item.venue] = self.metrics.end_to_end_latency.labels(item.venue)
            hist.observe(max(0.0, (time.time_ns() - item.exchange_time_ns) / 1e9))

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(_REAP_INTERVAL_S)
            self._reap()

    def _reap(self) -> None:
        """Settle the acknowledged (or failed) records at the head of the send order."""
        pending = self._pending
        counts: dict[tuple[str, str], int] = {}
        while pending and pending[0][1].done():
            items, future = pending.popleft()
            self._in_flight -= len(items)
            if future.cancelled() or future.exception() is not None:
                error = "cancelled" if future.cancelled() else repr(future.exception())
                self.delivery_errors += len(items)
                self.last_error = error
                self._drop("delivery_failed", len(items))
                log.error(
                    "%d envelope(s) were not delivered (first %s): %s",
                    len(items),
                    items[0].event_id,
                    error,
                )
                continue
            for item in items:
                key = (item.venue, item.kind)
                counts[key] = counts.get(key, 0) + 1
        if counts:
            self.last_error = None
        for key, count in counts.items():
            counter = self._out.get(key)
            if counter is None:
                counter = self._out[key] = self.metrics.messages_out.labels(*key)
            counter.inc(count)

    def count_dropped(self, reason: str, count: int) -> None:
        """Count (and log) envelopes lost before reaching the buffer."""
        self._drop(reason, count)

    def _drop(self, reason: str, count: int) -> None:
        self.metrics.dropped.labels(reason).inc(count)
        log.error("dropped %d envelope(s): %s", count, reason)

    async def close(self, timeout_s: float) -> None:
        """Stop accepting, publish what is buffered and wait for acknowledgements, up to `timeout_s`."""
        self._closing = True
        deadline = time.monotonic() + timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                while self._buffer or not self._idle.is_set():
                    await self._idle.wait()
            async with asyncio.timeout(max(0.01, deadline - time.monotonic())):
                await self.producer.flush()
                if self._pending:
                    await asyncio.wait([f for _, f in self._pending])
        except TimeoutError:
            log.error(
                "shutdown deadline reached with %d buffered, %d unacknowledged",
                self.depth,
                self._in_flight,
            )
        await cancel_and_wait(*self._tasks, what="kafka sink")
        self._reap()
        # Taken from the buffer and not submitted: not yet added to a batch (_current), or in an open batch.
        left = len(self._buffer) + len(self._current) + self._batches.discard()
        if left:
            self._drop("shutdown", left)
        if self._in_flight:
            self._drop("unacknowledged_at_shutdown", self._in_flight)
