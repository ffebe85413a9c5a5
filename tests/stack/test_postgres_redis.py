"""PostgreSQL and Redis of the stack answer real round trips."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
import pytest
import redis.asyncio as aioredis
from aipx_stack.pytest_plugin import DatabaseFactory

pytestmark = pytest.mark.integration


async def test_postgres_round_trip_in_the_shared_database(postgres_dsn: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == "aipx"
        assert await conn.fetchval("SELECT current_user") == "aipx"
        # The settings the OMS benchmarks rely on: durable commits and room for connection pools.
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert int(await conn.fetchval("SHOW max_connections")) == 200
    finally:
        await conn.close()


async def test_new_database_is_private_and_keeps_exact_numerics(new_database: DatabaseFactory) -> None:
    dsn = await new_database()
    name = dsn.rsplit("/", 1)[1]
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == name
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        await conn.execute("CREATE TABLE fills (id uuid PRIMARY KEY, price numeric(38, 18) NOT NULL)")
        fill_id = uuid.uuid4()
        await conn.execute("INSERT INTO fills VALUES ($1, $2)", fill_id, Decimal("27123.123456789012345678"))
        price = await conn.fetchval("SELECT price FROM fills WHERE id = $1", fill_id)
        assert price == Decimal("27123.123456789012345678")
    finally:
        await conn.close()


async def test_new_database_sync_form_and_cleanup_drop(
    new_database: DatabaseFactory, postgres_dsn: str
) -> None:
    # .sync() also works inside a running loop (it runs on a private loop in a worker thread).
    name = new_database.sync("custom prefix").rsplit("/", 1)[1]
    assert name.startswith("custom_prefix_")
    conn = await asyncpg.connect(postgres_dsn)
    try:
        count = "SELECT count(*) FROM pg_database WHERE datname = $1"
        assert await conn.fetchval(count, name) == 1
        new_database.cleanup()
        assert await conn.fetchval(count, name) == 0
    finally:
        await conn.close()
    new_database.created.clear()


async def test_redis_round_trip(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    key = f"test:stack:{uuid.uuid4().hex}"
    try:
        assert await client.set(key, b"hello", ex=30) is True
        assert await client.get(key) == b"hello"
        assert 0 < await client.ttl(key) <= 30
        assert await client.incr(f"{key}:n") == 1
        assert await client.incr(f"{key}:n") == 2
    finally:
        await client.delete(key, f"{key}:n")
        await client.aclose()
