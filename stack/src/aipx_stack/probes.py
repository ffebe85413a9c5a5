"""Health probes against real endpoints; each returns None when healthy, else why not."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, also when called inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    # Inside a loop (an async test calling stack.restart(...)): run on a private loop in a worker thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aipx-stack") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def kafka_admin(bootstrap: str, *, request_timeout_ms: int = 5000) -> Any:
    """An aiokafka admin client configured through the shared library (call `await admin.start()`)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aipx.kafka.clients import client_config
    from aipx.settings import KafkaSettings

    settings = KafkaSettings(bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms)
    return AIOKafkaAdminClient(**client_config(settings, client_id="stack-admin"))


def tcp_open(address: str, timeout_s: float = 1.0) -> bool:
    """True when a TCP connection to `host:port` succeeds."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


async def _kafka(bootstrap: str, timeout_s: float) -> str | None:
    # A closed port is answered at once without aiokafka logging connection errors at ERROR level.
    first = bootstrap.split(",", maxsplit=1)[0].strip()
    if not tcp_open(first, timeout_s):
        return f"Kafka at {bootstrap}: nothing accepts connections on {first}"
    admin = kafka_admin(bootstrap, request_timeout_ms=max(1000, int(timeout_s * 1000)))
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
        async with asyncio.timeout(timeout_s):
            cluster = await admin.describe_cluster()
    except Exception as exc:
        return f"Kafka at {bootstrap} not answering: {type(exc).__name__}: {exc}"
    finally:
        await admin.close()
    if not cluster.get("brokers"):
        return f"Kafka at {bootstrap} reports no brokers yet"
    return None


def probe_kafka(bootstrap: str, timeout_s: float = 3.0) -> str | None:
    """A metadata round trip through an admin client."""
    return run_sync(lambda: _kafka(bootstrap, timeout_s))


async def _postgres(dsn: str, timeout_s: float) -> str | None:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=timeout_s)
    except Exception as exc:
        return f"PostgreSQL not answering: {type(exc).__name__}: {exc}"
    try:
        value = await conn.fetchval("SELECT 1", timeout=timeout_s)
    finally:
        await conn.close()
    return None if value == 1 else f"PostgreSQL answered SELECT 1 with {value!r}"


def probe_postgres(dsn: str, timeout_s: float = 3.0) -> str | None:
    """Connect and run SELECT 1."""
    return run_sync(lambda: _postgres(dsn, timeout_s))


async def _redis(url: str, timeout_s: float) -> str | None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        pong = await client.ping()
    except Exception as exc:
        return f"Redis not answering: {type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    return None if pong else "Redis did not answer PING"


def probe_redis(url: str, timeout_s: float = 3.0) -> str | None:
    """PING."""
    return run_sync(lambda: _redis(url, timeout_s))


def probe_http_status(url: str, *, method: str = "GET", timeout_s: float = 3.0) -> int | str:
    """The HTTP status of a request to `url`, or why there was none."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError) as exc:
        return f"{url} not answering: {type(exc).__name__}: {exc}"


def probe_http(url: str, timeout_s: float = 3.0) -> str | None:
    """An HTTP GET answered with any status below 500."""
    status = probe_http_status(url, timeout_s=timeout_s)
    if isinstance(status, str):
        return status
    return None if status < 500 else f"{url} answered HTTP {status}"
