"""Binance: every documented message type parses and normalizes into the right envelope."""

from __future__ import annotations

from pathlib import Path

import pytest
from aipx.v1.common_pb2 import SIDE_BUY, SIDE_SELL
from aipx_ingestion.domain.book import DiffDepthSync
from aipx_ingestion.domain.errors import MalformedFrameError
from aipx_ingestion.domain.events import (
    CandleEvent,
    ControlEvent,
    DepthDiff,
    MarketEvent,
    QuoteEvent,
    TradeEvent,
)
from aipx_ingestion.domain.normalizer import InstrumentNormalizer
from aipx_ingestion.domain.symbols import SymbolMap
from aipx_ingestion.venues import BinanceFeed, VenueConfig

FIXTURES = Path(__file__).parent / "fixtures" / "binance"
MS = 1_000_000


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def feed() -> BinanceFeed:
    symbols = SymbolMap(["BNB-BTC", "BNB-USDT"], BinanceFeed.venue_symbol)
    return BinanceFeed(
        VenueConfig(
            "ws://sim/stream", "http://sim", symbols, BinanceFeed.default_channels, snapshot_depth=100
        )
    )


def only(feed: BinanceFeed, name: str) -> MarketEvent:
    parsed = feed.parse(fixture(name))
    assert len(parsed.events) == 1
    event = parsed.events[0]
    assert not isinstance(event, ControlEvent)
    return event


def normalizer(symbol: str = "BNB-BTC", venue_symbol: str = "BNBBTC") -> InstrumentNormalizer:
    return InstrumentNormalizer(
        "binance", symbol, venue_symbol, book=DiffDepthSync(), bbo=None, sequence_start=1,
        snapshot_interval_ns=0, snapshot_depth=100,
    )  # fmt: skip


def test_trade(feed: BinanceFeed) -> None:
    parsed = feed.parse(fixture("trade.json"))
    assert parsed.stream == "bnbbtc@trade"
    event = parsed.events[0]
    assert event == TradeEvent(
        venue_symbol="BNBBTC", exchange_time_ns=1672515782136 * MS, trade_id="12345", sequence_id=12345,
        price="0.001", quantity="100", aggressor_side=SIDE_SELL,  # m=true: the buyer was the maker
    )  # fmt: skip
    assert isinstance(event, TradeEvent)
    (env,) = normalizer().on_event(event, ingest_ns=5).envelopes
    assert (env.venue, env.symbol, env.venue_symbol) == ("binance", "BNB-BTC", "BNBBTC")
    assert env.exchange_time_ns == 1672515782136 * MS and env.ingest_time_ns == 5
    assert env.event_id == "binance:BNB-BTC:trade:12345"
    assert env.WhichOneof("payload") == "trade"
    assert (env.trade.trade_id, env.trade.price.value, env.trade.quantity.value) == ("12345", "0.001", "100")
    assert env.trade.aggressor_side == SIDE_SELL


def test_agg_trade(feed: BinanceFeed) -> None:
    event = only(feed, "agg_trade.json")
    assert isinstance(event, TradeEvent)
    assert event.aggregated and (event.first_trade_id, event.last_trade_id) == (100, 105)
    assert event.aggressor_side == SIDE_BUY
    (env,) = normalizer().on_event(event, 1).envelopes
    assert env.event_id == "binance:BNB-BTC:agg_trade:12345"
    assert (env.trade.first_trade_id, env.trade.last_trade_id) == (100, 105)


def test_book_ticker(feed: BinanceFeed) -> None:
    event = only(feed, "book_ticker.json")
    assert event == QuoteEvent(
        "BNBUSDT", 0, 400900217, "25.35190000", "31.21000000", "25.36520000", "40.66000000"
    )
    (env,) = normalizer("BNB-USDT", "BNBUSDT").on_event(event, 1).envelopes
    assert env.quote.bid_price.value == "25.35190000" and env.quote.ask_size.value == "40.66000000"
    assert env.quote.update_id == 400900217
    assert env.exchange_time_ns == 0  # spot bookTicker carries no event time


