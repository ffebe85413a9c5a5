"""Scratch topics and databases on the stack, for tests (the pytest plugin's factories) and benchmarks.

Created fresh under unique names by the caller, removed afterwards. Topic creation returns once every
partition has a leader, so producers can send at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from aipx_stack.endpoints import database_dsn
from aipx_stack.errors import StackError
from aipx_stack.probes import kafka_admin


async def create_topics(
    bootstrap: str,
    partitions: Mapping[str, int],
    *,
    config: Mapping[str, str] | None = None,
    leader_timeout_s: float = 5.0,
) -> None:
    """Create topics (name -> partition count, replication 1) with `config`, and wait for their leaders."""
    from aiokafka.admin import NewTopic

    if any(p < 1 for p in partitions.values()):
        raise ValueError(f"a topic needs at least one partition: {dict(partitions)}")
    admin = kafka_admin(bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, count, 1, topic_configs=dict(config or {})) for name, count in partitions.items()]
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + leader_timeout_s
        while True:
            described: list[dict[str, Any]] = await admin.describe_topics(list(partitions))
            led = {
                d.get("topic"): d.get("partitions", [])
                for d in described
                if len(d.get("partitions", [])) == partitions.get(d.get("topic", ""), -1)
                and all(p.get("leader", -1) >= 0 for p in d.get("partitions", []))
            }
            if len(led) == len(partitions):
                return
            if loop.time() > deadline:
                missing = sorted(set(partitions) - set(led))
                raise StackError(f"topics {missing} were created but have partitions without a leader")
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Delete topics (all of them in one request)."""
    if not names:
        return
    admin = kafka_admin(bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()


async def create_database(dsn: str, name: str) -> str:
    """CREATE DATABASE `name` on `dsn`'s server; returns the new database's DSN."""
    await _execute(dsn, f'CREATE DATABASE "{name}"')
    return database_dsn(dsn, name)


async def drop_database(dsn: str, name: str) -> None:
    """DROP DATABASE `name` (if it exists) on `dsn`'s server, disconnecting whoever is still connected."""
    await _execute(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _execute(dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
