"""The local event source mapping: consume, batch, invoke the Lambda handler, commit what succeeded.

One `EventSourcePoller` per event source (its own consumer group, as an MSK mapping), one worker thread per
function (a warm Lambda instance serves one invocation at a time, and handlers keep per-invocation state
at module level). The handler runs in that thread with the exact MSK event and a FakeLambdaContext, or, with
`isolation="process"` (`--isolation process`), in an instance process per function that may crash or be
killed on timeout and is started afresh, as Lambda does (`aipx_runner.instance`).
Functions run side by side in one process share its GIL and powertools' class-level Metrics store; run
one function per process (`--function NAME`) for isolated EMF metrics or throughput.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aipx.kafka import DeadLetterPublisher, create_producer
from aipx.lambda_kit import FakeLambdaContext
from aipx.msk import MskRecord, build_event
from aipx.ops import LATENCY_BUCKETS
from prometheus_client import Counter, Histogram

from aipx_runner.adapters.kafka import mapping_consumer, to_msk_record
from aipx_runner.config import Handler, RunnerConfig, SourceConfig
from aipx_runner.domain import InvocationResult, PartitionState, Settlement, contract, settle
from aipx_runner.instance import ProcessInstance, handler_path

log = logging.getLogger(__name__)

_LABELS = ("function", "topic")
INVOCATIONS = Counter("aipx_runner_invocations_total", "Handler invocations", [*_LABELS, "outcome"])
RECORDS = Counter(
    "aipx_runner_records_total", "Records delivered to handlers (redeliveries included)", _LABELS
)
RETRIES = Counter("aipx_runner_retries_total", "Partition retries scheduled after a failure", _LABELS)
DEAD_LETTERED = Counter("aipx_runner_dead_lettered_total", "Records sent to the on-failure topic", _LABELS)
INVOCATION_SECONDS = Histogram(
    "aipx_runner_invocation_seconds", "Handler invocation time", _LABELS, buckets=LATENCY_BUCKETS
)


@dataclass
class PollerStats:
    """Counters of one event source, for tests and logs."""

    invocations: int = 0
    records: int = 0
    failed_invocations: int = 0
    retries: int = 0
    dead_lettered: int = 0
    # On-demand mode: records a handler reported failed that the mapping committed anyway (as AWS does).
    ignored_failures: int = 0
    committed: dict[str, int] = field(default_factory=dict)
    # Where the time goes (seconds): fetching + batching, building events, in the handler, settling.
    gather_s: float = 0.0
    build_s: float = 0.0
    invoke_s: float = 0.0
    settle_s: float = 0.0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, poller: EventSourcePoller) -> None:
        self.poller = poller

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.poller.forget(tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


# A "topic-partition" group of the event beyond the topic's name (quotes, dash, partition, colon, brackets).
_PARTITION_KEY_BYTES = 16


class EventSourcePoller:
    """Emulates one MSK event source mapping against the real broker."""

    def __init__(
        self,
        source: SourceConfig,
        config: RunnerConfig,
        *,
        handler: Handler | None,
        executor: ThreadPoolExecutor,
        dead_letters: DeadLetterPublisher,
        stopping: asyncio.Event,
        instance: ProcessInstance | None = None,
    ) -> None:
        self.source = source
        self.instance = instance
        self.config = config
        self.handler = handler
        self.executor = executor
        self.dead_letters = dead_letters
        self.stopping = stopping
        self.stats = PollerStats()
        self.ready = asyncio.Event()
        self._states: dict[TopicPartition, PartitionState] = {}
        self._paused: dict[TopicPartition, float] = {}
        self._windows: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._record_bytes = 0.0  # running mean of a record's size in the event (sizes what to fetch)
        # The event's own fields around its records (compact JSON, as the payload limit counts it).
        empty = build_event((), bootstrap_servers=config.kafka.bootstrap_servers)
        self._envelope_bytes = len(json.dumps(empty, separators=(",", ":")))

    def forget(self, tp: TopicPartition) -> None:
        """Drop the bookkeeping of a partition this consumer no longer owns."""
        self._states.pop(tp, None)
        self._paused.pop(tp, None)
        self._windows.pop(tp, None)

    async def run(self) -> None:
        """Poll, invoke and settle until asked to stop; the in-flight batch is finished first."""
        src = self.source
        consumer = mapping_consumer(
            self.config.kafka,
            topic=src.topic,
            group_id=src.group_id,
            auto_offset_reset=src.auto_offset_reset,
            batch_size=src.batch_size,
        )
        consumer.subscribe([src.topic], listener=_Rebalance(self))
        self._consumer = consumer
        await consumer.start()
        log.info("event source %s <- %s (group %s) started", src.function, src.topic, src.group_id)
        try:
            while not self.stopping.is_set():
                started = time.perf_counter()
                batch = await self._gather(consumer)
                self.stats.gather_s += time.perf_counter() - started
                if batch:
                    await self._invoke_and_settle(consumer, batch)
        finally:
            await consumer.stop()
            log.info("event source %s <- %s stopped: %s", src.function, src.topic, self.stats)

    async def _mark_ready(self, consumer: AIOKafkaConsumer) -> None:
        assignment = consumer.assignment()
        if assignment and not self.ready.is_set():
            for tp in assignment:
                await consumer.position(tp)  # resolves LATEST/TRIM_HORIZON now, not at the first record
            self.ready.set()
            log.info(
                "event source %s <- %s ready (%d partitions)",
                self.source.function,
                self.source.topic,
                len(assignment),
            )

    def _resume_due(self, consumer: AIOKafkaConsumer) -> float | None:
        now = time.monotonic()
        for tp, until in list(self._paused.items()):
            if until <= now:
                del self._paused[tp]
                if tp in consumer.assignment():
                    consumer.resume(tp)
        return min(self._paused.values(), default=None)

    async def _gather(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, list[MskRecord]]:
        """One batch: up to batch_size records (and the payload limit), waiting at most the batching window
        after the first record."""
        src = self.source
        batch: dict[TopicPartition, list[MskRecord]] = {}
        count, size = 0, self._envelope_bytes
        deadline: float | None = None
        while count < src.batch_size and not self.stopping.is_set():
            next_resume = self._resume_due(consumer)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            wait = (deadline - now) if deadline is not None else 0.5
            if next_resume is not None:
                wait = min(wait, max(0.0, next_resume - now))
            fetched = await consumer.getmany(
                timeout_ms=max(1, int(wait * 1000)), max_records=self._fetch_limit(count, size)
            )
            await self._mark_ready(consumer)
            full = False
            for tp, records in fetched.items():
                if tp in self._paused:
                    continue  # paused after this fetch was buffered; they come again after the seek
                if tp not in batch:
                    size += len(tp.topic) + _PARTITION_KEY_BYTES
                taken = batch.setdefault(tp, [])
                limit = self._windows.get(tp)
                added, added_bytes = 0, 0
                for record in records:
                    msk = to_msk_record(record)
                    grow = msk.event_bytes
                    if (limit is not None and len(taken) >= limit) or (
                        (count or added) and size + grow > self.config.max_payload_bytes
                    ):
                        consumer.seek(tp, record.offset)  # the rest is fetched again later
                        full = full or limit is None
                        break
                    taken.append(msk)
                    added += 1
                    added_bytes += grow
                    size += grow
                count += added
                self._learn_record_size(added, added_bytes)
                if not taken:
                    del batch[tp]
                    size -= len(tp.topic) + _PARTITION_KEY_BYTES
            if batch and deadline is None:
                deadline = time.monotonic() + src.batching_window_s
            if full or (not batch and deadline is None and not fetched):
                if not batch:
                    return batch
                break
        return batch

    def _learn_record_size(self, records: int, total_bytes: int) -> None:
        """Fold a fetch's records into the running mean record size: each record weighs 1/64, as if they
        were folded in one at a time (the first fetch sets the mean)."""
        if records:
            weight = 1.0 - (63 / 64) ** records if self._record_bytes > 0 else 1.0
            self._record_bytes += (total_bytes / records - self._record_bytes) * weight

    def _fetch_limit(self, count: int, size: int) -> int:
        """How many records to take from the consumer: what is left of the batch size, and no more than the
        payload limit is expected to leave room for (records fetched beyond it would be decoded, sought back
        and decoded again with the next batch)."""
        left = self.source.batch_size - count
        if self._record_bytes <= 0:
            return left
        room = (self.config.max_payload_bytes - size) / self._record_bytes
        return max(1, min(left, int(room * 1.02) + 1))

    async def _invoke(self, event: dict[str, Any], partitions: list[str]) -> InvocationResult:
        src = self.source
        if self.instance is not None:
            invocation = asyncio.ensure_future(self.instance.invoke(event, timeout_s=src.timeout_s))
            try:
                # Shielded: on shutdown the in-flight invocation is finished, never abandoned.
                response = await asyncio.shield(invocation)
            except Exception as exc:  # the instance died, timed out, or the handler raised
                log.warning("%s: invocation failed: %s", src.function, exc)
                return InvocationResult.whole_failure(partitions, f"{type(exc).__name__}: {exc}")
            return InvocationResult.from_response(response, partitions)
        assert self.handler is not None  # thread isolation
        context = FakeLambdaContext(src.function, timeout_s=src.timeout_s)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, self.handler, event, context)
        try:
            # Shielded: on shutdown the in-flight invocation is finished, never abandoned.
            async with asyncio.timeout(src.timeout_s):
                response = await asyncio.shield(future)
        except TimeoutError:
            return InvocationResult.whole_failure(partitions, f"timed out after {src.timeout_s}s")
        except Exception as exc:
            log.warning("%s: handler raised %s: %s", src.function, type(exc).__name__, exc)
            return InvocationResult.whole_failure(partitions, f"{type(exc).__name__}: {exc}")
        return InvocationResult.from_response(response, partitions)

    async def _invoke_and_settle(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[MskRecord]]
    ) -> None:
        src = self.source
        t0 = time.perf_counter()
        records = [r for tp in sorted(batch, key=lambda t: t.partition) for r in batch[tp]]
        event = build_event(records, bootstrap_servers=self.config.kafka.bootstrap_servers)
        names = {tp: f"{tp.topic}-{tp.partition}" for tp in batch}
        t1 = time.perf_counter()
        result = await self._invoke(event, list(names.values()))
        t2 = time.perf_counter()
        terms = contract(self.config.mode)
        seen = terms.seen(result)
        if seen is not result:
            self.stats.ignored_failures += sum(len(o or ()) for o in result.failed.values())
            log.error(
                "%s: partial batch response ignored (AIPX_LAMBDA_ESM_MODE=%s): %d failed record(s) committed "
                "as processed",
                src.function,
                self.config.mode,
                self.stats.ignored_failures,
            )
            result = seen
        self.stats.build_s += t1 - t0
        self.stats.invoke_s += t2 - t1
        self.stats.invocations += 1
        self.stats.records += len(records)
        labels = (src.function, src.topic)
        if result.error or result.failed:
            self.stats.failed_invocations += 1
        outcome = "error" if result.error else "partial" if result.failed else "ok"
        INVOCATIONS.labels(*labels, outcome).inc()
        RECORDS.labels(*labels).inc(len(records))
        INVOCATION_SECONDS.labels(*labels).observe(t2 - t1)
        commits: dict[TopicPartition, int] = {}
        for tp, recs in batch.items():
            state = self._states.setdefault(tp, PartitionState())
            failed = result.failed.get(names[tp], frozenset())
            decision = settle(
                [r.offset for r in recs],
                failed,
                state,
                max_retries=terms.max_retries(src.max_retries),
                bisect_on_error=terms.bisect_on_error(src.bisect_on_error),
                backoff=self.config.backoff,
            )
            await self._apply(consumer, tp, recs, decision, error=result.error, commits=commits)
        if commits:
            await self._commit(consumer, commits)
        self.stats.settle_s += time.perf_counter() - t2

    async def _apply(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        records: list[MskRecord],
        decision: Settlement,
        *,
        error: str | None,
        commits: dict[TopicPartition, int],
    ) -> None:
        src = self.source
        if decision.dead_letter:
            doomed = set(decision.dead_letter)
            reason = error or f"reported failed by {src.function}"
            for record in records:
                if record.offset in doomed:
                    await self.dead_letters.publish(
                        src.on_failure_topic,
                        key=record.key,
                        value=record.value,
                        headers=record.headers,
                        error=f"{reason} (gave up after {decision.attempts - 1} retries)",
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                    )
            self.stats.dead_lettered += len(doomed)
            DEAD_LETTERED.labels(src.function, src.topic).inc(len(doomed))
            log.warning(
                "%s: %d record(s) of %s-%d sent to %s after %d retries",
                src.function,
                len(doomed),
                tp.topic,
                tp.partition,
                src.on_failure_topic,
                decision.attempts - 1,
            )
        if decision.commit is not None:
            commits[tp] = decision.commit
        if decision.window is not None:
            self._windows[tp] = decision.window
        else:
            self._windows.pop(tp, None)
        if decision.seek is not None:
            consumer.seek(tp, decision.seek)
            if decision.retry_in_s:
                self.stats.retries += 1
                RETRIES.labels(src.function, src.topic).inc()
                self._paused[tp] = time.monotonic() + decision.retry_in_s
                consumer.pause(tp)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        """Commit the next offsets to read (everything below them has been processed)."""
        await consumer.commit(offsets)
        for tp, offset in offsets.items():
            self.stats.committed[f"{tp.topic}-{tp.partition}"] = offset


class Runner:
    """Runs a `RunnerConfig`'s event sources until `stop()` (or SIGTERM/SIGINT with `install_signals`)."""

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.stopping = asyncio.Event()
        self.pollers: list[EventSourcePoller] = []
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self.instances: dict[str, ProcessInstance] = {}
        self._producer: AIOKafkaProducer | None = None
        self._started = asyncio.Event()

    def stop(self) -> None:
        """Ask every poller to finish its in-flight batch, commit and close."""
        self.stopping.set()

    def ready(self) -> bool:
        """Every event source has its partitions assigned (for /readyz)."""
        return self._started.is_set() and all(p.ready.is_set() for p in self.pollers)

    def install_signals(self) -> None:
        """SIGTERM/SIGINT -> graceful stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)

    async def wait_ready(self, within_s: float = 30.0) -> None:
        """Until every event source has its partitions assigned and its start positions resolved."""
        async with asyncio.timeout(within_s):
            await self._started.wait()
            await asyncio.gather(*(p.ready.wait() for p in self.pollers))

    async def run(self, *, handler_factory: Callable[[SourceConfig], Handler] | None = None) -> None:
        """Run until stopped."""
        self._producer = create_producer(self.config.kafka, client_id="runner-on-failure")
        await self._producer.start()
        try:
            for src in self.config.sources:
                executor = self._executors.get(src.function)
                if executor is None:
                    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lambda-{src.function}")
                    self._executors[src.function] = executor
                handler: Handler | None = None
                instance = None
                if self.config.isolation == "process":
                    # The function's code is loaded by its instance process only, never by the runner.
                    instance = self.instances.get(src.function)
                    if instance is None:
                        path = handler_path(handler_factory(src) if handler_factory else src.handler)
                        env = self.config.instance_env(os.environ)
                        instance = ProcessInstance(src.function, path, env=env)
                        self.instances[src.function] = instance
                else:
                    handler = handler_factory(src) if handler_factory else src.resolve_handler()
                self.pollers.append(
                    EventSourcePoller(
                        src,
                        self.config,
                        handler=handler,
                        executor=executor,
                        dead_letters=DeadLetterPublisher(self._producer, consumer=f"runner:{src.function}"),
                        stopping=self.stopping,
                        instance=instance,
                    )
                )
            self._started.set()
            tasks = [asyncio.create_task(p.run(), name=f"poller-{p.source.group_id}") for p in self.pollers]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if task.exception() is not None:
                        self.stop()
                await asyncio.gather(*tasks)
            finally:
                self.stop()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await self._producer.stop()
            for instance in self.instances.values():
                await instance.close()
            for executor in self._executors.values():
                executor.shutdown(wait=True)
