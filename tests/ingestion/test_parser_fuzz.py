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
from aipx_ingestion.domain.errors import MalformedFrameError
from aipx_ingestion.domain.events import ControlEvent, DepthDiff, DepthSnapshot, TradeEvent
from aipx_ingestion.domain.normalizer import InstrumentNormalizer
from aipx_ingestion.domain.symbols import SymbolMap
from aipx_ingestion.venues import BinanceFeed, BybitFeed, FeedAdapter, VenueConfig
from aipx_ingestion.venues._template import TemplateFeed
from hypothesis import HealthCheck, given, settings
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
