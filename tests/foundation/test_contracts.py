"""Contracts: generated code is reproducible and its staleness is detected; serde is exact and strict."""

from __future__ import annotations

import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from aipx import money, serde
from aipx.v1.common_pb2 import Decimal as PbDecimal
from aipx.v1.market_data_pb2 import MarketDataEnvelope, Trade
from aipx.v1.orders_pb2 import OrderEvent

ROOT = Path(__file__).resolve().parents[2]
GEN = ROOT / "scripts" / "gen_proto.py"


def run_gen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GEN), *args], capture_output=True, text=True, cwd=ROOT, check=False
    )


def test_committed_generated_code_is_current() -> None:
    result = run_gen("--check")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_stale_generated_code_fails_the_check(tmp_path: Path) -> None:
    out = tmp_path / "src"
    shutil.copytree(ROOT / "libs" / "aipx" / "src" / "aipx" / "v1", out / "aipx" / "v1")
    stub = out / "aipx" / "v1" / "orders_pb2.pyi"
    stub.write_text(stub.read_text() + "\n# hand edit\n")
    (out / "aipx" / "v1" / "market_data_pb2.py").unlink()

    result = run_gen("--check", "--out", str(out))

    assert result.returncode == 1
    assert "stale" in result.stderr
    assert "orders_pb2.pyi" in result.stderr
    assert "market_data_pb2.py" in result.stderr


def test_generation_is_reproducible(tmp_path: Path) -> None:
    assert run_gen("--out", str(tmp_path / "a")).returncode == 0
    assert run_gen("--out", str(tmp_path / "b")).returncode == 0
    a = sorted((tmp_path / "a" / "aipx" / "v1").glob("*.py*"))
    b = sorted((tmp_path / "b" / "aipx" / "v1").glob("*.py*"))
    assert [p.name for p in a] == [p.name for p in b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))


def envelope() -> MarketDataEnvelope:
    return MarketDataEnvelope(
        venue="binance",
        symbol="BTC-USDT",
        venue_symbol="BTCUSDT",
        exchange_time_ns=1_700_000_000_123_000_000,
        ingest_time_ns=1_700_000_000_124_000_000,
        source_sequence=42,
        event_id="binance:BTC-USDT:trade:1001",
        trade=Trade(trade_id="1001", price=money.to_pb("27123.45"), quantity=money.to_pb("0.00100")),
    )


def test_encode_sets_standard_headers_and_decode_round_trips() -> None:
    msg = envelope()
    encoded = serde.encode(msg, event_id=msg.event_id, event_time_ns=msg.exchange_time_ns, trace_id="t-1")
    names = [k for k, _ in encoded.headers]
    assert names == ["content-type", "aipx-schema", "aipx-event-id", "aipx-event-time-ns", "aipx-trace-id"]
    assert serde.header(encoded.headers, serde.HEADER_SCHEMA) == "aipx.v1.MarketDataEnvelope"
    decoded = serde.decode(encoded.value, encoded.headers, MarketDataEnvelope)
    assert decoded == msg
    assert money.require(decoded.trade.quantity, field="quantity") == Decimal("0.00100")


def test_a_stored_serialized_message_gets_the_same_record_as_encoding_it() -> None:
    msg = envelope()
    direct = serde.encode(msg, event_id="e-1", event_time_ns=5, trace_id="t")
    schema = "aipx.v1.MarketDataEnvelope"
    stored = serde.encoded(msg.SerializeToString(), schema, event_id="e-1", event_time_ns=5, trace_id="t")
    assert stored == direct


def test_decode_refuses_a_record_of_another_schema() -> None:
    msg = envelope()
    encoded = serde.encode(msg, event_id="e", event_time_ns=1)
    with pytest.raises(serde.DecodeError, match=r"schema header is 'aipx\.v1\.MarketDataEnvelope'") as info:
        serde.decode(encoded.value, encoded.headers, OrderEvent, topic="order-events", partition=2, offset=7)
    assert (info.value.topic, info.value.partition, info.value.offset) == ("order-events", 2, 7)
    assert "order-events[2]@7" in str(info.value)


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x08"])
def test_decode_reports_invalid_bytes(garbage: bytes) -> None:
    with pytest.raises(serde.DecodeError, match="invalid protobuf encoding"):
        serde.decode(garbage, None, MarketDataEnvelope, topic="market-data-raw", partition=0, offset=1)


def test_decode_reports_tombstones_and_foreign_content_types() -> None:
    with pytest.raises(serde.DecodeError, match="tombstone"):
        serde.decode(None, None, MarketDataEnvelope)
    with pytest.raises(serde.DecodeError, match="content-type is 'application/json'"):
        serde.decode(b"{}", [("content-type", b"application/json")], MarketDataEnvelope)


def test_every_contract_message_is_registered() -> None:
    types = serde.message_types()
    for name in (
        "aipx.v1.MarketDataEnvelope",
        "aipx.v1.TradingSignal",
        "aipx.v1.Decision",
        "aipx.v1.OrderEvent",
    ):
        assert serde.message_type(name).DESCRIPTOR.full_name == name
    assert len(types) >= 30


def test_money_is_exact_and_refuses_floats() -> None:
    assert money.to_pb(Decimal("1E-8")).value == "0.00000001"
    assert money.from_pb(PbDecimal()) is None
    with pytest.raises(TypeError, match="binary floats"):
        money.to_pb(0.1)  # type: ignore[arg-type]
    for bad in ("NaN", "Infinity", "1.2.3", "abc"):
        with pytest.raises(money.InvalidDecimalError):
            money.parse_decimal(bad, field="price")


def test_weighted_averages_have_a_fixed_scale() -> None:
    avg = money.weighted_average(Decimal("3640.99") * 2 + Decimal("3640.98"), Decimal("3"))
    assert avg == Decimal("3640.986666666667")
    assert avg.as_tuple().exponent == -12
    assert money.format_decimal(money.weighted_average(Decimal("2999"), Decimal("2"))) == "1499.5"
    assert money.format_decimal(money.weighted_average(Decimal("3000"), Decimal("2"))) == "1500"
