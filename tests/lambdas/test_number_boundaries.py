"""Numbers in Kafka records at the recorder: real broker, the real runner and handler, the real S3 server.

A TradingSignal whose price decimal128(38, 18) cannot hold (e.g. '1e-9999999', which crashed the process
inside pyarrow's decimal cast) and a record whose aipx-event-time-ns header is not an int64 timestamp
(e.g. 2^63, which stalled the partition) go to the DLQ with the error in its headers; every other record
lands in the lake exactly once and the same runner keeps consuming records published after them.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aipx.money import parse_decimal
from aipx.numbers import INT64_MAX, InvalidNumberError
from aipx.serde import HEADER_DLQ_ERROR, HEADER_EVENT_TIME, encode, event_time_header
from aipx.settings import KafkaSettings
from aipx.topics import TRADING_SIGNALS
from aipx.v1.signals_pb2 import TradingSignal
from aipx_recorder.adapters.s3 import S3Store
from aipx_recorder.reader import read_topic
from aipx_recorder.recorder import ParquetRecorder
from aipx_recorder.schema import DECIMAL_TYPE, ValueOutOfRangeError, decimals
from aipx_recorder.settings import RotationPolicy
from aipx_runner import Backoff, Runner, RunnerConfig
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.lambdas.numbers import FULLWIDTH_12, refused
from tests.lambdas.recorder.test_recorder_lake import event_time, s3_settings

pytestmark = pytest.mark.integration

LISTED_DECIMALS = [
    "1e-9999999",
    "1e-999999999",
    "1e400",
    "1e30",
    FULLWIDTH_12,
    "1e999999999",
    "NaN",
    "1e-19",
    "123456789012345678901",
]
LISTED_TIMES = [str(2**63), str(2**64), "1" + "0" * 30, FULLWIDTH_12, "-1", "12x", "9" * 5000]

_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60)
_NUMBERISH = st.from_regex(r"\A[+-]?[0-9]{0,25}(\.[0-9]{0,25})?([eE][+-]?[0-9]{1,10})?\Z")
DECIMAL_TEXTS = st.one_of(_NUMBERISH, _TEXT, st.sampled_from(LISTED_DECIMALS))


@given(texts=st.lists(DECIMAL_TEXTS, min_size=1, max_size=30))
@example(texts=LISTED_DECIMALS)
@example(texts=["1.5", "", "1e-9999999"])
@settings(max_examples=300, deadline=None)
def test_decimal_column_names_exactly_the_rows_the_strict_parser_refuses(texts: list[str]) -> None:
    bad = [i for i, t in enumerate(texts) if t and refused(t)]
    try:
        column = decimals(texts)
    except ValueOutOfRangeError as exc:
        assert exc.rows == bad and bad, texts
        return
    assert not bad and column.type == DECIMAL_TYPE
    values = column.to_pylist()
    for text, value in zip(texts, values, strict=True):
        assert value == (parse_decimal(text) if text else None), text  # exact, never rounded


@given(raw=st.one_of(st.binary(max_size=30), st.integers(-(2**70), 2**70).map(lambda n: str(n).encode())))
@example(raw=str(2**63).encode())
@example(raw=FULLWIDTH_12.encode())
@example(raw=b"9" * 100_000)
def test_event_time_header_is_an_int64_timestamp_or_an_error_naming_it(raw: bytes) -> None:
    try:
        value = event_time_header(raw)
    except InvalidNumberError as exc:
        assert exc.field == HEADER_EVENT_TIME
        assert not (raw.isdigit() and len(raw) <= 19 and int(raw) <= INT64_MAX)
        return
    assert raw.isdigit() and 0 <= value <= INT64_MAX and value == int(raw)


def signal(i: int, price: str) -> TradingSignal:
    sig = TradingSignal(signal_id=f"sig-{i}", symbol="BTC-USDT", reasons=["x"])
    sig.price.value = price
    return sig


async def test_bad_numbers_are_dead_lettered_and_the_recorder_keeps_consuming(
    kafka_bootstrap: str, new_topic: Any, new_bucket: Any, s3_endpoint: Any
) -> None:
    topic, dlq, bucket = await new_topic(1), await new_topic(1), await new_bucket()
    s3 = s3_settings(s3_endpoint)
    recorder = ParquetRecorder(
        S3Store(s3, bucket=bucket),
        policy=RotationPolicy(max_records=10, max_age_s=0.5),
        topics={topic: TRADING_SIGNALS},
        dlqs={topic: dlq},
    )
    config = RunnerConfig.from_manifest(
        ["recorder"],
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        topics={TRADING_SIGNALS: topic, "trading-signals.dlq": dlq},
        group_ids={f"recorder:{TRADING_SIGNALS}": f"rec-num-{uuid.uuid4().hex[:8]}"},
        handlers={"recorder": lambda event, context: recorder.process_event(event).response()},
        backoff=Backoff(base_s=0.05, max_s=0.2),
        batching_window_s=0.05,
    )
    config = replace(config, sources=tuple(s for s in config.sources if s.topic == topic))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=1_000_000)
    dlq_reader = AIOKafkaConsumer(dlq, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await producer.start()
    await dlq_reader.start()
    loop = asyncio.get_running_loop()
    runner = Runner(config)
    task = asyncio.create_task(runner.run())
    published = {"good": 0, "bad": 0}
    dead: list[dict[str, bytes]] = []
    number = iter(range(1_000_000))

    async def send(price: str, time_header: str | None = None) -> None:
        i = next(number)
        enc = encode(signal(i, price), event_id=f"{topic}-{i}", event_time_ns=event_time(i % 50))
        headers = enc.headers
        if time_header is not None:
            headers = [(k, v) for k, v in headers if k != HEADER_EVENT_TIME]
            headers.append((HEADER_EVENT_TIME, time_header.encode()))
        await producer.send_and_wait(topic, enc.value, key=b"BTC-USDT", headers=headers)

    async def settled() -> None:
        """Wait until every good record is in the lake and every bad one in the DLQ (and the runner runs)."""
        until = loop.time() + 60
        rows = 0
        while loop.time() < until:
            assert not task.done(), f"the runner stopped: {task}"
            for records in (await dlq_reader.getmany(timeout_ms=200)).values():
                dead.extend(dict(r.headers) for r in records)
            try:
                rows = (await asyncio.to_thread(read_topic, topic, settings=s3, bucket=bucket)).num_rows
            except FileNotFoundError:
                rows = 0
            if rows == published["good"] and len(dead) == published["bad"]:
                return
            assert rows <= published["good"], "a record landed twice or a bad one landed"
        raise AssertionError(f"lake {rows}/{published['good']}, DLQ {len(dead)}/{published['bad']}")

    async def batch(prices: list[str], times: list[str]) -> None:
        for price in prices:
            await send(price)
            published["bad" if price and refused(price) else "good"] += 1
        for time_header in times:
            await send("1.5", time_header)
            published["bad"] += 1
        await send("2.25")  # a good record after the bad ones: the partition moves on
        published["good"] += 1
        await settled()

    try:
        await batch(["1.5", *LISTED_DECIMALS, "3"], LISTED_TIMES)
        errors = [h[HEADER_DLQ_ERROR].decode() for h in dead]
        assert sum("decimal128" in e for e in errors) == len(LISTED_DECIMALS), errors
        assert sum(HEADER_EVENT_TIME in e for e in errors) == len(LISTED_TIMES), errors

        @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(
            prices=st.lists(DECIMAL_TEXTS, max_size=12),
            times=st.lists(st.one_of(st.integers(-(2**65), 2**65).map(str), _TEXT), max_size=3).map(
                lambda ts: [t for t in ts if not (t.isascii() and t.isdigit() and int(t) <= INT64_MAX)]
            ),
        )
        def fuzz(prices: list[str], times: list[str]) -> None:
            asyncio.run_coroutine_threadsafe(batch(prices, times), loop).result(120)

        await asyncio.to_thread(fuzz)
        table = await asyncio.to_thread(read_topic, topic, settings=s3, bucket=bucket)
        prices = table.column("price").to_pylist()
        assert all(p is None or isinstance(p, Decimal) for p in prices)
        assert table.schema.field("price").type == pa.decimal128(38, 18)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)
        await producer.stop()
        await dlq_reader.stop()
