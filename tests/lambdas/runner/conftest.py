"""Helpers for runner tests: produce records, run a Runner in the background, read a topic back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aipx.functions import EventSource, FunctionManifest, FunctionSpec
from aipx.lambda_kit import EsmMode
from aipx.settings import KafkaSettings
from aipx_runner import Backoff, Runner, RunnerConfig
from aipx_runner.config import Handler, Isolation


async def produce(bootstrap: str, topic: str, values: Sequence[tuple[int, bytes]]) -> None:
    """Send (partition, value) records with an event-id header, and wait for all acknowledgements."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, partition=p, headers=[("aipx-event-id", value)])
            for p, value in values
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, n: int, within_s: float = 20) -> list[Any]:
    """The first `n` records of `topic` (fails after `within_s`)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[Any] = []
    try:
        async with asyncio.timeout(within_s):
            while len(out) < n:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    out.extend(records)
    finally:
        await consumer.stop()
    return out


async def committed(bootstrap: str, topic: str, group: str, partitions: int = 1) -> list[int | None]:
    from aiokafka import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return [await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
    finally:
        await consumer.stop()


def one_source_config(
    bootstrap: str,
    *,
    topic: str,
    dlq: str,
    group: str,
    handler: Handler | str,
    batch_size: int = 100,
    window_s: float = 0.05,
    max_retries: int = 2,
    bisect: bool = False,
    starting_position: Literal["LATEST", "TRIM_HORIZON"] = "TRIM_HORIZON",
    mode: EsmMode = "provisioned",
    isolation: Isolation = "thread",
    timeout_s: int = 30,
) -> RunnerConfig:
    """A single-function manifest (as functions.yaml would hold it) on fresh topics; `handler` is a callable
    or the import path an instance process loads (process isolation)."""
    fn = FunctionSpec(
        name="probe",
        package="tests",
        handler=handler if isinstance(handler, str) else "unused.handler",
        memory_mb=128,
        timeout_s=timeout_s,
        event_sources=(
            EventSource(
                topic="trading-signals",
                consumer_group=group,
                starting_position=starting_position,
                batch_size=batch_size,
                batching_window_s=window_s,
                max_retries=max_retries,
                bisect_on_error=bisect,
                on_failure_topic="trading-signals.dlq",
            ),
        ),
    )
    return RunnerConfig.from_manifest(
        functions_manifest=FunctionManifest(functions=(fn,)),
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        topics={"trading-signals": topic, "trading-signals.dlq": dlq},
        handlers={} if isinstance(handler, str) else {"probe": handler},
        backoff=Backoff(base_s=0.05, max_s=0.2),
        mode=mode,
        isolation=isolation,
    )


@asynccontextmanager
async def running(config: RunnerConfig) -> AsyncIterator[Runner]:
    """A Runner in the background (ready: partitions assigned); stopped gracefully on exit."""
    runner = Runner(config)
    task = asyncio.create_task(runner.run())
    try:
        await runner.wait_ready(within_s=30)
        yield runner
    finally:
        runner.stop()
        await asyncio.wait_for(task, timeout=30)


async def until(predicate: Callable[[], bool], within_s: float = 20, what: str = "condition") -> None:
    """Poll `predicate` until true; fail with `what` after `within_s`."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
