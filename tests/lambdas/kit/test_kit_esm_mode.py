"""lambda_kit in each event source mapping mode: provisioned returns partial batch responses; on-demand (where
AWS ignores them) fails the whole invocation, and dead-letters a record once it has used up its retries."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from aipx.lambda_kit import (
    ON_DEMAND,
    PROVISIONED,
    AttemptCounter,
    BatchFailedError,
    FakeLambdaContext,
    KafkaBatch,
    LambdaSettings,
    MskRecord,
    esm_mode,
)
from aipx.lambda_kit.batch import DEFAULT_MAX_RETRIES
from aipx.msk import build_event
from aipx.topics import MARKET_DATA_RAW, TRADING_SIGNALS
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aws_lambda_powertools import Logger

from .test_kit_unit import OfflineRuntime, envelope_record


@pytest.fixture
def runtime() -> Iterator[OfflineRuntime]:
    rt = OfflineRuntime()
    yield rt
    rt.close()


@pytest.fixture
def esm_env() -> Iterator[None]:
    saved = os.environ.pop("AIPX_LAMBDA_ESM_MODE", None)
    yield
    os.environ.pop("AIPX_LAMBDA_ESM_MODE", None)
    if saved is not None:
        os.environ["AIPX_LAMBDA_ESM_MODE"] = saved


def local(function: str) -> AttemptCounter:
    """Attempts counted in this process (the logic; durable counting is tested against Redis)."""
    return AttemptCounter(function, url=None)


def failing_on(offsets: set[int], calls: list[int]) -> Any:
    def callback(message: MarketDataEnvelope, record: MskRecord) -> None:
        calls.append(record.offset)
        if record.offset in offsets:
            raise RuntimeError(f"cannot handle {record.offset}")

    return callback


def test_the_mode_comes_from_one_setting_and_defaults_to_provisioned(esm_env: None) -> None:
    assert esm_mode() == PROVISIONED
    os.environ["AIPX_LAMBDA_ESM_MODE"] = "on-demand"
    assert esm_mode() == ON_DEMAND
    assert KafkaBatch("unit", logger=Logger(service="unit")).mode == ON_DEMAND
    os.environ["AIPX_LAMBDA_ESM_MODE"] = "cheap"
    with pytest.raises(ValueError, match="esm_mode"):
        LambdaSettings()
    os.environ.pop("AIPX_LAMBDA_ESM_MODE")
    os.environ["AIPX_LAMBDA_ESM_MODES"] = "on-demand"  # a typo is refused, not ignored
    try:
        with pytest.raises(ValueError, match="AIPX_LAMBDA_ESM_MODES"):
            LambdaSettings()
    finally:
        os.environ.pop("AIPX_LAMBDA_ESM_MODES")


def test_provisioned_mode_returns_the_partial_batch_response(runtime: OfflineRuntime) -> None:
    calls: list[int] = []
    batch = KafkaBatch("unit", logger=Logger(service="unit"), runtime=runtime, mode=PROVISIONED)
    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, failing_on({1}, calls))
    for _ in range(DEFAULT_MAX_RETRIES + 3):  # the mapping bounds retries, the handler never gives up
        response = batch.process(build_event([envelope_record(i) for i in range(3)]), None)
        assert response == {
            "batchItemFailures": [{"itemIdentifier": {"partition": "market-data-raw-0", "offset": 1}}]
        }
    assert runtime.dlq.sent == []


def test_on_demand_mode_fails_the_whole_invocation_while_a_record_fails(runtime: OfflineRuntime) -> None:
    calls: list[int] = []
    batch = KafkaBatch(
        "unit",
        logger=Logger(service="unit"),
        runtime=runtime,
        mode=ON_DEMAND,
        max_retries=2,
        attempts=local("unit"),
    )
    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, failing_on({1}, calls))
    event = build_event([envelope_record(i) for i in range(3)])
    for attempt in (1, 2):  # the first try and the first retry fail the invocation
        with pytest.raises(
            BatchFailedError, match=r"1 of 3 record\(s\) failed \(market-data-raw-0@1\)"
        ) as err:
            batch.process(event, FakeLambdaContext("unit"))
        assert err.value.failures == [{"itemIdentifier": {"partition": "market-data-raw-0", "offset": 1}}]
        assert calls[-3:] == [0, 1, 2], attempt
    assert runtime.dlq.sent == []
    # The second retry fails too: that was the last, so the poison record is dead-lettered with its error
    # and the batch succeeds (the mapping commits past it).
    assert batch.process(event, None) == {"batchItemFailures": []}
    [sent] = runtime.dlq.sent
    assert (sent["dlq"], sent["topic"], sent["offset"]) == ("market-data-raw.dlq", MARKET_DATA_RAW, 1)
    assert isinstance(sent["error"], RuntimeError) and "cannot handle 1" in str(sent["error"])
    assert sent["value"] == envelope_record(1).value and sent["headers"] == envelope_record(1).headers


def test_on_demand_mode_forgets_a_failure_once_the_record_succeeds(runtime: OfflineRuntime) -> None:
    failing = {1}
    calls: list[int] = []
    batch = KafkaBatch(
        "unit",
        logger=Logger(service="unit"),
        runtime=runtime,
        mode=ON_DEMAND,
        max_retries=1,
        attempts=local("unit"),
    )
    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, failing_on(failing, calls))
    event = build_event([envelope_record(i) for i in range(2)])
    with pytest.raises(BatchFailedError):
        batch.process(event, None)
    failing.clear()
    assert batch.process(event, None) == {"batchItemFailures": []}
    failing.add(1)  # fails again later: a fresh budget, not the old one
    with pytest.raises(BatchFailedError):
        batch.process(event, None)
    assert runtime.dlq.sent == []


def test_on_demand_retries_come_from_the_function_manifest(runtime: OfflineRuntime) -> None:
    batch = KafkaBatch("cognitive", logger=Logger(service="unit"), runtime=runtime, mode=ON_DEMAND)
    assert batch.max_retries(TRADING_SIGNALS) == 3  # functions.yaml: cognitive <- trading-signals
    assert KafkaBatch("unknown", logger=Logger(service="u"), mode=ON_DEMAND).max_retries("x") == 3


def test_on_demand_mode_dead_letters_undecodable_records_at_once(runtime: OfflineRuntime) -> None:
    batch = KafkaBatch(
        "unit", logger=Logger(service="unit"), runtime=runtime, mode=ON_DEMAND, attempts=local("unit")
    )
    done: list[int] = []
    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, lambda m, r: done.append(r.offset))
    garbage = MskRecord(MARKET_DATA_RAW, 0, 1, 0, b"k", b"\xff\xff not protobuf", [])
    assert batch.process(build_event([envelope_record(0), garbage]), None) == {"batchItemFailures": []}
    assert done == [0] and [s["offset"] for s in runtime.dlq.sent] == [1]
