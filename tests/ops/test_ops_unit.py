"""aipx-ops logic without I/O: time filters, decoding, replay headers, the S3 failure format, the ledger."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aipx.msk import MskRecord, build_event
from aipx.serde import HEADER_DLQ_TOPIC, dead_letter_headers, encode
from aipx.v1.signals_pb2 import TradingSignal
from aipx_ops.ledger import Ledger
from aipx_ops.records import (
    HEADER_REPLAY_OF,
    Filters,
    OpsError,
    Record,
    decode_payload,
    parse_coordinates,
    parse_time,
    replay_headers,
    replay_target,
)
from aipx_ops.s3_failures import parse_failure

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def dead(key: bytes, value: bytes, *, error: BaseException, at: datetime, schema_ok: bool = True) -> Record:
    enc = encode(TradingSignal(signal_id="s-1", symbol="BTC-USDT"), event_id="ev-1", event_time_ns=1)
    headers = dead_letter_headers(
        enc.headers if schema_ok else [],
        error=error,
        topic="trading-signals",
        partition=2,
        offset=7,
        consumer="cognitive",
        time_ns=int(at.timestamp() * 1e9),
    )
    return Record("trading-signals.dlq", 0, 3, 0, key, value, headers)


def test_times_are_relative_or_iso() -> None:
    assert parse_time("2h", now=NOW) == NOW - timedelta(hours=2)
    assert parse_time("30m", now=NOW) == NOW - timedelta(minutes=30)
    assert parse_time("2026-12-04T10:00:00", now=NOW) == datetime(2026, 12, 4, 10, tzinfo=UTC)
    assert parse_time("2026-12-04T10:00:00+09:00", now=NOW).utcoffset() == timedelta(hours=9)
    with pytest.raises(OpsError, match="not a time: 'yesterday'"):
        parse_time("yesterday", now=NOW)


def test_filters_by_time_key_and_error_type() -> None:
    value = encode(TradingSignal(signal_id="s-1"), event_id="e", event_time_ns=1).value
    record = dead(b"BTC-USDT", value, error=ValueError("x"), at=NOW - timedelta(hours=1))
    assert Filters().match(record)
    assert Filters(since=NOW - timedelta(hours=2), until=NOW, key="BTC-USDT", error_type="ValueError").match(
        record
    )
    assert not Filters(since=NOW - timedelta(minutes=30)).match(record)
    assert not Filters(until=NOW - timedelta(hours=2)).match(record)
    assert not Filters(key="ETH-USDT").match(record)
    assert not Filters(error_type="DecodeError").match(record)


def test_payload_decodes_by_its_schema_and_a_poison_value_is_shown_not_raised() -> None:
    good = encode(TradingSignal(signal_id="s-9", symbol="ETH-USDT"), event_id="e", event_time_ns=1)
    record = Record("t", 0, 0, 0, b"k", good.value, good.headers)
    assert decode_payload(record) == {
        "schema": "aipx.v1.TradingSignal",
        "message": {"signal_id": "s-9", "symbol": "ETH-USDT"},
    }
    poison = Record("t", 0, 1, 0, b"k", b"\x0a\xff\xff", good.headers)
    shown = decode_payload(poison)
    assert "invalid protobuf" in shown["undecodable"]
    assert base64.b64decode(shown["value_base64"]) == b"\x0a\xff\xff"
    assert decode_payload(Record("t", 0, 2, 0, None, None, []))["undecodable"] == "tombstone (no value)"
    assert decode_payload(Record("t", 0, 3, 0, None, b"x", []))["undecodable"] == "no aipx-schema header"


def test_replay_keeps_the_event_id_drops_dlq_headers_and_says_where_it_came_from() -> None:
    record = dead(b"k", b"v", error=RuntimeError("boom"), at=NOW)
    headers = replay_headers(record.headers, "kafka://trading-signals.dlq/0/3")
    names = [n for n, _ in headers]
    assert ("aipx-event-id", b"ev-1") in headers
    assert not any(n.startswith("aipx-dlq-") for n in names)
    assert headers[-1] == (HEADER_REPLAY_OF, b"kafka://trading-signals.dlq/0/3")
    assert replay_headers(headers, "again").count((HEADER_REPLAY_OF, b"again")) == 1
    assert replay_target(record, None) == "trading-signals"
    assert replay_target(record, "other") == "other"
    orphan = Record("x.dlq", 0, 0, 0, None, b"", [(n, v) for n, v in record.headers if n != HEADER_DLQ_TOPIC])
    with pytest.raises(OpsError, match="--to"):
        replay_target(orphan, None)


def test_coordinates() -> None:
    assert parse_coordinates("2:41") == (2, 41)
    with pytest.raises(OpsError, match="PARTITION:OFFSET"):
        parse_coordinates("41")


def aws_failure_object(records: list[MskRecord], *, payload_as_string: bool) -> bytes:
    """The document AWS Lambda writes to an S3 on-failure destination for a Kafka event source mapping."""
    event = build_event(records, bootstrap_servers="b-1.example:9098")
    doc = {
        "requestContext": {
            "requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
            "functionArn": "arn:aws:lambda:ap-northeast-2:123456789012:function:aipx-dev-cognitive",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 4,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-12-04T10:00:06.021Z",
        "KafkaBatchInfo": {
            "batchSize": len(records),
            "eventSourceArn": "arn:aws:kafka:ap-northeast-2:123456789012:cluster/aipx/abc",
            "bootstrapServers": "b-1.example:9098",
            "payloadSize": 2039,
            "recordsInfo": {},
        },
        "payload": json.dumps(event) if payload_as_string else event,
    }
    return json.dumps(doc).encode()


@pytest.mark.parametrize("as_string", [True, False])
def test_s3_failure_objects_give_back_the_records(as_string: bool) -> None:
    enc = encode(TradingSignal(signal_id="s-1"), event_id="ev-1", event_time_ns=1)
    rec = MskRecord("trading-signals", 1, 5, 1_700_000_000_000, b"BTC-USDT", enc.value, enc.headers)
    batch = parse_failure("k", aws_failure_object([rec], payload_as_string=as_string))
    assert (batch.condition, batch.invoke_count) == ("RetryAttemptsExhausted", 4)
    [back] = batch.records
    assert (back.topic, back.partition, back.offset, back.key, back.value) == (
        "trading-signals",
        1,
        5,
        b"BTC-USDT",
        enc.value,
    )
    assert back.headers == enc.headers


def test_s3_objects_that_are_not_failure_records_are_named() -> None:
    with pytest.raises(OpsError, match="s3 object a: not JSON"):
        parse_failure("a", b"{")
    with pytest.raises(OpsError, match="s3 object b: no invocation payload"):
        parse_failure("b", b'{"requestContext": {}}')
    with pytest.raises(OpsError, match="s3 object c: payload is not a Kafka event"):
        parse_failure("c", b'{"payload": {"eventSource": "aws:sqs"}}')


def test_ledger_remembers_across_runs_and_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "ops" / "replays.jsonl"
    ledger = Ledger(path)
    assert not ledger.replayed("kafka://d/0/1")
    ledger.record("kafka://d/0/1", target="t", partition=0, offset=9)
    assert Ledger(path).replayed("kafka://d/0/1")
    path.write_text(path.read_text() + "garbage\n")
    with pytest.raises(ValueError, match=r"replays\.jsonl:2: not a ledger entry"):
        Ledger(path)
