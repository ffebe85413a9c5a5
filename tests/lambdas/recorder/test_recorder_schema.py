"""Protobuf -> Arrow mapping of the recorder, without I/O."""

from __future__ import annotations

import io
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aipx.v1.common_pb2 import SIDE_BUY
from aipx.v1.common_pb2 import Decimal as PbDecimal
from aipx.v1.decisions_pb2 import VOTE_LONG, Decision
from aipx.v1.market_data_pb2 import MarketDataEnvelope, Trade
from aipx.v1.orders_pb2 import ORDER_EVENT_TYPE_FILLED, OrderEvent
from aipx.v1.signals_pb2 import SIGNAL_DIRECTION_LONG, TradingSignal
from aipx_recorder.schema import DECIMAL_TYPE, ValueOutOfRangeError, arrow_schema, decimals, to_table


def field_type(message: type, path: str) -> pa.DataType:
    schema = arrow_schema(message.DESCRIPTOR)  # type: ignore[attr-defined]
    head, *rest = path.split(".")
    t = schema.field(head).type
    for part in rest:
        t = t.value_type.field(part).type if part == "item" else t.field(part).type
    return t


def test_scalar_types_are_faithful() -> None:
    assert field_type(MarketDataEnvelope, "exchange_time_ns") == pa.int64()
    assert field_type(MarketDataEnvelope, "source_sequence") == pa.uint64()
    assert field_type(MarketDataEnvelope, "book_snapshot.depth") == pa.uint32()
    assert field_type(TradingSignal, "watermark.partition") == pa.int32()
    assert field_type(TradingSignal, "strength") == pa.float64()
    assert field_type(MarketDataEnvelope, "candle.closed") == pa.bool_()
    assert field_type(MarketDataEnvelope, "venue") == pa.string()


def test_decimals_enums_nested_repeated_and_maps() -> None:
    assert field_type(MarketDataEnvelope, "trade.price") == DECIMAL_TYPE
    assert field_type(MarketDataEnvelope, "trade.aggressor_side") == pa.string()
    assert field_type(MarketDataEnvelope, "book_delta.bids") == pa.list_(
        pa.struct([pa.field("price", DECIMAL_TYPE), pa.field("quantity", DECIMAL_TYPE)])
    )
    assert field_type(TradingSignal, "reasons") == pa.list_(pa.string())
    assert field_type(TradingSignal, "indicators") == pa.map_(pa.string(), pa.float64())
    assert isinstance(field_type(OrderEvent, "order"), pa.StructType)
    assert field_type(OrderEvent, "order.tags") == pa.map_(pa.string(), pa.string())
    schema = arrow_schema(MarketDataEnvelope.DESCRIPTOR)
    # oneof members: one nullable struct each; plain proto3 scalars are never null
    assert all(
        schema.field(m).nullable for m in ("trade", "quote", "book_delta", "book_snapshot", "candle", "gap")
    )
    assert not schema.field("venue").nullable and not schema.field("exchange_time_ns").nullable
    assert schema.metadata == {b"aipx.protobuf": b"aipx.v1.MarketDataEnvelope"}


def trade(i: int, price: str) -> MarketDataEnvelope:
    env = MarketDataEnvelope(
        venue="binance", symbol="BTC-USDT", exchange_time_ns=-5, source_sequence=2**64 - 1
    )
    env.trade.CopyFrom(Trade(trade_id=str(i), price=PbDecimal(value=price), aggressor_side=SIDE_BUY))
    return env


def test_values_round_trip_exactly_through_parquet() -> None:
    quote = MarketDataEnvelope(venue="bybit", symbol="ETH-USDT")
    quote.quote.bid_price.value = "3000.5"
    book = MarketDataEnvelope(venue="bybit", symbol="ETH-USDT")
    book.book_delta.bids.add(price=PbDecimal(value="1.25"), quantity=PbDecimal(value="0"))
    messages = [trade(1, "27123.450000001"), quote, book, trade(2, "-0.000000000000000001")]
    table = to_table(MarketDataEnvelope.DESCRIPTOR, messages)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    rows = pq.read_table(io.BytesIO(sink.getvalue())).to_pylist()
    assert rows[0]["trade"]["price"] == Decimal("27123.450000001")
    assert rows[0]["trade"]["quantity"] is None  # unset Decimal -> null, never 0
    assert rows[0]["trade"]["aggressor_side"] == "SIDE_BUY"
    assert rows[0]["exchange_time_ns"] == -5 and rows[0]["source_sequence"] == 2**64 - 1
    assert rows[0]["quote"] is None and rows[1]["trade"] is None
    assert rows[1]["quote"]["bid_price"] == Decimal("3000.5") and rows[1]["quote"]["ask_price"] is None
    assert rows[2]["book_delta"]["bids"] == [{"price": Decimal("1.25"), "quantity": Decimal("0")}]
    assert rows[2]["book_delta"]["asks"] == []
    assert rows[3]["trade"]["price"] == Decimal("-1E-18")


def test_maps_lists_nested_and_unknown_enum_numbers() -> None:
    signal = TradingSignal(signal_id="s1", direction=SIGNAL_DIRECTION_LONG, reasons=["rsi<30", "ema cross"])
    signal.indicators["rsi"] = 28.5
    signal.indicators["ema"] = 101.25
    signal.watermark.offset = 7
    odd = TradingSignal(signal_id="s2")
    odd.direction = 42  # type: ignore[assignment]  # a number this contract version does not know
    rows = to_table(TradingSignal.DESCRIPTOR, [signal, odd]).to_pylist()
    assert rows[0]["direction"] == "SIGNAL_DIRECTION_LONG" and rows[1]["direction"] == "42"
    assert rows[0]["reasons"] == ["rsi<30", "ema cross"] and rows[1]["reasons"] == []
    assert rows[0]["indicators"] == [("ema", 101.25), ("rsi", 28.5)]  # sorted keys: deterministic files
    assert rows[0]["watermark"]["offset"] == 7 and rows[1]["watermark"] is None
    decision = Decision(decision_id="d", signal_id="s1")
    decision.votes.add(analyst="technical", vote=VOTE_LONG, confidence=0.75)
    assert to_table(Decision.DESCRIPTOR, [decision]).to_pylist()[0]["votes"] == [
        {"analyst": "technical", "vote": "VOTE_LONG", "confidence": 0.75, "rationale": ""}
    ]
    event = OrderEvent(event_id="e", type=ORDER_EVENT_TYPE_FILLED)
    event.fill.price.value = "10.5"
    event.order.tags["strategy"] = "ema"
    row = to_table(OrderEvent.DESCRIPTOR, [event]).to_pylist()[0]
    assert row["type"] == "ORDER_EVENT_TYPE_FILLED" and row["fill"]["price"] == Decimal("10.5")
    assert row["order"]["tags"] == [("strategy", "ema")] and row["position"] is None


def test_decimals_that_do_not_fit_exactly_are_an_error_naming_the_rows() -> None:
    with pytest.raises(ValueOutOfRangeError) as info:
        decimals(["1.5", "0.0000000000000000001", "", "123456789012345678901.5", "abc", "2"])
    assert info.value.rows == [1, 3, 4]
    assert decimals(["", "1e-3"]).to_pylist() == [None, Decimal("0.001")]


def test_all_topic_payloads_convert_with_their_schema() -> None:
    for message in (MarketDataEnvelope, TradingSignal, Decision, OrderEvent):
        table = to_table(message.DESCRIPTOR, [message(), message()])
        assert table.schema == arrow_schema(message.DESCRIPTOR)
        pq.write_table(table, io.BytesIO())  # all-null nested structs are valid Parquet too
