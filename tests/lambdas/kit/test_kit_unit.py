"""lambda_kit without I/O: event handling, partial batch failures, DLQ routing decisions, context, runtime."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from aipx.lambda_kit import (
    AsyncRuntime,
    DeadLettered,
    FakeLambdaContext,
    KafkaBatch,
    MalformedRecord,
    MskRecord,
    UnroutedTopicError,
    correlation_id,
    parse_event,
)
from aipx.msk import InvalidEventError, build_event, failed_offsets
from aipx.serde import HEADER_EVENT_ID, HEADER_TRACE_ID, encode
from aipx.topics import MARKET_DATA_RAW, TRADING_SIGNALS
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx.v1.signals_pb2 import TradingSignal
from aws_lambda_powertools import Logger


class RecordingDeadLetters:
    """Stands in for the DLQ producer in unit tests (the real one is covered by the integration test)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def publish(self, dlq_topic: str, **kwargs: Any) -> None:
        self.sent.append({"dlq": dlq_topic, **kwargs})


class OfflineRuntime(AsyncRuntime):
    def __init__(self) -> None:
        super().__init__()
        self.dlq = RecordingDeadLetters()

    async def dead_letters(self, consumer: str) -> Any:
        return self.dlq


def envelope_record(offset: int, *, symbol: str = "BTC-USDT", partition: int = 0) -> MskRecord:
    env = MarketDataEnvelope(venue="binance", symbol=symbol, event_id=f"e-{offset}")
    enc = encode(env, event_id=f"e-{offset}", event_time_ns=1_700_000_000_000_000_000, trace_id=f"t-{offset}")
    return MskRecord(
        MARKET_DATA_RAW,
        partition,
        offset,
        1_700_000_000_000,
        b"binance:" + symbol.encode(),
        enc.value,
        enc.headers,
    )


@pytest.fixture
def runtime() -> Any:
    rt = OfflineRuntime()
    yield rt
    rt.close()


def make_batch(runtime: AsyncRuntime) -> KafkaBatch:
    return KafkaBatch("unit", logger=Logger(service="unit-test"), runtime=runtime)


def test_all_records_decoded_and_dispatched_in_order(runtime: OfflineRuntime) -> None:
    batch = make_batch(runtime)
    seen: list[tuple[str, int]] = []
    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, lambda m, r: seen.append((m.event_id, r.offset)))
    records = [envelope_record(i, partition=i % 2) for i in range(6)]
    response = batch.process(build_event(records), FakeLambdaContext("unit"))
    assert response == {"batchItemFailures": []}
    assert sorted(seen, key=lambda x: x[1]) == [(f"e-{i}", i) for i in range(6)]
    assert runtime.dlq.sent == []


def test_failing_record_is_reported_and_others_go_on(runtime: OfflineRuntime) -> None:
    batch = make_batch(runtime)
    done: list[int] = []

    def callback(message: MarketDataEnvelope, record: MskRecord) -> None:
        if record.offset == 2:
            raise RuntimeError("boom")
        done.append(record.offset)

    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, callback)
    response = batch.process(build_event([envelope_record(i) for i in range(5)]), None)
    assert response == {
        "batchItemFailures": [{"itemIdentifier": {"partition": "market-data-raw-0", "offset": 2}}]
    }
    assert failed_offsets(response) == {"market-data-raw-0": 2}
    assert done == [0, 1, 3, 4]


def test_every_record_failing_is_a_full_partial_response_not_an_exception(runtime: OfflineRuntime) -> None:
    batch = make_batch(runtime)

    def fail(message: MarketDataEnvelope, record: MskRecord) -> None:
        raise ValueError("nope")

    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, fail)
    response = batch.process(build_event([envelope_record(i) for i in range(3)]), None)
    assert [f["itemIdentifier"]["offset"] for f in response["batchItemFailures"]] == [0, 1, 2]


