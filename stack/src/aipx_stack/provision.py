"""Provider-independent health checks and provisioning (catalogue topics, database, bucket)."""

from __future__ import annotations

import logging

from aipx_stack.config import POSTGRES_DB
from aipx_stack.endpoints import Endpoints
from aipx_stack.probes import (
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


def ensure_catalogue_topics(bootstrap: str) -> list[str]:
    """Create the topic catalogue's topics (single replica) through the shared library; returns new ones."""
    from aipx.kafka.admin import ensure_topics

    created = run_sync(lambda: ensure_topics(bootstrap, replication_factor=1))
    if created:
        log.info("created catalogue topics: %s", ", ".join(created))
    return created


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
