"""Provider-independent health checks and provisioning (catalogue topics, database, bucket)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aipx_stack.config import POSTGRES_DB
from aipx_stack.endpoints import Endpoints
from aipx_stack.errors import StackError
from aipx_stack.probes import (
    kafka_admin,
    probe_http,
    probe_http_status,
    probe_kafka,
    probe_postgres,
    probe_redis,
    run_sync,
)

log = logging.getLogger(__name__)


def probe_component(name: str, endpoints: Endpoints) -> str | None:
    """None when component `name` answers a real request at `endpoints`, else why not."""
    if name == "kafka":
        return probe_kafka(endpoints.kafka_bootstrap)
    if name == "postgres":
        return probe_postgres(endpoints.postgres_dsn)
    if name == "redis":
        return probe_redis(endpoints.redis_url)
    if name == "s3":
        return probe_http(endpoints.s3_endpoint_url)
    raise ValueError(f"unknown component {name!r}")


def ensure_catalogue_topics(bootstrap: str, timeout_s: float = 60.0) -> list[str]:
    """Create the topic catalogue's topics (single replica) through the shared library; returns new ones.

    Returns once the broker's metadata lists every catalogue topic with all its partitions led (a fresh
    KRaft broker answers metadata requests a moment after the controller committed the creation).
    """
    from aipx.kafka.admin import ensure_topics
    from aipx.topics import catalogue

    async def create_and_wait() -> list[str]:
        created = await ensure_topics(bootstrap, replication_factor=1)
        expected = {spec.name: spec.partitions for spec in catalogue().topics}
        admin = kafka_admin(bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            deadline = asyncio.get_running_loop().time() + timeout_s
            while True:
                missing = await _unready_topics(admin, expected)
                if not missing:
                    return created
                if asyncio.get_running_loop().time() > deadline:
                    raise StackError(
                        f"Kafka at {bootstrap}: catalogue topics not ready after {timeout_s:.0f}s: "
                        + ", ".join(sorted(missing))
                    )
                await asyncio.sleep(0.2)
        finally:
            await admin.close()

    created = run_sync(create_and_wait)
    if created:
        log.info("created catalogue topics: %s", ", ".join(created))
    return created


async def _unready_topics(admin: Any, expected: dict[str, int]) -> set[str]:
    """Names in `expected` whose metadata is missing, has another partition count, or lacks a leader."""
    listed = set(await admin.list_topics())
    present = [name for name in expected if name in listed]
    unready = set(expected) - listed
    if present:
        for topic in await admin.describe_topics(present):
            partitions = topic.get("partitions", [])
            name = topic.get("topic", "")
            led = all(p.get("leader", -1) >= 0 for p in partitions)
            if topic.get("error_code", 0) != 0 or len(partitions) != expected.get(name, -1) or not led:
                unready.add(name)
    return unready


def ensure_database(admin_dsn: str, database: str = POSTGRES_DB) -> bool:
    """CREATE DATABASE `database` unless it exists; True if created."""

    async def create() -> bool:
        import asyncpg

        conn = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
                return False
            await conn.execute(f'CREATE DATABASE "{database}"')
            return True
        finally:
            await conn.close()

    return run_sync(create)


def ensure_bucket(endpoints: Endpoints) -> bool:
    """Create the stack's bucket unless it exists; True if it was created."""
    # An anonymous HEAD answers 200 on the moto server when the bucket exists, without loading boto3.
    if probe_http_status(f"{endpoints.s3_endpoint_url}/{endpoints.s3_bucket}", method="HEAD") == 200:
        return False
    from botocore.exceptions import ClientError

    client = endpoints.s3.client()
    kwargs: dict[str, object] = {"Bucket": endpoints.s3_bucket}
    if endpoints.s3_region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": endpoints.s3_region}
    try:
        client.create_bucket(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return False
        raise
    return True


def provision(name: str, endpoints: Endpoints) -> None:
    """What a healthy component must hold before tests use it."""
    if name == "kafka":
        ensure_catalogue_topics(endpoints.kafka_bootstrap)
    elif name == "postgres":
        ensure_database(endpoints.postgres_dsn_for("postgres"))
    elif name == "s3":
        ensure_bucket(endpoints)
