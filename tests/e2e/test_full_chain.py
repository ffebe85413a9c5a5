"""The whole platform on the local stack, as `./aipx run` starts it:

simulator -> ingestion -> market-data-raw -> strategy -> trading-signals -> cognitive -> OMS (gRPC)
-> order-events -> notification (webhook inbox) and recorder (Parquet on S3).

Asserts the order the chain placed, the notification received for its events, and the Parquet rows written
for them. Isolated from other runs by its own database, Redis database, bucket and ports; it shares the
catalogue topics, as a real deployment does.

Deterministic under load: the platform starts only once every runner is ready (partitions assigned, LATEST
resolved, so no early record is skipped); every step waits on its condition with a generous deadline; and
the order's events are read again at each probe (an order found accepted is filled later: only then is
there an event to notify).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from aipx.settings import S3Settings
from aipx.topics import ORDER_EVENTS, TRADING_SIGNALS
from aipx_recorder.reader import read_topic
from aipx_stack.endpoints import Endpoints
from aipx_stack.platform import Platform, Ports
from aipx_stack.pytest_plugin import BucketFactory, DatabaseFactory

pytestmark = pytest.mark.integration


@pytest.fixture
async def platform(
    stack_endpoints: Endpoints,
    new_database: DatabaseFactory,
    new_bucket: BucketFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Platform]:
    dsn = await new_database(prefix="e2e")
    bucket = await new_bucket(prefix="e2e")
    redis_url = stack_endpoints.redis_url.rsplit("/", 1)[0] + "/9"
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    ports = Ports.ephemeral()
    p = Platform(
        stack_endpoints,
        ports=ports,
        log_dir=tmp_path_factory.mktemp("platform-logs"),
        extra_env={
            "AIPX_POSTGRES_DSN": dsn,
            "AIPX_REDIS_URL": redis_url,
            "AIPX_S3_BUCKET": bucket,
            # flush the lake quickly so the test sees its files
            "AIPX_RECORDER_MAX_AGE_S": "1",
        },
    )
    p.e2e_dsn = dsn  # type: ignore[attr-defined]
    p.e2e_bucket = bucket  # type: ignore[attr-defined]
    try:
        await p.start()
        yield p
    finally:
        await p.stop()


async def wait_for(what: str, platform: Platform, probe: object, timeout_s: float) -> object:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        assert not platform.crashed(), f"processes exited: {platform.crashed()}\n" + "\n".join(
            f"--- {n}\n{platform.tail(n)}" for n in platform.crashed()
        )
        try:
            result = await probe()  # type: ignore[operator]
            if result:
                return result
        except Exception as exc:  # the lake has no file yet, etc.
            last_error = exc
        await asyncio.sleep(2)
    logs = "\n".join(f"--- {n}\n{platform.tail(n, 15)}" for n in platform.procs)
    pytest.fail(f"timed out waiting for {what} (last error: {last_error!r})\n{logs}")


@pytest.mark.timeout(1500)  # the sum of the deadlines below, plus the platform's start
async def test_signal_chain_places_an_order_notifies_and_records_it(platform: Platform) -> None:
    dsn: str = platform.e2e_dsn  # type: ignore[attr-defined]
    bucket: str = platform.e2e_bucket  # type: ignore[attr-defined]
    settings = S3Settings()
    conn = await asyncpg.connect(dsn)
    try:

        async def orders_from_signals() -> list[asyncpg.Record]:
            return list(
                await conn.fetch(
                    "SELECT order_id, client_order_id, status FROM orders WHERE client_order_id LIKE 'sig-%'"
                )
            )

        # Deadlines are generous (the whole platform shares two cores with the rest of the suite); each wait
        # ends as soon as its condition holds.
        orders = await wait_for(
            "an order placed by the cognitive function", platform, orders_from_signals, 400
        )
        assert isinstance(orders, list)

        async def event_ids() -> set[str]:
            """Every event of the chain's orders so far. Read again at each probe: an order found accepted
            is filled later, and only some event types are notified (order.filled, not order.accepted), so
            a snapshot taken when the order appeared can hold no notifiable event at all."""
            rows = await conn.fetch(
                "SELECT e.event_id FROM order_events e JOIN orders o ON o.order_id = e.order_id "
                "WHERE o.client_order_id LIKE 'sig-%'"
            )
            return {str(r["event_id"]) for r in rows}

        events = await wait_for("order events in the OMS event log", platform, event_ids, 120)
        assert isinstance(events, set) and events

        async def notified() -> list[dict[str, object]]:
            ours = await event_ids()
            bodies = [json.loads(str(n["body"])) for n in platform.inbox.received]
            return [b for b in bodies if b.get("event_id") in ours]

        notes = await wait_for("a notification for the orders' events", platform, notified, 240)
        assert isinstance(notes, list) and notes
        assert all(str(n["event_type"]).startswith("order.") for n in notes)
        ours = await event_ids()
        signed = [n for n in platform.inbox.received if json.loads(str(n["body"])).get("event_id") in ours]
        assert signed and all(
            "X-AIPX-Signature" in n["headers"] or "x-aipx-signature" in n["headers"] for n in signed
        )

        async def recorded_events() -> set[str]:
            table = await asyncio.to_thread(read_topic, ORDER_EVENTS, settings=settings, bucket=bucket)
            return {str(v) for v in table.column("event_id").to_pylist()} & await event_ids()

        rows = await wait_for("the order events in the Parquet lake", platform, recorded_events, 240)
        assert isinstance(rows, set) and rows
    finally:
        await conn.close()

    signals = await asyncio.to_thread(read_topic, TRADING_SIGNALS, settings=settings, bucket=bucket)
    assert signals.num_rows > 0
    assert {"signal_id", "strategy_id", "symbol", "direction"} <= set(signals.column_names)
