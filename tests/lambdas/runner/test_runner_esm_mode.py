"""Both event source mapping modes, emulated by the runner from AIPX_LAMBDA_ESM_MODE against the real broker.

On-demand mode is AWS's cheaper mode, where a partial batch response is ignored: the first test shows the
loss a handler returning `batchItemFailures` suffers there; the second that a `KafkaBatch` handler in that
mode loses nothing (it fails the whole invocation) and still gets past a poison record (it dead-letters it).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aipx.lambda_kit import ON_DEMAND, AsyncRuntime, AttemptCounter, KafkaBatch, MskRecord
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
from aipx.topics import TRADING_SIGNALS
from aipx.v1.signals_pb2 import TradingSignal
from aipx_runner import RunnerConfig
from aws_lambda_powertools import Logger

from .conftest import one_source_config, produce, read_topic, running, until
from .test_runner_broker import Recorder, group

pytestmark = pytest.mark.integration


def test_the_runner_reads_the_mode_from_the_same_setting_as_the_handlers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIPX_LAMBDA_ESM_MODE", "on-demand")
    assert RunnerConfig.from_manifest(["recorder"]).mode == "on-demand"
    monkeypatch.setenv("AIPX_LAMBDA_ESM_MODE", "provisioned")
    assert RunnerConfig.from_manifest(["recorder"]).mode == "provisioned"


async def test_on_demand_mapping_commits_past_records_a_partial_response_reported_failed(
    kafka_bootstrap: str, new_topic: Any
) -> None:
    topic, dlq, g = await new_topic(1), await new_topic(1), group()
    handler = Recorder(fail=lambda v, attempt: v == b"bad")
    config = one_source_config(
        kafka_bootstrap, topic=topic, dlq=dlq, group=g, handler=handler, max_retries=2, mode=ON_DEMAND
    )
    await produce(kafka_bootstrap, topic, [(0, b"a"), (0, b"bad"), (0, b"c")])
    async with running(config) as runner:
        await until(lambda: runner.pollers[0].stats.committed.get(f"{topic}-0") == 3, what="commit all")
        stats = runner.pollers[0].stats
    # As in AWS: the failure report is ignored, the record is never retried nor dead-lettered. Lost.
    assert handler.attempts[b"bad"] == 1
    assert stats.ignored_failures == 1 and stats.retries == 0 and stats.dead_lettered == 0


async def _produce_signals(bootstrap: str, topic: str, ids: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = []
        for signal_id in ids:
            signal = TradingSignal(signal_id=signal_id, symbol="BTC-USDT")
            enc = encode(signal, event_id=signal_id, event_time_ns=1)
            futures.append(
                await producer.send(topic, enc.value, key=b"BTC-USDT", partition=0, headers=enc.headers)
            )
        for future in futures:
            await future
    finally:
        await producer.stop()


async def test_on_demand_kit_handler_retries_the_whole_batch_and_dead_letters_a_poison_record(
    kafka_bootstrap: str, redis_url: str, new_topic: Any, lambda_runtime: AsyncRuntime
) -> None:
    topic, dlq, g = await new_topic(1), await new_topic(1), group()
    name = f"esm-{uuid.uuid4().hex[:6]}"
    batch = KafkaBatch(
        name,
        logger=Logger(service=name),
        runtime=lambda_runtime,
        mode=ON_DEMAND,
        max_retries=2,
        attempts=AttemptCounter(name, url=redis_url),
    )
    calls: list[str] = []
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def on_signal(signal: TradingSignal, record: MskRecord) -> None:
        with lock:
            calls.append(signal.signal_id)
            attempts[signal.signal_id] = attempts.get(signal.signal_id, 0) + 1
        if signal.signal_id == "transient" and attempts["transient"] == 1:
            raise ConnectionError("OMS unavailable")
        if signal.signal_id == "poison":
            raise ValueError("cannot assess this signal")

    batch.route(TRADING_SIGNALS, TradingSignal, on_signal)
    batch.alias(topic, TRADING_SIGNALS, dlq=dlq)

    def handler(event: dict[str, Any], context: Any) -> Any:
        return batch.process(event, context)

    config = one_source_config(
        kafka_bootstrap, topic=topic, dlq=dlq, group=g, handler=handler, max_retries=2, mode=ON_DEMAND
    )
    await _produce_signals(kafka_bootstrap, topic, ["s-0", "transient", "s-2"])
    async with running(config) as runner:
        await until(lambda: runner.pollers[0].stats.committed.get(f"{topic}-0") == 3, what="first batch")
        first = dict(attempts)
        await _produce_signals(kafka_bootstrap, topic, ["s-3", "poison", "s-5"])
        await until(lambda: runner.pollers[0].stats.committed.get(f"{topic}-0") == 6, what="past the poison")
        stats = runner.pollers[0].stats
    # The transient failure failed the invocation: the whole batch came again and nothing was lost.
    assert first["transient"] == 2 and set(first) == {"s-0", "transient", "s-2"}
    assert stats.ignored_failures == 0 and stats.dead_lettered == 0  # the mapping never gave up: the kit did
    # The poison record failed on its first try and both retries, then the handler dead-lettered it.
    assert attempts["poison"] == 3 and "s-5" in attempts
    [dead] = await read_topic(kafka_bootstrap, dlq, 1)
    headers = list(dead.headers)
    assert header(headers, HEADER_EVENT_ID) == "poison"
    assert header(headers, HEADER_DLQ_TOPIC) == topic and header(headers, HEADER_DLQ_OFFSET) == "4"
    assert header(headers, HEADER_DLQ_CONSUMER) == name
    assert header(headers, HEADER_DLQ_ERROR_TYPE) == "ValueError"
    assert "cannot assess" in (header(headers, HEADER_DLQ_ERROR) or "")
