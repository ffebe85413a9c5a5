"""pytest fixtures giving tests a real Kafka, PostgreSQL, Redis and S3 server (load with
`pytest_plugins = ["aipx_stack.pytest_plugin"]`).

Session: `stack`, `stack_endpoints`, `kafka_bootstrap`, `postgres_dsn`, `redis_url`, `s3_endpoint`.
Per test: `new_topic`, `new_database`, `new_bucket` (unique names, removed after the test).

The stack is started idempotently and shared: it is left running after the session (several engineers and
sessions use it) unless this session started it and AIPX_STACK_TEARDOWN=1. A component that cannot be
provided FAILS the tests that need it, with what is missing and how to install it; nothing is skipped.
The factories are awaited in async tests (`topic = await new_topic(3)`); sync tests call `.sync(...)`.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from aipx_stack import scratch
from aipx_stack.base import Stack
from aipx_stack.endpoints import Endpoints, S3Endpoint
from aipx_stack.errors import StackError
from aipx_stack.probes import run_sync
from aipx_stack.select import open_stack


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run tests marked `disruptive` (they stop/restart components) after all the others."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


def _slug(request: pytest.FixtureRequest, limit: int) -> str:
    name = getattr(request.node, "originalname", None) or request.node.name
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")[:limit] or "test"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The running stack (native, containers or external); `.endpoints`, `.stop/.start/.restart(name)`."""
    mode = os.environ.get("AIPX_STACK_MODE") or "auto"
    problem: str | None = None
    try:
        handle = open_stack()
        was_up = handle.is_up()
        handle.up()
    except StackError as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(
            f"the AIPX stack (mode {mode}) could not be provided, so tests needing Kafka/PostgreSQL/Redis/S3 "
            f"cannot run:\n{problem}\n(`uv run aipx-stack up` starts it by hand and shows the same error; "
            "component logs are in .aipx/stack/<component>/)",
            pytrace=False,
        )
    patch = pytest.MonkeyPatch()
    for key, value in handle.endpoints.as_env(aws=True).items():
        patch.setenv(key, value)
    try:
        yield handle
    finally:
        patch.undo()
        if not was_up and os.environ.get("AIPX_STACK_TEARDOWN") == "1" and handle.mode != "external":
            handle.down()


@pytest.fixture(scope="session")
def stack_endpoints(stack: Stack) -> Endpoints:
    """All endpoints of the running stack."""
    return stack.endpoints


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: Stack) -> str:
    """Kafka bootstrap servers, e.g. '127.0.0.1:19092'."""
    return stack.endpoints.kafka_bootstrap


@pytest.fixture(scope="session")
def postgres_dsn(stack: Stack) -> str:
    """DSN of the shared `aipx` database (use `new_database` for a private one)."""
    return stack.endpoints.postgres_dsn


@pytest.fixture(scope="session")
def redis_url(stack: Stack) -> str:
    """Redis URL, e.g. 'redis://127.0.0.1:16379/0'."""
    return stack.endpoints.redis_url


@pytest.fixture(scope="session")
def s3_endpoint(stack: Stack) -> S3Endpoint:
    """S3 endpoint URL, default bucket, region and credentials (`.client()` gives a boto3 client)."""
    return stack.endpoints.s3


