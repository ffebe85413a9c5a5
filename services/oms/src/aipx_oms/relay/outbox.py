"""OutboxRelay: publishes committed order events from the outbox to Kafka, then marks them published.

Key = the account id (the catalogue's "{account_id}"), so one account's events stay in order on one partition.
Delivery is at-least-once: a crash between the broker's acknowledgement and the marking re-sends those events,
which consumers drop by event_id. While Kafka is down the events wait in the outbox; orders are unaffected.
Only one relay publishes at a time (PostgreSQL advisory lock), so OMS replicas do not race each other. Its
lock session has bounded lifetime settings (store/leadership.py): a hung process does not keep the lock, and
with it the next leader's events, for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

import asyncpg
from aiokafka import AIOKafkaProducer
from aipx.aio import cancel_and_wait, wait_event
from aipx.kafka import BatchPublisher, create_producer
from aipx.serde import encoded
from aipx.settings import KafkaSettings
from aipx.topics import ORDER_EVENTS, catalogue
from aipx.v1.orders_pb2 import OrderEvent

from aipx_oms import metrics
from aipx_oms.settings import OmsSettings
from aipx_oms.store.leadership import SessionLimits
from aipx_oms.store.postgres import OmsStore, fetch_unpublished, mark_published

log = logging.getLogger(__name__)

RELAY_LOCK_KEY = 0x41495058_524C4159  # "AIPXRLAY"
ORDER_EVENT_SCHEMA = OrderEvent.DESCRIPTOR.full_name


class OutboxRelay:
    """See the module docstring."""

    @classmethod
    def from_settings(cls, store: OmsStore, settings: OmsSettings) -> OutboxRelay:
        return cls(
            store,
            settings.postgres.dsn.get_secret_value(),
            settings.kafka,
            topic=settings.order_events_topic,
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
            batch_interval_s=settings.relay_batch_interval_s,
            retry_backoff_s=settings.relay_retry_backoff_s,
            prune_after_s=settings.relay_prune_after_s,
            prune_every_s=settings.relay_prune_every_s,
            # The lock session idles while a batch waits for the broker: allow for the producer's timeout.
            session_settings=SessionLimits(
                timeout_s=settings.leader_session_timeout_s + settings.kafka.request_timeout_ms / 1000
            ).server_settings("aipx-oms-relay"),
        )

    def __init__(
        self,
        store: OmsStore,
        dsn: str,
        kafka: KafkaSettings,
        *,
        topic: str = ORDER_EVENTS,
        batch_size: int = 500,
        poll_interval_s: float = 0.05,
        batch_interval_s: float = 0.0,
        retry_backoff_s: float = 1.0,
        lag_every_s: float = 1.0,
        prune_after_s: float = 3600.0,
        prune_every_s: float = 60.0,
        session_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.dsn = dsn
        self.kafka = kafka
        self.topic = topic
        self.key_spec = catalogue().get(ORDER_EVENTS)
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.batch_interval_s = batch_interval_s
        self.retry_backoff_s = retry_backoff_s
        self.lag_every_s = lag_every_s
        self.prune_after_s = prune_after_s
        self.prune_every_s = prune_every_s
        self.session_settings = dict(session_settings or {})
        self.pruned = 0
        self.leader = False
        self.published = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New events were committed: publish now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        self._lag_task = asyncio.create_task(self._measure_lag(), name="outbox-lag")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, self._lag_task, what="outbox relay")

    async def _run(self) -> None:
        while True:
            lock_conn: asyncpg.Connection | None = None
            producer: AIOKafkaProducer | None = None
            try:
                lock_conn = await asyncpg.connect(
                    self.dsn, timeout=5.0, server_settings=self.session_settings or None
                )
                # Marking rows published needs no fsync of its own: if a crash loses the mark, the events
                # are published again, which consumers absorb (they de-duplicate on event_id).
                await lock_conn.execute("SET synchronous_commit = off")
                # Blocks while another relay (another OMS replica) holds the lock.
                await lock_conn.execute("SELECT pg_advisory_lock($1)", RELAY_LOCK_KEY)
                self.leader = True
                producer = create_producer(self.kafka, client_id="oms-outbox-relay")
                await producer.start()
                log.info("outbox relay publishing to %s", self.topic)
                publishing = asyncio.create_task(self._publish_loop(producer, lock_conn))
                pruning = asyncio.create_task(self._prune_loop())
                try:
                    # The pruner never ends by itself; whichever ends first ends both.
                    done, _ = await asyncio.wait((publishing, pruning), return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()
                finally:
                    # The one that ended was looked at above (its error is this attempt's); stop the other.
                    running = [t for t in (publishing, pruning) if not t.done()]
                    await cancel_and_wait(*running, what="outbox relay loops")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay interrupted (%s: %s); retrying", type(exc).__name__, exc)
            finally:
                self.leader = False
                if producer is not None:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                if lock_conn is not None:
                    with contextlib.suppress(Exception):
                        await lock_conn.close()
            await asyncio.sleep(self.retry_backoff_s)

    async def _publish_loop(self, producer: AIOKafkaProducer, lock_conn: asyncpg.Connection) -> None:
        """Publish in log order on the leader connection (which also reads and marks the outbox).

        A fetched batch goes out as one record batch per partition; its rows are marked only once the broker
        acknowledged all of them. If anything fails, this loop ends and the relay starts over from the
        outbox: unmarked rows are fetched and published again (at least once)."""
        loop = asyncio.get_running_loop()
        batches: BatchPublisher[None] = BatchPublisher(producer, self.topic)
        while True:
            if lock_conn.is_closed():
                raise ConnectionError("lost the relay lock connection")
            fetched_at = loop.time()
            rows = await fetch_unpublished(lock_conn, self.batch_size)
            if not rows:
                self._wake.clear()
                await wait_event(self._wake, self.poll_interval_s)
                continue
            await batches.prepare()
            for row in rows:
                # The payload is the OrderEvent as committed: published as stored, not decoded and re-encoded.
                record = encoded(
                    row.payload, ORDER_EVENT_SCHEMA, event_id=row.event_id, event_time_ns=row.event_time_ns
                )
                key = self.key_spec.key_for(account_id=row.account_id)
                batches.add(key, record, row.event_time_ns // 1_000_000, None)
            await asyncio.gather(*await batches.flush())
            await mark_published(lock_conn, [r.log_sequence for r in rows])
            self.published += len(rows)
            metrics.EVENTS_PUBLISHED.inc(len(rows))
            if len(rows) < self.batch_size:  # caught up: let the next batch gather
                pause = fetched_at + self.batch_interval_s - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)

    async def _prune_loop(self) -> None:
        """While leader: delete outbox rows published more than `prune_after_s` ago, in bounded batches."""
        while True:
            try:
                while (deleted := await self.store.prune_published(self.prune_after_s)) > 0:
                    self.pruned += deleted
                    metrics.OUTBOX_PRUNED.inc(deleted)
            except Exception as exc:  # pruning is housekeeping; publishing goes on without it
                log.warning("outbox not pruned (%s: %s)", type(exc).__name__, exc)
            await asyncio.sleep(self.prune_every_s)

    async def _measure_lag(self) -> None:
        while True:
            try:
                count, age = await self.store.outbox_lag()
                metrics.OUTBOX_LAG_EVENTS.set(count)
                metrics.OUTBOX_LAG_SECONDS.set(age)
            except Exception as exc:  # lag is informative; its failure must not stop anything
                log.debug("outbox lag not measured: %s", exc)
            await asyncio.sleep(self.lag_every_s)
