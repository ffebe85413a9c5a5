"""OMS test harness: a migrated database with two accounts and instruments, and an in-process OMS on a real
gRPC socket wired to the stack's PostgreSQL, Redis and Kafka (fresh topics per test)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aipx.clients.oms import OmsClient
from aipx.settings import KafkaSettings, PostgresSettings, RedisSettings
from aipx_oms.server import OmsApp
from aipx_oms.settings import DEFAULT_MIGRATIONS_DIR, OmsSettings
from aipx_oms.store.admin import (
    DEMO_INSTRUMENTS,
    add_api_key,
    set_risk_limits,
    upsert_account,
    upsert_instrument,
)
from aipx_oms.store.migrations import migrate

KEY_A = "key-account-a"
KEY_B = "key-account-b"


async def prepare_database(dsn: str) -> None:
    """Migrations, the demo instruments, accounts A and B with generous limits."""
    await migrate(dsn, DEFAULT_MIGRATIONS_DIR)
    conn = await asyncpg.connect(dsn)
    try:
        for instrument in DEMO_INSTRUMENTS:
            await upsert_instrument(conn, instrument)
        for account, key in (("acct-a", KEY_A), ("acct-b", KEY_B)):
            await upsert_account(conn, account)
            await add_api_key(conn, account, key)
            await set_risk_limits(
                conn, account, max_open_orders=100_000, rate_per_s=Decimal(100_000), rate_burst=100_000
            )
            # Margin accounts: the order-path tests are not about balances (test_money_path.py is).
            await conn.execute(
                "UPDATE accounts SET allow_negative_balances = true WHERE account_id = $1", account
            )
    finally:
        await conn.close()


@dataclass
class OmsEnv:
    """One test's OMS world: database, topics, settings; start()/stop() an in-process OMS."""

    dsn: str
    events_topic: str
    market_topic: str
    kafka: str
    redis_url: str
    app: OmsApp | None = None

    def settings(self, **overrides: Any) -> OmsSettings:
        values: dict[str, Any] = {
            "postgres": PostgresSettings(dsn=self.dsn, min_pool_size=1, max_pool_size=8),
            "redis": RedisSettings(url=self.redis_url),
            "kafka": KafkaSettings(bootstrap_servers=self.kafka, request_timeout_ms=5000, linger_ms=1),
            "grpc_host": "127.0.0.1",
            "grpc_port": 0,
            "order_events_topic": self.events_topic,
            "market_data_topic": self.market_topic,
            "market_data_offset_reset": "earliest",
            "redis_key_prefix": f"test-oms:{uuid.uuid4().hex}",
            "account_refresh_s": 0.2,
            "relay_retry_backoff_s": 0.3,
            "cancel_wait_s": 2.0,
            "shutdown_grace_s": 0.5,
        }
        values.update(overrides)
        return OmsSettings(**values)

    async def start(self, **overrides: Any) -> OmsApp:
        self.app = OmsApp(self.settings(**overrides), with_ops=False)
        await self.app.start()
        return self.app

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop(0.2)
            self.app = None

    @property
    def target(self) -> str:
        assert self.app is not None and self.app.port is not None
        return f"127.0.0.1:{self.app.port}"

    def client(self, key: str = KEY_A) -> OmsClient:
        return OmsClient(self.target, key, timeout_s=10.0)

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()


@pytest.fixture
async def oms_env(
    new_database: Callable[[], Awaitable[str]],
    new_topic: Callable[..., Awaitable[str]],
    kafka_bootstrap: str,
    redis_url: str,
) -> AsyncIterator[OmsEnv]:
    dsn = await new_database()
    await prepare_database(dsn)
    env = OmsEnv(dsn, await new_topic(3), await new_topic(1), kafka_bootstrap, redis_url)
    try:
        yield env
    finally:
        await env.stop()


@pytest.fixture
async def oms(oms_env: OmsEnv) -> AsyncIterator[OmsEnv]:
    """oms_env with the OMS started (default settings)."""
    await oms_env.start()
    yield oms_env


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll until check() is true; fail with `what` after timeout_s."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while loop.time() < until:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