def test_undecodable_record_is_dead_lettered_and_counts_as_handled(runtime: OfflineRuntime) -> None:
    batch = make_batch(runtime)
    done: list[int] = []
    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, lambda m, r: done.append(r.offset))
    good = envelope_record(0)
    garbage = MskRecord(
        MARKET_DATA_RAW, 0, 1, 0, b"k", b"\xff\xff\xff not protobuf", [(HEADER_EVENT_ID, b"x")]
    )
    wrong_schema = MskRecord(MARKET_DATA_RAW, 0, 2, 0, b"k", b"", [("aipx-schema", b"aipx.v1.TradingSignal")])
    response = batch.process(build_event([good, garbage, wrong_schema, envelope_record(3)]), None)
    assert response == {"batchItemFailures": []}
    assert done == [0, 3]
    assert [(s["dlq"], s["offset"], s["value"]) for s in runtime.dlq.sent] == [
        ("market-data-raw.dlq", 1, garbage.value),
        ("market-data-raw.dlq", 2, b""),
    ]
    assert "invalid protobuf encoding" in str(runtime.dlq.sent[0]["error"])
    assert "schema header is 'aipx.v1.TradingSignal'" in str(runtime.dlq.sent[1]["error"])
    assert runtime.dlq.sent[0]["headers"] == garbage.headers


def test_dead_lettered_result_is_returned_to_the_caller(runtime: OfflineRuntime) -> None:
    batch = make_batch(runtime)
    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, lambda m, r: "ok")
    result = batch.handle_record(MskRecord(MARKET_DATA_RAW, 0, 9, 0, None, None, []))
    assert isinstance(result, DeadLettered) and "tombstone" in result.error


def test_route_rejects_a_message_type_the_catalogue_does_not_carry(runtime: OfflineRuntime) -> None:
    batch = make_batch(runtime)
    with pytest.raises(ValueError, match=r"carries aipx\.v1\.MarketDataEnvelope"):
        batch.route(MARKET_DATA_RAW, TradingSignal, lambda m, r: None)
    with pytest.raises(ValueError, match="no RecordIdempotency"):
        batch.route(TRADING_SIGNALS, TradingSignal, lambda m, r: None, idempotent=True)


def test_record_of_an_unrouted_topic_fails_instead_of_being_dropped(runtime: OfflineRuntime) -> None:
    batch = make_batch(runtime)
    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, lambda m, r: None)
    rec = MskRecord("some-other-topic", 0, 5, 0, None, b"", [])
    response = batch.process(build_event([rec]), None)
    assert response["batchItemFailures"] == [
        {"itemIdentifier": {"partition": "some-other-topic-0", "offset": 5}}
    ]
    with pytest.raises(UnroutedTopicError):
        batch.handle_record(rec)


def test_alias_routes_a_fresh_topic_with_its_own_dlq(runtime: OfflineRuntime) -> None:
    batch = make_batch(runtime)
    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, lambda m, r: None)
    batch.alias("test-md", MARKET_DATA_RAW, dlq="test-md.dlq")
    bad = MskRecord("test-md", 0, 0, 0, None, b"\xff", [])
    assert batch.process(build_event([bad]), None) == {"batchItemFailures": []}
    assert runtime.dlq.sent[0]["dlq"] == "test-md.dlq"


def test_non_kafka_or_malformed_events_are_rejected_clearly(runtime: OfflineRuntime) -> None:
    batch = make_batch(runtime)
    with pytest.raises(InvalidEventError, match="not a Kafka event"):
        batch.process({"Records": []}, None)
    with pytest.raises(InvalidEventError, match="no 'records'"):
        batch.process({"eventSource": "aws:kafka"}, None)
    assert batch.process({"eventSource": "aws:kafka", "records": {}}, None) == {"batchItemFailures": []}


def test_correlation_id_prefers_trace_then_event_id_then_coordinates() -> None:
    rec = MskRecord("t", 1, 2, 0, None, b"", [(HEADER_EVENT_ID, b"ev"), (HEADER_TRACE_ID, b"tr")])
    assert correlation_id(rec) == "tr"
    assert correlation_id(MskRecord("t", 1, 2, 0, None, b"", [(HEADER_EVENT_ID, b"ev")])) == "ev"
    assert correlation_id(MskRecord("t", 1, 2, 0, None, b"", [])) == "t-1-2"


def test_fake_context_counts_down_and_looks_like_lambda() -> None:
    ctx = FakeLambdaContext("strategy", timeout_s=2, memory_limit_in_mb=256)
    assert ctx.function_name == "strategy"
    assert ctx.invoked_function_arn.endswith(":function:strategy")
    assert ctx.memory_limit_in_mb == 256
    assert 1000 < ctx.get_remaining_time_in_millis() <= 2000
    assert FakeLambdaContext(timeout_s=0).get_remaining_time_in_millis() == 0
    assert ctx.aws_request_id != FakeLambdaContext().aws_request_id


