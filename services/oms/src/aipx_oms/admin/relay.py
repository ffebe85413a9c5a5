"""AdminEventRelay: publishes the audit log to `admin-events` (one aipx.v1.AdminEvent per audit record, key
`{account_id}`), from the admin outbox written in each action's transaction.

Each round claims unpublished records with FOR UPDATE SKIP LOCKED (OMS processes never publish the same
record concurrently), publishes them in audit order and marks them published in the same transaction. Kafka
down: the transaction rolls back, the records wait, the relay retries with backoff. At-least-once: consumers
de-duplicate on event_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from aiokafka import AIOKafkaProducer
from aipx.aio import cancel_and_wait, wait_event
from aipx.kafka import Publisher, create_producer
from aipx.settings import KafkaSettings
from aipx.topics import ADMIN_EVENTS, catalogue
from aipx.v1 import admin_pb2
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from aipx_oms.store.admin import AuditRow, claim_unpublished_audit, mark_audit_published

log = logging.getLogger(__name__)


def audit_to_pb(row: AuditRow) -> admin_pb2.AuditRecord:
    return admin_pb2.AuditRecord(
        audit_id=row.audit_id,
        time_ns=row.time_ns,
        actor=row.actor,
        action=row.action,
        account_id=row.account_id,
        before_json=row.before_json,
        after_json=row.after_json,
        reason=row.reason,
    )


class AdminEventRelay:
    """See the module docstring."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        kafka: KafkaSettings,
        *,
        topic: str = ADMIN_EVENTS,
        poll_interval_s: float = 1.0,
        batch_size: int = 100,
    ) -> None:
        self.pool = pool
        self.kafka = kafka
        self.topic = topic
        self.key_for = catalogue().get(ADMIN_EVENTS).key_for
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self.published = 0
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """An audit record was committed: publish now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="admin-event-relay")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, what="admin event relay")
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()

    async def _run(self) -> None:
        while True:
            async for attempt in AsyncRetrying(
                wait=wait_exponential(multiplier=0.2, max=5), retry=retry_if_exception_type(Exception)
            ):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        log.info(
                            "admin event relay retrying (attempt %d)", attempt.retry_state.attempt_number
                        )
                    while await self.publish_once():
                        pass
            await wait_event(self._wake, self.poll_interval_s)
            self._wake.clear()

    async def _publisher(self) -> Publisher:
        if self._producer is None:
            producer = create_producer(self.kafka, client_id="aipx-oms-admin-events")
            await producer.start()
            self._producer = producer
        return Publisher(self._producer)

    async def publish_once(self) -> int:
        """Publish one batch of unpublished audit records; how many."""
        publisher = await self._publisher()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await claim_unpublished_audit(conn, self.batch_size)
            for row in rows:
                event = admin_pb2.AdminEvent(event_id=row.event_id, record=audit_to_pb(row))
                async with asyncio.timeout(30):
                    await publisher.publish(
                        self.topic,
                        self.key_for(account_id=row.account_id),
                        event,
                        event_id=row.event_id,
                        event_time_ns=row.time_ns,
                    )
            if rows:
                await mark_audit_published(conn, [r.audit_id for r in rows])
        self.published += len(rows)
        return len(rows)
