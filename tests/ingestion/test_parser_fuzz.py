"""Fuzzing the venue parsers: whatever arrives, a parser returns events or raises MalformedFrameError.

A frame that parses yields only well-formed events (exact decimals, non-negative ids), and the normalizer
accepts them without raising.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from aipx.money import parse_decimal
from aipx.numbers import MAX_EPOCH_MS
from aipx_ingestion.domain.errors import MalformedFrameError
from aipx_ingestion.domain.events import ControlEvent, DepthDiff, DepthSnapshot, TradeEvent
from aipx_ingestion.domain.normalizer import InstrumentNormalizer
from aipx_ingestion.domain.symbols import SymbolMap
from aipx_ingestion.venues import BinanceFeed, BybitFeed, FeedAdapter, VenueConfig
from aipx_ingestion.venues._fields import FAST_PATH_MISSES
from aipx_ingestion.venues._template import TemplateFeed
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

FIXTURES = Path(__file__).parent / "fixtures"
KEYS = [
    "e",
    "E",
    "s",
    "t",
    "p",
    "q",
    "T",
    "m",
    "a",
    "f",
    "l",
    "U",
    "u",
    "b",
    "B",
    "A",
    "k",
    "i",
    "x",
    "n",
    "stream",
    "data",
    "topic",
    "type",
    "ts",
    "S",
    "v",
    "op",
    "success",
    "id",
    "result",
    "error",
    "start",
    "end",
    "interval",
    "confirm",
    "open",
    "close",
    "high",
    "low",
    "volume",
    "turnover",
]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "BTCUSDT",
            "BNBBTC",
            "1.5",
            "0",
            "-1",
            "NaN",
            "1e400",
            "trade",
            "depthUpdate",
            "snapshot",
            "delta",
            "orderbook.50.BTCUSDT",
            "publicTrade.BTCUSDT",
            "kline.1.BTCUSDT",
            "Buy",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS), children, max_size=8)
    ),
    max_leaves=25,
)


def adapters() -> list[FeedAdapter]:
    def config(cls: type[FeedAdapter]) -> VenueConfig:
        symbols = SymbolMap(["BTC-USDT", "BNB-BTC"], cls.venue_symbol)
        return VenueConfig("ws://x", "http://x", symbols, cls.default_channels)

    return [
        BinanceFeed(config(BinanceFeed)),
        BybitFeed(config(BybitFeed)),
        TemplateFeed(config(TemplateFeed)),
    ]


ADAPTERS = adapters()
FIXTURE_FRAMES = [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*/*.json"))]


def check(adapter: FeedAdapter, frame: bytes | str) -> None:
    try:
        parsed = adapter.parse(frame)
    except MalformedFrameError as exc:
        assert exc.reason and exc.reason.replace("_", "").isalpha()
        return
    for event in parsed.events:
        if isinstance(event, ControlEvent):
            continue
        if isinstance(event, TradeEvent):
            assert parse_decimal(event.price) >= 0 and parse_decimal(event.quantity) >= 0
        if isinstance(event, DepthDiff | DepthSnapshot):
            for price, qty in (*event.bids, *event.asks):
                assert parse_decimal(price) >= 0 and parse_decimal(qty) >= 0
        norm = InstrumentNormalizer(
            adapter.name,
            "BTC-USDT",
            event.venue_symbol,
            book=adapter.book_sync(),
            bbo=adapter.bbo_sync(),
            sequence_start=1,
            snapshot_interval_ns=1,
            snapshot_depth=5,
        )
        norm.on_event(event, 1)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
@SETTINGS
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes(adapter: FeedAdapter, data: bytes) -> None:
    check(adapter, data)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
@SETTINGS
@given(value=json_values)
def test_arbitrary_json(adapter: FeedAdapter, value: Any) -> None:
    check(adapter, orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS) if _encodable(value) else b"{}")


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
@SETTINGS
@given(
    index=st.integers(0, len(FIXTURE_FRAMES) - 1),
    path=st.lists(st.sampled_from(KEYS), min_size=1, max_size=3),
    value=json_values,
)
def test_mutated_documented_frames(adapter: FeedAdapter, index: int, path: list[str], value: Any) -> None:
    frame = json.loads(json.dumps(FIXTURE_FRAMES[index]))
    target = frame
    for key in path[:-1]:
        nxt = target.get(key) if isinstance(target, dict) else None
        if not isinstance(nxt, dict):
            break
        target = nxt
    if isinstance(target, dict):
        target[path[-1]] = value
    if _encodable(frame):
        check(adapter, orjson.dumps(frame))


def _encodable(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits: orjson refuses them, the venues never send them
        return False
    return True


# -- out-of-range numbers (issue #12): refused with a reason, never an exception from protobuf later --------

ISSUE_DECIMALS = ["1e-999999999", "1e400", "1e30", "1e999999999", "\uff11\uff12"]


def _binance_trade(price: Any = "0.001", time_ms: Any = 1672515782136, trade_id: Any = 12345) -> bytes:
    data = {"e": "trade", "E": 1, "s": "BNBBTC", "t": trade_id, "p": price, "q": "100", "T": time_ms,
            "m": True}  # fmt: skip
    return orjson.dumps({"stream": "bnbbtc@trade", "data": data})


def _bybit_trade(price: Any = "16578.50", time_ms: Any = 1672304486865) -> bytes:
    data = [{"T": time_ms, "s": "BTCUSDT", "S": "Buy", "v": "0.001", "p": price, "i": "x1"}]
    return orjson.dumps({"topic": "publicTrade.BTCUSDT", "ts": 1672304486868, "data": data})


@pytest.mark.parametrize("build", [_binance_trade, _bybit_trade], ids=["binance", "bybit"])
@SETTINGS
@given(text=st.text(max_size=30) | st.from_regex(r"[0-9]{0,25}(\.[0-9]{0,25})?([eE][+-]?[0-9]{1,10})?"))
@example(text="1e-999999999")
@example(text="1e400")
@example(text="1e30")
@example(text="1e999999999")
@example(text="\uff11\uff12")
@example(text="1" * 21)
def test_decimals_outside_the_bounds_are_malformed(build: Any, text: str) -> None:
    adapter = ADAPTERS[0] if build is _binance_trade else ADAPTERS[1]
    check(adapter, build(price=text))
    if text in ISSUE_DECIMALS:
        with pytest.raises(MalformedFrameError) as caught:
            adapter.parse(build(price=text))
        assert caught.value.reason == "bad_decimal"


@pytest.mark.parametrize("build", [_binance_trade, _bybit_trade], ids=["binance", "bybit"])
@SETTINGS
@given(time_ms=st.integers(0, 2**64 - 1))
@example(time_ms=2**53)
@example(time_ms=2**63 - 1)
@example(time_ms=2**64 - 1)
def test_timestamps_outside_int64_nanoseconds_are_malformed(build: Any, time_ms: int) -> None:
    adapter = ADAPTERS[0] if build is _binance_trade else ADAPTERS[1]
    frame = build(time_ms=time_ms)
    check(adapter, frame)  # parses to events the normalizer takes, or MalformedFrameError
    if time_ms > MAX_EPOCH_MS:
        with pytest.raises(MalformedFrameError) as caught:
            adapter.parse(frame)
        assert caught.value.reason == "out_of_range"


@SETTINGS
@given(trade_id=st.integers(0, 2**64 - 1))
@example(trade_id=2**63)
def test_ids_beyond_int64_are_malformed(trade_id: int) -> None:
    check(ADAPTERS[0], _binance_trade(trade_id=trade_id))
    if trade_id > 2**63 - 1:
        with pytest.raises(MalformedFrameError, match="above"):
            ADAPTERS[0].parse(_binance_trade(trade_id=trade_id))


def test_plain_decimals_pass_unchanged_and_exponents_are_canonicalised() -> None:
    (event,) = ADAPTERS[0].parse(_binance_trade(price="65012.340")).events
    assert isinstance(event, TradeEvent) and event.price == "65012.340"
    (event,) = ADAPTERS[0].parse(_binance_trade(price="1.5e-3")).events
    assert isinstance(event, TradeEvent) and event.price == "0.0015"
    for negative in ("-1", "-1e-3"):
        with pytest.raises(MalformedFrameError, match="negative"):
            ADAPTERS[0].parse(_binance_trade(price=negative))


BINANCE_FRAMES = [f for f in FIXTURE_FRAMES if isinstance(f, dict) and "stream" in f]


def _outcome(parse: Any, raw: bytes) -> Any:
    """What a parser makes of a frame: its parsed frame, or the reason it refuses it."""
    try:
        return parse(raw)
    except MalformedFrameError as exc:
        return exc.reason


@SETTINGS
@given(
    index=st.integers(0, len(BINANCE_FRAMES) - 1),
    key=st.sampled_from(KEYS),
    value=json_values | st.integers(2**62, 2**64 - 1) | st.sampled_from(ISSUE_DECIMALS),
)
@example(index=0, key="T", value=2**53)
@example(index=0, key="p", value="1e400")
def test_binance_fast_path_agrees_with_the_general_parser(index: int, key: str, value: Any) -> None:
    """The typed Structs (trade, aggTrade, bookTicker) accept exactly what the general parser accepts, with
    the same events; whatever they refuse, the general parser reports with its reason."""
    frame = json.loads(json.dumps(BINANCE_FRAMES[index]))
    frame["data"][key] = value
    if not _encodable(frame):
        return
    raw = orjson.dumps(frame)
    feed = ADAPTERS[0]
    assert isinstance(feed, BinanceFeed)
    general = _outcome(feed._parse_general, raw)
    try:
        fast: Any = feed._parse_fast(raw)
    except Exception:  # refused or not covered: parse() falls back to the general parser
        assert feed.parse(raw) == general if not isinstance(general, str) else True
        return
    assert fast == general


@pytest.mark.parametrize("value", ["1 2", " 1", "1 ", "1\n", "\u0661", "1.", ".5", "0" * 21, "1." + "0" * 19])
def test_binance_fast_path_checks_every_decimal_of_a_frame_in_one_call(value: str) -> None:
    """The fast path checks a frame's decimals joined by spaces in one regex call: a value holding a space
    (or anything else not plain) cannot make the joined text pass; each such frame is refused by the fast
    path and reported as the general parser reports it."""
    feed = ADAPTERS[0]
    assert isinstance(feed, BinanceFeed)
    checked = 0
    for original in BINANCE_FRAMES:
        for key in ("p", "q", "b", "B", "a", "A"):
            if not isinstance(original["data"].get(key), str):
                continue
            frame = json.loads(json.dumps(original))
            frame["data"][key] = value
            raw = orjson.dumps(frame)
            with pytest.raises(FAST_PATH_MISSES):
                feed._parse_fast(raw)
            if value.strip(" \n") != value or " " in value or not value.isascii():
                with pytest.raises(MalformedFrameError) as caught:
                    feed.parse(raw)
                assert caught.value.reason == "bad_decimal", (key, value)
            else:  # "1.", ".5", many digits: as the general parser canonicalises or refuses them
                assert _outcome(feed.parse, raw) == _outcome(feed._parse_general, raw)
            checked += 1
    assert checked >= 6  # trades' p, q and quotes' b, B, a, A at least


BYBIT_FRAMES = [f for f in FIXTURE_FRAMES if isinstance(f, dict) and "topic" in f]
BYBIT_FRAME_KEYS = ["topic", "ts", "type", "data"]
BYBIT_DATA_KEYS = ["s", "T", "i", "p", "v", "S", "u", "b", "a", "seq"]


@SETTINGS
@given(
    index=st.integers(0, len(BYBIT_FRAMES) - 1),
    key=st.sampled_from(BYBIT_FRAME_KEYS + BYBIT_DATA_KEYS),
    value=json_values | st.integers(2**62, 2**64 - 1) | st.sampled_from(ISSUE_DECIMALS),
)
@example(index=0, key="T", value=2**53)
@example(index=0, key="p", value="1e400")
def test_bybit_fast_path_agrees_with_the_general_parser(index: int, key: str, value: Any) -> None:
    """The typed Structs (publicTrade, orderbook) accept exactly what the general parser accepts, with the
    same events; whatever they refuse, the general parser reports with its reason."""
    frame = json.loads(json.dumps(BYBIT_FRAMES[index]))
    if key in BYBIT_FRAME_KEYS:
        frame[key] = value
    else:
        data = frame["data"]
        target = data[0] if isinstance(data, list) and data else data
        if isinstance(target, dict):
            target[key] = value
    if not _encodable(frame):
        return
    raw = orjson.dumps(frame)
    feed = ADAPTERS[1]
    assert isinstance(feed, BybitFeed)
    general = _outcome(feed._parse_general, raw)
    try:
        fast: Any = feed._parse_fast(raw)
    except Exception:  # refused or not covered: parse() falls back to the general parser
        assert feed.parse(raw) == general if not isinstance(general, str) else True
        return
    assert fast == general


def test_bybit_fixture_frames_take_the_fast_path() -> None:
    feed = ADAPTERS[1]
    assert isinstance(feed, BybitFeed)
    covered = [f for f in BYBIT_FRAMES if f["topic"].startswith(("publicTrade.", "orderbook."))]
    assert covered
    for frame in covered:
        raw = orjson.dumps(frame)
        assert feed._parse_fast(raw) == feed._parse_general(raw)
