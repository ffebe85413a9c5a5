"""The runner against the real broker: commits, seek-back, retries, bisect, on-failure topic, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import uuid
from typing import Any

import pytest
from aipx.msk import item_failure, records_of
from aipx.serde import HEADER_DLQ_OFFSET, HEADER_DLQ_TOPIC, header
from prometheus_client import REGISTRY

from .conftest import committed, one_source_config, produce, read_topic, running, until

pytestmark = pytest.mark.integration


class Recorder:
    """A handler that records every delivery and fails what `fail(value, attempt)` says."""

    def __init__(self, fail: Any = None, *, raise_on: Any = None, delay_s: float = 0.0) -> None:
        self.fail = fail or (lambda value, attempt: False)
        self.raise_on = raise_on
        self.delay_s = delay_s
        self.deliveries: list[tuple[int, int, bytes]] = []
        self.events: list[dict[str, Any]] = []
        self.attempts: dict[bytes, int] = {}
        self.succeeded: list[bytes] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.threads.add(threading.current_thread().name)
            self.events.append(event)
            records = records_of(event)
            if self.delay_s:
                import time

                time.sleep(self.delay_s)
            values = [r.value or b"" for r in records]
            if self.raise_on is not None and any(self.raise_on(v) for v in values):
                for r in records:
                    self.deliveries.append((r.partition, r.offset, r.value or b""))
                raise RuntimeError("batch poisoned")
            failures = []
            for r in records:
                v = r.value or b""
                self.deliveries.append((r.partition, r.offset, v))
                self.attempts[v] = self.attempts.get(v, 0) + 1
                if self.fail(v, self.attempts[v]):
                    failures.append(item_failure(r))
                else:
                    self.succeeded.append(v)
            return {"batchItemFailures": failures}


def group() -> str:
    return f"runner-test-{uuid.uuid4().hex[:8]}"


async def test_exact_msk_event_and_everything_committed(kafka_bootstrap: str, new_topic: Any) -> None:
    topic, dlq, g = await new_topic(2), await new_topic(1), group()
    handler = Recorder()
    config = one_source_config(kafka_bootstrap, topic=topic, dlq=dlq, group=g, handler=handler)
    values = [(i % 2, f"v{i}".encode()) for i in range(20)]
    await produce(kafka_bootstrap, topic, values)
    async with running(config) as runner:
        await until(lambda: len(handler.succeeded) >= 20, what="20 records processed")
        await until(lambda: runner.pollers[0].stats.committed == {f"{topic}-0": 10, f"{topic}-1": 10})
    event = handler.events[0]
    assert event["eventSource"] == "aws:kafka" and set(event["records"]) <= {f"{topic}-0", f"{topic}-1"}
    first = next(iter(event["records"].values()))[0]
    assert {"topic", "partition", "offset", "timestamp", "timestampType", "value", "headers"} <= set(first)
    assert "key" not in first  # produced without a key: omitted, as in MSK events
    assert sorted(handler.succeeded) == sorted(v for _, v in values)
    assert await committed(kafka_bootstrap, topic, g, 2) == [10, 10]
    assert len(handler.threads) == 1 and next(iter(handler.threads)).startswith("lambda-probe")
    invocations = REGISTRY.get_sample_value(
        "aipx_runner_invocations_total", {"function": "probe", "topic": topic, "outcome": "ok"}
    )
    assert invocations is not None and invocations >= 1
    assert REGISTRY.get_sample_value("aipx_runner_records_total", {"function": "probe", "topic": topic}) == 20


async def test_events_stay_under_the_payload_limit_and_lose_nothing(
    kafka_bootstrap: str, new_topic: Any
) -> None:
    """A batch stops growing before its event would exceed Lambda's payload limit (6 MB in AWS; 20 KB here):
    the records that did not fit come in the next event, in order, none twice and none lost."""
    topic, dlq, g = await new_topic(2), await new_topic(1), group()
    handler = Recorder()
    limit = 20_000
    config = dataclasses.replace(
        one_source_config(kafka_bootstrap, topic=topic, dlq=dlq, group=g, handler=handler, batch_size=500),
        max_payload_bytes=limit,
    )
    values = [(i % 2, f"{i:05d}".encode() * 60) for i in range(400)]  # 300 bytes each, ~400 in the event
    await produce(kafka_bootstrap, topic, values)
    async with running(config) as runner:
        await until(lambda: runner.pollers[0].stats.committed == {f"{topic}-0": 200, f"{topic}-1": 200})
    assert len(handler.events) >= 400 * 400 // limit, "split by size, not by the batch size of 500"
    sizes = [len(json.dumps(event, separators=(",", ":"))) for event in handler.events]  # as AWS sends it
    assert max(sizes) <= limit, sizes
    for partition in (0, 1):
        offsets = [o for p, o, _ in handler.deliveries if p == partition]
        assert offsets == list(range(200)), "each partition in order, every record once"
    assert sorted(handler.succeeded) == sorted(v for _, v in values)


async def test_partial_failure_commits_below_it_and_redelivers_from_it(
    kafka_bootstrap: str, new_topic: Any
) -> None:
    topic, dlq, g = await new_topic(1), await new_topic(1), group()
    handler = Recorder(fail=lambda v, attempt: v == b"v5" and attempt == 1)
    config = one_source_config(kafka_bootstrap, topic=topic, dlq=dlq, group=g, handler=handler, batch_size=10)
    await produce(kafka_bootstrap, topic, [(0, f"v{i}".encode()) for i in range(10)])
    async with running(config) as runner:
        await until(lambda: runner.pollers[0].stats.committed.get(f"{topic}-0") == 10, what="commit 10")
    offsets = [o for _, o, _ in handler.deliveries]
    # First delivery 0..9 (5 fails), then a redelivery starting exactly at 5; 0..4 never come again.
    assert offsets[:10] == list(range(10))
    assert offsets[10:] == list(range(5, 10))
    assert handler.attempts[b"v4"] == 1 and handler.attempts[b"v5"] == 2
    assert runner.pollers[0].stats.retries == 1


async def test_exhausted_retries_send_only_the_failed_record_to_the_on_failure_topic(
    kafka_bootstrap: str, new_topic: Any
) -> None:
    topic, dlq, g = await new_topic(1), await new_topic(1), group()
    handler = Recorder(fail=lambda v, attempt: v == b"bad")
    config = one_source_config(
        kafka_bootstrap, topic=topic, dlq=dlq, group=g, handler=handler, max_retries=2, batch_size=10
    )
    await produce(kafka_bootstrap, topic, [(0, b"a"), (0, b"bad"), (0, b"c")])
    async with running(config) as runner:
        await until(lambda: runner.pollers[0].stats.committed.get(f"{topic}-0") == 3, what="commit past bad")
        assert runner.pollers[0].stats.dead_lettered == 1
    assert handler.attempts[b"bad"] == 3  # initial + max_retries
    [dead] = await read_topic(kafka_bootstrap, dlq, 1)
    headers = list(dead.headers)
    assert dead.value == b"bad"
    assert header(headers, HEADER_DLQ_TOPIC) == topic and header(headers, HEADER_DLQ_OFFSET) == "1"
    assert header(headers, "aipx-event-id") == "bad"
    assert sorted(handler.succeeded) == [b"a", b"c", b"c", b"c"]  # c was redelivered with bad


async def test_raising_handler_is_bisected_down_to_the_poison_record(
    kafka_bootstrap: str, new_topic: Any
) -> None:
    topic, dlq, g = await new_topic(1), await new_topic(1), group()
    handler = Recorder(raise_on=lambda v: v == b"poison")
    config = one_source_config(
        kafka_bootstrap,
        topic=topic,
        dlq=dlq,
        group=g,
        handler=handler,
        bisect=True,
        max_retries=1,
        batch_size=8,
    )
    values = [(0, f"ok{i}".encode()) for i in range(8)]
    values[5] = (0, b"poison")
    await produce(kafka_bootstrap, topic, values)
    async with running(config) as runner:
        await until(lambda: runner.pollers[0].stats.committed.get(f"{topic}-0") == 8, what="commit all 8")
    [dead] = await read_topic(kafka_bootstrap, dlq, 1)
    assert dead.value == b"poison"
    assert sorted(set(handler.succeeded)) == sorted(v for _, v in values if v != b"poison")
    batch_sizes = [sum(len(rs) for rs in e["records"].values()) for e in handler.events]
    assert batch_sizes[0] == 8 and 1 in batch_sizes  # split down to the single poison record


async def test_raising_handler_without_bisect_retries_the_batch_then_dead_letters_it(
    kafka_bootstrap: str, new_topic: Any
) -> None:
    topic, dlq, g = await new_topic(1), await new_topic(1), group()
    handler = Recorder(raise_on=lambda v: v == b"x1")
    config = one_source_config(
        kafka_bootstrap, topic=topic, dlq=dlq, group=g, handler=handler, max_retries=1, batch_size=2
    )
    await produce(kafka_bootstrap, topic, [(0, b"x0"), (0, b"x1"), (0, b"x2")])
    async with running(config) as runner:
        await until(lambda: runner.pollers[0].stats.committed.get(f"{topic}-0") == 3, what="commit all")
    dead = await read_topic(kafka_bootstrap, dlq, 2)
    assert [d.value for d in dead] == [b"x0", b"x1"]  # the whole failing batch, after 1 retry
    assert "batch poisoned" in (header(list(dead[0].headers), "aipx-dlq-error") or "")
    assert handler.succeeded == [b"x2"]


async def test_latest_skips_what_was_there_and_trim_horizon_reads_it(
    kafka_bootstrap: str, new_topic: Any
) -> None:
    topic, dlq = await new_topic(1), await new_topic(1)
    await produce(kafka_bootstrap, topic, [(0, b"old")])
    latest, horizon = Recorder(), Recorder()
    cfg_latest = one_source_config(
        kafka_bootstrap, topic=topic, dlq=dlq, group=group(), handler=latest, starting_position="LATEST"
    )
    cfg_horizon = one_source_config(kafka_bootstrap, topic=topic, dlq=dlq, group=group(), handler=horizon)
    async with running(cfg_latest), running(cfg_horizon):
        await produce(kafka_bootstrap, topic, [(0, b"new")])
        await until(lambda: len(latest.succeeded) >= 1 and len(horizon.succeeded) >= 2, what="both")
    assert latest.succeeded == [b"new"] and horizon.succeeded == [b"old", b"new"]


async def test_graceful_stop_finishes_and_commits_the_in_flight_batch(
    kafka_bootstrap: str, new_topic: Any
) -> None:
    topic, dlq, g = await new_topic(1), await new_topic(1), group()
    handler = Recorder(delay_s=0.5)
    config = one_source_config(kafka_bootstrap, topic=topic, dlq=dlq, group=g, handler=handler, batch_size=50)
    await produce(kafka_bootstrap, topic, [(0, f"s{i}".encode()) for i in range(5)])
    async with running(config):
        await until(lambda: len(handler.threads) == 1, what="an invocation in flight")
    # stop() was called while the handler slept: the batch completed and was committed before closing.
    assert len(handler.succeeded) == 5
    assert await committed(kafka_bootstrap, topic, g) == [5]
    again = Recorder()
    config2 = one_source_config(kafka_bootstrap, topic=topic, dlq=dlq, group=g, handler=again)
    async with running(config2):
        await produce(kafka_bootstrap, topic, [(0, b"after")])
        await until(lambda: len(again.succeeded) >= 1, what="the record produced after restart")
        await asyncio.sleep(0.2)
    assert again.succeeded == [b"after"]
