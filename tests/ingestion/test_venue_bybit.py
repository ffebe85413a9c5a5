"""Bybit v5 public: every documented message type parses and normalizes into the right envelope."""

from __future__ import annotations

from pathlib import Path

import pytest
from aipx.v1.common_pb2 import SIDE_BUY
from aipx_ingestion.domain.errors import MalformedFrameError
from aipx_ingestion.domain.events import CandleEvent, ControlEvent, DepthDiff, DepthSnapshot, TradeEvent
from aipx_ingestion.domain.normalizer import InstrumentNormalizer, Stream
from aipx_ingestion.domain.symbols import SymbolMap
from aipx_ingestion.venues import BybitFeed, VenueConfig

FIXTURES = Path(__file__).parent / "fixtures" / "bybit"
MS = 1_000_000


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def feed() -> BybitFeed:
    symbols = SymbolMap(["BTC-USDT"], BybitFeed.venue_symbol)
    channels = ("publicTrade", "orderbook.50", "orderbook.1", "kline.5")
    return BybitFeed(VenueConfig("ws://sim/bybit/v5/public/spot", "", symbols, channels))


def normalizer(feed: BybitFeed) -> InstrumentNormalizer:
    return InstrumentNormalizer(
        "bybit", "BTC-USDT", "BTCUSDT", book=feed.book_sync(), bbo=feed.bbo_sync(), sequence_start=100,
        snapshot_interval_ns=0, snapshot_depth=50,
    )  # fmt: skip


def test_public_trade(feed: BybitFeed) -> None:
    parsed = feed.parse(fixture("public_trade.json"))
    assert parsed.stream == "publicTrade.BTCUSDT"
    (event,) = parsed.events
    assert event == TradeEvent(
        venue_symbol="BTCUSDT", exchange_time_ns=1672304486865 * MS,
        trade_id="20f43950-d8dd-5b31-9112-a178eb6023af", sequence_id=None, price="16578.50", quantity="0.001",
        aggressor_side=SIDE_BUY,
    )  # fmt: skip
    assert isinstance(event, TradeEvent)
    norm = normalizer(feed)
    (env,) = norm.on_event(event, 3).envelopes
    assert env.event_id == "bybit:BTC-USDT:trade:20f43950-d8dd-5b31-9112-a178eb6023af"
    assert env.source_sequence == 100 and env.trade.price.value == "16578.50"
    assert norm.on_event(event, 4).envelopes == []  # the same trade id again: a duplicate


def test_orderbook_snapshot_and_delta(feed: BybitFeed) -> None:
    snapshot = feed.parse(fixture("orderbook_snapshot.json")).events[0]
    assert isinstance(snapshot, DepthSnapshot) and not snapshot.bbo
    assert (snapshot.last_update_id, snapshot.depth, snapshot.exchange_time_ns) == (
        18521288,
        50,
        1672304484978 * MS,
    )
    delta = feed.parse(fixture("orderbook_delta.json")).events[0]
    assert isinstance(delta, DepthDiff)
    assert (delta.first_update_id, delta.final_update_id) == (18521289, 18521289)
    assert ("30240.00", "0") in delta.bids
    norm = normalizer(feed)
    assert norm.on_event(delta, 1).envelopes == []  # before the snapshot the book is unknown
    (snap_env,) = norm.on_event(snapshot, 2).envelopes
    assert snap_env.book_snapshot.last_update_id == 18521288 and len(snap_env.book_snapshot.bids) == 2
    (delta_env,) = norm.on_event(delta, 3).envelopes
    assert delta_env.book_delta.final_update_id == 18521289
    assert delta_env.event_id == "bybit:BTC-USDT:book_delta:18521289-18521289"
    assert norm.book.book.best()[1] == ("16611.00", "0.029")


