"""aipx.msk: the MSK event shape built and parsed back exactly (the runner and every handler rely on it)."""

from __future__ import annotations

import base64
import json

import pytest
from aipx.msk import InvalidEventError, MskRecord, build_event, records_of

HEADERS = [("content-type", b"application/x-protobuf"), ("aipx-event-id", b"\x00\xffid")]


def test_build_event_is_the_documented_shape_and_groups_per_partition_in_order() -> None:
    a0 = MskRecord("md", 0, 5, 1_700_000_000_000, b"k", b"\x01\x02", HEADERS)
    b0 = MskRecord("md", 1, 9, 1, None, None, [], "LOG_APPEND_TIME")
    a1 = MskRecord("md", 0, 6, 2, b"", b"v", [])
    other = MskRecord("md-2", 0, 1, 3, b"x", b"y", [])
    event = build_event([a0, b0, a1, other], bootstrap_servers="b:9092")
    assert list(event["records"]) == ["md-0", "md-1", "md-2-0"]
    assert [r["offset"] for r in event["records"]["md-0"]] == [5, 6]  # a run that came back is appended
    assert event["records"]["md-0"][0] == {
        "topic": "md",
        "partition": 0,
        "offset": 5,
        "timestamp": 1_700_000_000_000,
        "timestampType": "CREATE_TIME",
        "key": base64.b64encode(b"k").decode(),
        "value": base64.b64encode(b"\x01\x02").decode(),
        "headers": [{"content-type": list(b"application/x-protobuf")}, {"aipx-event-id": [0, 255, 105, 100]}],
    }
    none = event["records"]["md-1"][0]
    assert "key" not in none and "value" not in none and none["timestampType"] == "LOG_APPEND_TIME"
    assert event["eventSource"] == "aws:kafka" and event["bootstrapServers"] == "b:9092"
    # JSON round trip (what Lambda delivers), then parsed back to the very same records
    assert records_of(json.loads(json.dumps(event))) == [a0, a1, b0, other]


@pytest.mark.parametrize(
    ("field", "bad", "why"),
    [
        ("value", "QQ", "Incorrect padding"),
        ("key", 12, "argument should be"),
        ("headers", [["not", "a", "mapping"]], "has no attribute 'items'"),
        ("headers", [{"h": "text, not bytes"}], "string argument without an encoding"),
        ("headers", [{"h": [256]}], "bytes must be in range"),
        ("partition", "p0", "invalid literal"),
    ],
)
def test_a_malformed_record_is_an_invalid_event_error_naming_its_cause(
    field: str, bad: object, why: str
) -> None:
    raw = MskRecord("md", 0, 5, 1, b"k", b"v", HEADERS).to_event_record()
    raw[field] = bad
    with pytest.raises(InvalidEventError, match=f"malformed Kafka event record: .*{why}"):
        MskRecord.from_event_record(raw)


def test_event_bytes_counts_base64_header_lists_and_framing() -> None:
    rec = MskRecord("md", 0, 5, 1, b"k" * 10, b"v" * 20, HEADERS)
    # 30 raw bytes -> 40 base64 characters; header values at up to 4 characters per byte; 160 of framing
    assert rec.event_bytes == 40 + (12 + 4 * 22) + (13 + 4 * 4) + 160
    assert MskRecord("md", 0, 5, 1, None, None, []).event_bytes == 160


def test_msk_record_stays_a_frozen_dataclass_with_its_defaults() -> None:
    import dataclasses
    import pickle

    rec = MskRecord("md", 0, 5, 1, b"k", b"v")
    assert rec.headers == [] and rec.timestamp_type == "CREATE_TIME"
    assert rec.headers is not MskRecord("md", 0, 5, 1, b"k", b"v").headers  # a fresh list each time
    same = MskRecord(
        topic="md",
        partition=0,
        offset=5,
        timestamp_ms=1,
        key=b"k",
        value=b"v",
        headers=[],
        timestamp_type="CREATE_TIME",
    )
    assert rec == same and pickle.loads(pickle.dumps(rec)) == rec
    assert dataclasses.replace(rec, offset=6).offset == 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.offset = 7  # type: ignore[misc]
    assert [f.name for f in dataclasses.fields(rec)] == [
        "topic",
        "partition",
        "offset",
        "timestamp_ms",
        "key",
        "value",
        "headers",
        "timestamp_type",
    ]


def test_record_decode_checks_headers_as_before_and_reports_what_it_saw() -> None:
    from aipx.serde import DecodeError, encode
    from aipx.v1.market_data_pb2 import MarketDataEnvelope

    env = MarketDataEnvelope(venue="binance", symbol="BTC-USDT")
    enc = encode(env, event_id="e", event_time_ns=1)

    def record(value: bytes | None, headers: list[tuple[str, bytes]]) -> MskRecord:
        return MskRecord("md", 3, 7, 0, None, value, headers)

    assert record(enc.value, enc.headers).decode(MarketDataEnvelope) == env
    assert record(enc.value, []).decode(MarketDataEnvelope) == env  # headers are optional
    schema = ("aipx-schema", b"aipx.v1.MarketDataEnvelope")
    # last one wins, both ways
    later_wrong = [schema, ("aipx-schema", b"aipx.v1.TradingSignal")]
    with pytest.raises(DecodeError, match=r"schema header is 'aipx\.v1\.TradingSignal'") as info:
        record(enc.value, later_wrong).decode(MarketDataEnvelope)
    assert (info.value.schema, info.value.offset) == ("aipx.v1.TradingSignal", 7)
    assert record(enc.value, [("aipx-schema", b"x"), schema]).decode(MarketDataEnvelope) == env
    # bytes that are not UTF-8 are reported with replacement characters, never matched
    with pytest.raises(DecodeError, match="schema header is 'aipx\ufffd'") as info:
        record(enc.value, [("aipx-schema", b"aipx\xff")]).decode(MarketDataEnvelope)
    with pytest.raises(DecodeError, match="content-type is 'application/x-protobu\ufffd'"):
        record(enc.value, [("content-type", b"application/x-protobu\xff")]).decode(MarketDataEnvelope)
    # checks in order: tombstone, then content type, then schema; the schema seen is always reported
    with pytest.raises(DecodeError, match="tombstone") as info:
        record(None, [("content-type", b"text/plain"), ("aipx-schema", b"other")]).decode(MarketDataEnvelope)
    assert info.value.schema == "other"
    with pytest.raises(DecodeError, match="content-type is 'text/plain'"):
        record(enc.value, [("content-type", b"text/plain"), ("aipx-schema", b"other")]).decode(
            MarketDataEnvelope
        )
    with pytest.raises(DecodeError, match="invalid protobuf encoding") as info:
        record(b"\xff\xff", [schema]).decode(MarketDataEnvelope)
    assert info.value.schema == "aipx.v1.MarketDataEnvelope" and info.value.expected == info.value.schema
    assert record(enc.value, [("aipx-schema", None)]).decode(MarketDataEnvelope) == env  # type: ignore[list-item]
