"""Process isolation against the real broker and Redis: a handler that kills its own process (or overruns its
timeout) on a poison record, under an on-demand mapping, where AWS would retry the batch until it expires.
Each attempt runs in a fresh instance process; the kit counts the attempts in Redis before each record runs,
so after the first try and `max_retries` retries the record is dead-lettered and the partition goes on."""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aipx.lambda_kit import ON_DEMAND
from aipx.serde import (
    HEADER_DLQ_CONSUMER,
    HEADER_DLQ_ERROR,
    HEADER_DLQ_ERROR_TYPE,
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_TOPIC,
    HEADER_EVENT_ID,
    encode,
    header,
)
from aipx.v1.signals_pb2 import TradingSignal

from .conftest import one_source_config, read_topic, running, until
from .test_runner_broker import group

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
MAX_RETRIES = 2


async def produce_signals(bootstrap: str, topic: str, ids: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for signal_id in ids:
            enc = encode(
                TradingSignal(signal_id=signal_id, symbol="BTC-USDT"), event_id=signal_id, event_time_ns=1
            )
            await (await producer.send(topic, enc.value, key=b"BTC-USDT", partition=0, headers=enc.headers))
    finally:
        await producer.stop()


def starts(out: Path) -> dict[str, list[int]]:
    """signal id -> pids of the instance processes that started it, in order."""
    seen: dict[str, list[int]] = defaultdict(list)
    if out.exists():
        for line in out.read_text().splitlines():
            pid, _, signal_id = line.split()
            seen[signal_id].append(int(pid))
    return seen


@pytest.mark.parametrize(("poison", "timeout_s"), [("poison", 30), ("hang", 3)], ids=["sigkill", "timeout"])
async def test_a_record_that_ends_its_instance_is_dead_lettered_after_its_retries_and_the_partition_goes_on(
    *,
    poison: str,
    timeout_s: int,
    kafka_bootstrap: str,
    redis_url: str,
    new_topic: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic, dlq, g = await new_topic(1), await new_topic(1), group()
    function = f"crash-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "starts.txt"
    for name, value in {
        "PROBE_FUNCTION": function,
        "PROBE_TOPIC": topic,
        "PROBE_DLQ": dlq,
        "PROBE_OUT": str(out),
        "PROBE_MAX_RETRIES": str(MAX_RETRIES),
        "AIPX_REDIS_URL": redis_url,  # the attempt store the instances share
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }.items():
        monkeypatch.setenv(name, value)
    config = one_source_config(
        kafka_bootstrap,
        topic=topic,
        dlq=dlq,
        group=g,
        handler="crash_probe.handler",
        max_retries=MAX_RETRIES,
        mode=ON_DEMAND,
        isolation="process",
        timeout_s=timeout_s,
    )
    assert config.instance_env({})["AIPX_LAMBDA_ESM_MODE"] == "on-demand"
    await produce_signals(kafka_bootstrap, topic, ["s-0", poison, "s-2"])
    async with running(config) as runner:
        await until(
            lambda: runner.pollers[0].stats.committed.get(f"{topic}-0") == 3,
            within_s=180,
            what="the partition past the poison record",
        )
        await produce_signals(kafka_bootstrap, topic, ["s-3"])
        await until(lambda: "s-3" in starts(out), within_s=60, what="a later record delivered")
        stats = runner.pollers[0].stats
        instance = runner.instances["probe"]
    seen = starts(out)
    # The first try and MAX_RETRIES retries each ended their instance; every one ran in a fresh process.
    assert len(seen[poison]) == MAX_RETRIES + 1
    assert len(set(seen[poison])) == MAX_RETRIES + 1
    assert instance.cold_starts >= MAX_RETRIES + 2
    assert seen["s-2"] and seen["s-3"]
    # The mapping never gave up (on-demand retries forever): the handler dead-lettered the record.
    assert stats.dead_lettered == 0 and stats.failed_invocations == MAX_RETRIES + 1
    [dead] = await read_topic(kafka_bootstrap, dlq, 1)
    headers = list(dead.headers)
    assert header(headers, HEADER_EVENT_ID) == poison
    assert header(headers, HEADER_DLQ_TOPIC) == topic and header(headers, HEADER_DLQ_OFFSET) == "1"
    assert header(headers, HEADER_DLQ_CONSUMER) == function
    assert header(headers, HEADER_DLQ_ERROR_TYPE) == "RecordCrashedError"
    assert f"{MAX_RETRIES + 1} earlier attempts" in (header(headers, HEADER_DLQ_ERROR) or "")
