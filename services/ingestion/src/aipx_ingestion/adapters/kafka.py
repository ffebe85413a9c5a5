"""The Kafka side: a bounded buffer between the feed readers and the shared producer.

Readers `put` envelopes; when the buffer is full they wait, so they stop reading their sockets and the
venue sees TCP backpressure. One task drains the buffer into the idempotent, acks=all producer (aipx.kafka);
the producer retries batches for `produce_timeout_ms`, chosen to outlast a broker restart. Anything that is
nevertheless not delivered (a batch expired, the shutdown deadline passed) is counted in `dropped` and
logged: never silent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiokafka.errors import KafkaError, KafkaTimeoutError, ProducerClosed
from aiokafka.structs import RecordMetadata
from aipx.kafka import Publisher
from aipx.v1.market_data_pb2 import MarketDataEnvelope

from aipx_ingestion.metrics import IngestionMetrics

log = logging.getLogger(__name__)

_RETRY_BACKOFF_S = 0.2
_REAP_INTERVAL_S = 0.005


@dataclass(slots=True)
class Outgoing:
    """One envelope to publish, with its record key and its payload kind (a metric label)."""

    envelope: MarketDataEnvelope
    key: bytes
    kind: str


class KafkaSink:
    """Bounded, backpressured, at-least-once publishing of envelopes to one topic.

    Acknowledgements are accounted in bulk: delivery futures queue up in send order and a reaper settles the
    completed ones every few milliseconds (a callback per record costs more than the send itself). Latency
    histograms observe every `latency_sample`-th record at its exact acknowledgement time.
    """

    def __init__(
        self,
        publisher: Publisher,
        topic: str,
        *,
        capacity: int,
        metrics: IngestionMetrics,
        latency_sample: int = 8,
    ) -> None:
        self.publisher = publisher
        self.topic = topic
        self.metrics = metrics
        self.latency_sample = max(1, latency_sample)
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=capacity)
        self._pending: deque[tuple[Outgoing, asyncio.Future[RecordMetadata]]] = deque()
        self._sent = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.delivery_errors = 0
        self.last_error: str | None = None
        metrics.buffer_capacity.set(capacity)
        metrics.buffer_depth.set_function(self._queue.qsize)
        metrics.in_flight.set_function(lambda: len(self._pending))
        # Metric children cached per label set: labels() is slow on the hot path.
        self._out: dict[tuple[str, str], Any] = {}
        self._e2e: dict[str, Any] = {}
        self._current: Outgoing | None = None

    def start(self) -> None:
        """Start draining the buffer into the producer, and settling acknowledgements."""
        self._tasks = [
            asyncio.create_task(self._run(), name="kafka-sink"),
            asyncio.create_task(self._reap_loop(), name="kafka-sink-acks"),
        ]

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def healthy(self) -> bool:
        """False while sends or deliveries are failing (e.g. the broker is unreachable)."""
        return self.last_error is None and bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def put(self, item: Outgoing) -> None:
        """Buffer an envelope; waits while the buffer is full (backpressure on the caller)."""
        if self._closing:
            self._drop("closed", 1)
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            started = time.perf_counter()
            await self._queue.put(item)
            self.metrics.backpressure_seconds.inc(time.perf_counter() - started)

    async def _run(self) -> None:
        queue = self._queue
        while True:
            item = await queue.get()
            self._current = item
            await self._send(item)
            self._current = None
            queue.task_done()

    async def _send(self, item: Outgoing) -> None:
        env = item.envelope
        while True:
            try:
                future = await self.publisher.send(
                    self.topic,
                    item.key,
                    env,
                    event_id=env.event_id,
                    event_time_ns=env.exchange_time_ns or env.ingest_time_ns,
                )
                break
            except ProducerClosed:
                self._drop("producer_closed", 1)
                return
            except KafkaTimeoutError:
                # The producer could not take the record within its timeout (broker away, buffers full): keep
                # it and retry; meanwhile the bounded buffer fills and the readers are slowed down.
                self.metrics.produce_retries.inc()
                self.last_error = "producer buffer full"
                log.warning("producer full for %s; retrying", self.topic)
            except KafkaError as exc:
                self.metrics.produce_retries.inc()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("send to %s failed (%s); retrying", self.topic, self.last_error)
                await asyncio.sleep(_RETRY_BACKOFF_S)
        self._pending.append((item, future))
        self._sent += 1
        if not self._sent % self.latency_sample:
            future.add_done_callback(partial(self._observe_latency, env, time.perf_counter()))

    def _observe_latency(
        self, env: MarketDataEnvelope, sent: float, future: asyncio.Future[RecordMetadata]
    ) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        self.metrics.produce_latency.observe(time.perf_counter() - sent)
        if env.exchange_time_ns:
            hist = self._e2e.get(env.venue)
            if hist is None:
                hist = self._e2e[env.venue] = self.metrics.end_to_end_latency.labels(env.venue)
            hist.observe(max(0.0, (time.time_ns() - env.exchange_time_ns) / 1e9))

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(_REAP_INTERVAL_S)
            self._reap()

    def _reap(self) -> None:
        """Settle the acknowledged (or failed) records at the head of the send order."""
        pending = self._pending
        counts: dict[tuple[str, str], int] = {}
        while pending and pending[0][1].done():
            item, future = pending.popleft()
            if future.cancelled() or future.exception() is not None:
                error = "cancelled" if future.cancelled() else repr(future.exception())
                self.delivery_errors += 1
                self.last_error = error
                self._drop("delivery_failed", 1)
                log.error("envelope %s was not delivered: %s", item.envelope.event_id, error)
                continue
            key = (item.envelope.venue, item.kind)
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
            await asyncio.wait_for(self._queue.join(), timeout_s)
            await asyncio.wait_for(self.publisher.producer.flush(), max(0.01, deadline - time.monotonic()))
            if self._pending:
                await asyncio.wait_for(
                    asyncio.wait([f for _, f in self._pending]), max(0.01, deadline - time.monotonic())
                )
        except TimeoutError:
            log.error(
                "shutdown deadline reached with %d buffered, %d unacknowledged",
                self.depth,
                len(self._pending),
            )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._reap()
        left = self._queue.qsize() + (1 if self._current is not None else 0)
        if left:
            self._drop("shutdown", left)
        if self._pending:
            self._drop("unacknowledged_at_shutdown", len(self._pending))