def test_depth_update_then_snapshot(feed: BinanceFeed) -> None:
    event = only(feed, "depth_update.json")
    assert isinstance(event, DepthDiff)
    assert (event.first_update_id, event.final_update_id) == (157, 160)
    assert event.bids == (("0.0024", "10"),) and event.asks == (("0.0026", "100"),)
    norm = normalizer()
    first = norm.on_event(event, 1)
    assert first.envelopes == [] and first.resync is not None  # buffered until a snapshot arrives
    snapshot = feed.parse_snapshot(fixture("depth_snapshot.json"), "BNBBTC", received_ns=7)
    assert snapshot.last_update_id == 1027024 and snapshot.depth == 100
    assert snapshot.bids == (("4.00000000", "431.00000000"),)
    envs = norm.on_event(snapshot, 8).envelopes
    assert [e.WhichOneof("payload") for e in envs] == ["book_snapshot"]  # the buffered diff is older: dropped
    assert envs[0].book_snapshot.last_update_id == 1027024
    assert envs[0].event_id == "binance:BNB-BTC:book_snapshot:1027024"


def test_kline(feed: BinanceFeed) -> None:
    event = only(feed, "kline.json")
    assert isinstance(event, CandleEvent)
    assert (event.interval, event.open_time_ns, event.close_time_ns) == (
        "1m",
        1672515780000 * MS,
        1672515839999 * MS,
    )
    assert (event.open, event.high, event.low, event.close) == ("0.0010", "0.0025", "0.0015", "0.0020")
    assert (event.volume, event.quote_volume, event.trade_count, event.closed) == (
        "1000",
        "1.0000",
        100,
        False,
    )
    (env,) = normalizer().on_event(event, 1).envelopes
    assert env.candle.interval == "1m" and env.candle.close.value == "0.0020" and not env.candle.closed


def test_control_frames(feed: BinanceFeed) -> None:
    ok = feed.parse(fixture("subscribe_response.json"))
    assert ok.stream is None and ok.events == (ControlEvent("response", ok=True),)
    error = feed.parse(fixture("error_response.json")).events[0]
    assert isinstance(error, ControlEvent) and not error.ok and "Invalid request" in error.detail


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"{nope", "invalid_json"),
        (b"[1]", "not_object"),
        (b'{"stream":"x","data":{"e":"mystery"}}', "unknown_type"),
        (b'{"stream":"x","data":{"e":"trade","s":"BNBBTC"}}', "missing_field"),
        (b'{"stream":"x","data":{"e":"trade","E":1,"s":"BNBBTC","t":1,"p":"NaN","q":"1","T":1,"m":true}}',
         "bad_decimal"),
        (b'{"stream":"x","data":{"e":"trade","E":1,"s":"BNBBTC","t":-1,"p":"1","q":"1","T":1,"m":true}}',
         "bad_integer"),
        (b'{"stream":"x","data":{"e":"depthUpdate","E":1,"s":"BNBBTC","U":9,"u":3,"b":[],"a":[]}}',
         "bad_range"),
        (b'{"stream":"x","data":{"e":"depthUpdate","E":1,"s":"BNBBTC","U":1,"u":3,"b":[["1"]],"a":[]}}',
         "bad_levels"),
    ],
)  # fmt: skip
def test_malformed_frames_are_rejected_with_a_reason(feed: BinanceFeed, frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedFrameError) as info:
        feed.parse(frame)
    assert info.value.reason == reason


def test_exponent_decimals_are_canonicalized(feed: BinanceFeed) -> None:
    frame = (
        b'{"stream":"x","data":{"e":"trade","E":1,"s":"BNBBTC","t":1,"p":"1E-5","q":"2.50","T":1,"m":true}}'
    )
    event = feed.parse(frame).events[0]
    assert isinstance(event, TradeEvent) and (event.price, event.quantity) == ("0.00001", "2.50")


def test_subscribe_requests_are_batched(feed: BinanceFeed) -> None:
    streams = list(feed.streams())
    assert "bnbbtc@depth@100ms" in streams and feed.streams()["bnbusdt@trade"] == "BNBUSDT"
    messages = feed.subscribe_messages([f"s{i}" for i in range(120)])
    assert len(messages) == 3 and '"method":"SUBSCRIBE"' in messages[0]
    assert feed.snapshot_url("BNBBTC") == "http://sim/api/v3/depth?symbol=BNBBTC&limit=100"


def test_unknown_channel_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        BinanceFeed(VenueConfig("ws://x", "", SymbolMap(["BTC-USDT"], BinanceFeed.venue_symbol), ("tardes",)))