def test_runtime_reuses_one_loop_across_calls_and_threads() -> None:
    rt = AsyncRuntime()
    try:

        async def loop_id() -> int:
            return id(asyncio.get_running_loop())

        first = rt.run(loop_id())
        other: list[int] = []
        t = threading.Thread(target=lambda: other.append(rt.run(loop_id())))
        t.start()
        t.join()
        assert other == [first] and rt.run(loop_id()) == first

        async def fail() -> None:
            raise KeyError("inner")

        with pytest.raises(KeyError, match="inner"):
            rt.run(fail())

        async def nested() -> None:
            rt.run(loop_id())

        with pytest.raises(RuntimeError, match="deadlock"):
            rt.run(nested())
    finally:
        rt.close()
    rt.close()  # idempotent


def test_logs_carry_each_records_correlation_id_and_it_is_cleared_after_the_batch(
    runtime: OfflineRuntime,
) -> None:
    logger = Logger(service="unit-test-correlation")
    batch = KafkaBatch("unit", logger=logger, runtime=runtime)
    seen: list[tuple[object, object]] = []

    def callback(message: MarketDataEnvelope, record: MskRecord) -> None:
        keys = logger.get_current_keys()
        seen.append((keys.get("correlation_id"), keys.get("kafka_record")))

    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, callback)
    batch.process(build_event([envelope_record(0), envelope_record(1)]), None)
    assert seen == [("t-0", "market-data-raw-0-0"), ("t-1", "market-data-raw-0-1")]
    keys = logger.get_current_keys()
    assert keys.get("correlation_id") is None and "kafka_record" not in keys


def test_a_malformed_event_record_fails_alone_and_the_batch_goes_on(runtime: OfflineRuntime) -> None:
    batch = make_batch(runtime)
    done: list[int] = []
    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, lambda m, r: done.append(r.offset))
    event = build_event([envelope_record(i) for i in range(4)])
    raw = event["records"]["market-data-raw-0"]
    raw[1]["value"] = "QQ"  # incorrect padding: binascii.Error
    raw[2]["headers"] = [["not", "a", "mapping"]]
    records = batch.parse(event)
    assert [type(r) for r in records] == [MskRecord, MalformedRecord, MalformedRecord, MskRecord]
    assert batch.process_records(records, None) == {
        "batchItemFailures": [
            {"itemIdentifier": {"partition": "market-data-raw-0", "offset": 1}},
            {"itemIdentifier": {"partition": "market-data-raw-0", "offset": 2}},
        ]
    }
    assert done == [0, 3]
    assert runtime.dlq.sent == []  # retried by the mapping, not dead-lettered by the kit
    assert batch.process(event, None) == batch.process_records(batch.parse(event), None)


def test_an_event_record_without_coordinates_fails_the_whole_event(runtime: OfflineRuntime) -> None:
    batch = make_batch(runtime)
    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, lambda m, r: None)
    event = build_event([envelope_record(0), envelope_record(1)])
    del event["records"]["market-data-raw-0"][1]["offset"]
    with pytest.raises(InvalidEventError, match="without topic/partition/offset"):
        batch.process(event, None)


def test_parse_event_keeps_event_order_and_process_records_accepts_parsed_records(
    runtime: OfflineRuntime,
) -> None:
    batch = make_batch(runtime)
    seen: list[tuple[int, int]] = []
    batch.route(MARKET_DATA_RAW, MarketDataEnvelope, lambda m, r: seen.append((r.partition, r.offset)))
    records = [envelope_record(i, partition=i % 2) for i in range(4)]
    parsed = parse_event(build_event(records))
    assert parsed == [records[0], records[2], records[1], records[3]]  # grouped per partition, in order
    assert batch.process_records(parsed, None) == {"batchItemFailures": []}
    assert seen == [(0, 0), (0, 2), (1, 1), (1, 3)]
    assert batch.process_records([], None) == {"batchItemFailures": []}


def test_correlation_id_takes_the_last_header_of_a_name_and_skips_empty_ones() -> None:
    rec = MskRecord("t", 1, 2, 0, None, b"", [(HEADER_TRACE_ID, b"old"), (HEADER_TRACE_ID, b"new")])
    assert correlation_id(rec) == "new"
    empty_trace = [(HEADER_TRACE_ID, b""), (HEADER_EVENT_ID, b"ev")]
    assert correlation_id(MskRecord("t", 1, 2, 0, None, b"", empty_trace)) == "ev"
    assert correlation_id(MskRecord("t", 1, 2, 0, None, b"", [(HEADER_TRACE_ID, b"\xff")])) == "\ufffd"