def test_orderbook_1_feeds_quotes(feed: BybitFeed) -> None:
    norm = normalizer(feed)
    snapshot = feed.parse(fixture("orderbook1_snapshot.json")).events[0]
    assert isinstance(snapshot, DepthSnapshot) and snapshot.bbo
    (quote,) = norm.on_event(snapshot, 1).envelopes
    assert quote.WhichOneof("payload") == "quote"
    assert (quote.quote.bid_price.value, quote.quote.ask_price.value) == ("16493.50", "16611.00")
    assert quote.quote.update_id == 2441310
    delta = feed.parse(fixture("orderbook1_delta.json")).events[0]
    assert isinstance(delta, DepthDiff) and delta.bbo
    (quote2,) = norm.on_event(delta, 2).envelopes
    assert (quote2.quote.bid_price.value, quote2.quote.bid_size.value) == ("16494.00", "0.300")
    assert quote2.quote.ask_price.value == "16611.00"  # the ask side did not change
    assert quote2.source_sequence == quote.source_sequence + 1


def test_kline(feed: BybitFeed) -> None:
    (event,) = feed.parse(fixture("kline.json")).events
    assert isinstance(event, CandleEvent)
    assert (event.interval, event.open_time_ns, event.close_time_ns) == (
        "5m",
        1672324800000 * MS,
        1672325099999 * MS,
    )
    assert (event.open, event.close, event.volume, event.quote_volume) == (
        "16649.5",
        "16677",
        "2.081",
        "34666.4005",
    )
    assert event.exchange_time_ns == 1672324988882 * MS and not event.closed
    (env,) = normalizer(feed).on_event(event, 1).envelopes
    assert env.candle.interval == "5m" and env.candle.high.value == "16677"


@pytest.mark.parametrize("name", ["subscribe_response.json", "pong_spot.json", "pong_linear.json"])
def test_control_frames(feed: BybitFeed, name: str) -> None:
    parsed = feed.parse(fixture(name))
    assert parsed.stream is None
    assert isinstance(parsed.events[0], ControlEvent) and parsed.events[0].ok


def test_failed_subscription_is_reported_not_ok(feed: BybitFeed) -> None:
    frame = b'{"success":false,"ret_msg":"error:already subscribed","conn_id":"c","op":"subscribe"}'
    event = feed.parse(frame).events[0]
    assert isinstance(event, ControlEvent) and not event.ok and "already" in event.detail


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "invalid_json"),
        (b'"x"', "not_object"),
        (b'{"nothing":1}', "unknown_type"),
        (b'{"topic":"mystery.BTCUSDT","ts":1,"data":{}}', "unknown_type"),
        (b'{"topic":"publicTrade.BTCUSDT","ts":1,"data":[{"p":"1"}]}', "missing_field"),
        (b'{"topic":"publicTrade.BTCUSDT","ts":1,"data":[]}', "bad_levels"),
        (b'{"topic":"orderbook.50.BTCUSDT","type":"weird","ts":1,"data":{"s":"BTCUSDT","b":[],"a":[],"u":1}}',
         "unknown_type"),
        (b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[],"a":[],"u":-1}}',
         "bad_integer"),
        (b'{"topic":"kline.7.BTCUSDT","ts":1,"data":[{"interval":"7"}]}', "unknown_type"),
    ],
)  # fmt: skip
def test_malformed_frames_are_rejected_with_a_reason(feed: BybitFeed, frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedFrameError) as info:
        feed.parse(frame)
    assert info.value.reason == reason


def test_resync_resubscribes_the_book_topic(feed: BybitFeed) -> None:
    assert feed.resync_streams(Stream.DEPTH, "BTCUSDT") == ["orderbook.50.BTCUSDT"]
    assert feed.resync_streams(Stream.QUOTE, "BTCUSDT") == ["orderbook.1.BTCUSDT"]
    assert '"op":"unsubscribe"' in feed.subscribe_messages(["orderbook.50.BTCUSDT"], unsubscribe=True)[0]
    assert feed.app_ping() is not None and '"op":"ping"' in (feed.app_ping() or "")
    assert len(feed.subscribe_messages([f"t{i}" for i in range(25)])) == 3  # at most 10 args per request


def test_two_book_depths_are_a_configuration_error() -> None:
    symbols = SymbolMap(["BTC-USDT"], BybitFeed.venue_symbol)
    with pytest.raises(ValueError, match="at most one book depth"):
        BybitFeed(VenueConfig("ws://x", "", symbols, ("orderbook.50", "orderbook.200")))