class TopicFactory:
    """`await new_topic(partitions=1, *, prefix=None, config=None, name=None) -> name`: a fresh topic
    (replication 1), named `<prefix>-<random>`, or `name` exactly (a DLQ beside another scratch topic:
    `f"{topic}.dlq"`, the catalogue's naming).

    Deleted after the test. Sync tests call `new_topic.sync(...)`. Time-based retention is off unless `config`
    sets it: tests publish records stamped with fixed historical event times (the platform's producers use the
    event time as the Kafka timestamp), and under the broker's default 7-day retention such a record can be
    deleted by the next retention check (every 60 s on the local stack) while the test is still reading it.
    """

    DEFAULT_CONFIG: Mapping[str, str] = {"retention.ms": "-1"}

    def __init__(self, bootstrap: str, slug: str) -> None:
        self.bootstrap = bootstrap
        self.slug = slug
        self.created: list[str] = []

    async def __call__(
        self,
        partitions: int = 1,
        *,
        prefix: str | None = None,
        config: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> str:
        if partitions < 1:
            raise ValueError(f"a topic needs at least one partition, got {partitions}")
        name = name or f"{prefix or 'test-' + self.slug}-{uuid.uuid4().hex[:10]}"
        await self._create(name, partitions, {**self.DEFAULT_CONFIG, **(config or {})})
        self.created.append(name)
        return name

    def sync(
        self,
        partitions: int = 1,
        *,
        prefix: str | None = None,
        config: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> str:
        """The same for sync code."""
        return run_sync(lambda: self(partitions, prefix=prefix, config=config, name=name))

    async def _create(self, name: str, partitions: int, config: dict[str, str]) -> None:
        await scratch.create_topics(self.bootstrap, {name: partitions}, config=config)

    def cleanup(self) -> None:
        if not self.created:
            return
        try:
            run_sync(lambda: scratch.delete_topics(self.bootstrap, self.created))
        except Exception as exc:
            warnings.warn(f"could not delete test topics {self.created}: {exc}", stacklevel=1)


@pytest.fixture
def new_topic(stack: Stack, request: pytest.FixtureRequest) -> Iterator[TopicFactory]:
    """Factory for uniquely named topics (replication 1); they are deleted after the test."""
    factory = TopicFactory(stack.endpoints.kafka_bootstrap, _slug(request, 60))
    yield factory
    factory.cleanup()


class DatabaseFactory:
    """`await new_database(prefix=None) -> dsn`: a fresh, empty database, dropped afterwards (`.sync()`)."""

    def __init__(self, endpoints: Endpoints, slug: str) -> None:
        self.endpoints = endpoints
        self.slug = slug
        self.created: list[str] = []

    async def __call__(self, prefix: str | None = None) -> str:
        base = re.sub(r"[^a-z0-9_]+", "_", (prefix or f"t_{self.slug}").lower())[:50]
        name = f"{base}_{uuid.uuid4().hex[:10]}"
        dsn = await scratch.create_database(self.endpoints.postgres_dsn, name)
        self.created.append(name)
        return dsn

    def sync(self, prefix: str | None = None) -> str:
        """The same for sync code."""
        return run_sync(lambda: self(prefix))

    def _drop(self, name: str) -> None:
        run_sync(lambda: scratch.drop_database(self.endpoints.postgres_dsn, name))

    def cleanup(self) -> None:
        for name in self.created:
            try:
                self._drop(name)
            except Exception as exc:
                warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=1)


@pytest.fixture
def new_database(stack: Stack, request: pytest.FixtureRequest) -> Iterator[DatabaseFactory]:
    """Factory for empty databases (returns their DSN); they are dropped after the test."""
    factory = DatabaseFactory(stack.endpoints, _slug(request, 40).replace("-", "_"))
    yield factory
    factory.cleanup()


class BucketFactory:
    """`await new_bucket(prefix=None) -> name`: a fresh bucket, emptied and deleted afterwards (`.sync()`)."""

    def __init__(self, s3: S3Endpoint, slug: str) -> None:
        self.s3 = s3
        self.slug = slug
        self.created: list[str] = []
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.s3.client()
        return self._client

    async def __call__(self, prefix: str | None = None) -> str:
        return await asyncio.to_thread(self.sync, prefix)

    def sync(self, prefix: str | None = None) -> str:
        """The same for sync code."""
        base = re.sub(r"[^a-z0-9-]+", "-", (prefix or f"t-{self.slug}").lower()).strip("-")[:50] or "t"
        name = f"{base}-{uuid.uuid4().hex[:10]}"
        kwargs: dict[str, Any] = {"Bucket": name}
        if self.s3.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.s3.region}
        self.client.create_bucket(**kwargs)
        self.created.append(name)
        return name

    def cleanup(self) -> None:
        for name in self.created:
            try:
                paginator = self.client.get_paginator("list_object_versions")
                for page in paginator.paginate(Bucket=name):
                    doomed = [
                        {"Key": v["Key"], "VersionId": v["VersionId"]}
                        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                    ]
                    if doomed:
                        self.client.delete_objects(Bucket=name, Delete={"Objects": doomed, "Quiet": True})
                self.client.delete_bucket(Bucket=name)
            except Exception as exc:
                warnings.warn(f"could not delete test bucket {name}: {exc}", stacklevel=1)


@pytest.fixture
def new_bucket(stack: Stack, request: pytest.FixtureRequest) -> Iterator[BucketFactory]:
    """Factory for empty buckets; they are emptied and deleted after the test."""
    factory = BucketFactory(stack.endpoints.s3, _slug(request, 40))
    yield factory
    factory.cleanup()
