"""Bybit v5 public market data (spot or linear): publicTrade, orderbook.{1,50,200} snapshot/delta, kline.

Formats: https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook (and trade, kline).
Books come from the stream itself: a snapshot on subscribe, then deltas whose "u" grows by one; on a gap the
topic is resubscribed to get a fresh snapshot. orderbook.1 feeds best bid/offer quotes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import msgspec
import orjson
from aipx.numbers import INT64_MAX, MAX_EPOCH_MS
from aipx.v1.common_pb2 import SIDE_BUY, SIDE_SELL, SIDE_UNSPECIFIED

from aipx_ingestion.domain.book import BookSync, SnapshotDeltaSync
from aipx_ingestion.domain.errors import MalformedFrameError
from aipx_ingestion.domain.events import (
    CandleEvent,
    ControlEvent,
    DepthDiff,
    DepthSnapshot,
    TradeEvent,
    VenueEvent,
)
from aipx_ingestion.domain.normalizer import Stream
from aipx_ingestion.venues._fields import (
    FAST_PATH_MISSES,
    NotOnFastPath,
    PlainDecimal,
    decimal_text,
    integer,
    levels,
    ms_to_ns,
    obj,
    text,
)
from aipx_ingestion.venues.base import FeedAdapter, ParsedFrame

_PARSE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError)
_SIDES = {"Buy": SIDE_BUY, "Sell": SIDE_SELL}
_INTERVALS = {
    "1": "1m", "3": "3m", "5": "5m", "15": "15m", "30": "30m", "60": "1h", "120": "2h", "240": "4h",
    "360": "6h", "720": "12h", "D": "1d", "W": "1w", "M": "1M",
}  # fmt: skip
_BOOK_DEPTHS = ("1", "50", "200", "1000")

# -- fast path: typed msgspec Structs for the high-rate topics (publicTrade, orderbook) ---------------------
# The same checks as the general parser below, declared: ids non-negative int64s (never bools), times epoch
# milliseconds whose nanoseconds fit an int64, texts non-empty, decimal strings plain non-negative text. A
# frame the Structs refuse (or a topic they do not cover) is parsed again by the general parser, which names
# the reason: errors are rare, and reported exactly as before.
_Id = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
_Ms = Annotated[int, msgspec.Meta(ge=0, le=MAX_EPOCH_MS)]
_Text = Annotated[str, msgspec.Meta(min_length=1)]


class _Frame(msgspec.Struct):
    topic: _Text
    ts: _Ms
    data: msgspec.Raw
    type: str | None = None


class _Trade(msgspec.Struct):
    s: _Text
    T: _Ms
    i: _Text
    p: PlainDecimal
    v: PlainDecimal
    S: str


class _Book(msgspec.Struct):
    s: _Text
    u: _Id
    b: list[tuple[PlainDecimal, PlainDecimal]]
    a: list[tuple[PlainDecimal, PlainDecimal]]


_FRAME = msgspec.json.Decoder(_Frame)
_TRADES = msgspec.json.Decoder(list[_Trade])
_BOOK = msgspec.json.Decoder(_Book)
_BOOK_KINDS: dict[str | None, Literal["snapshot", "delta"]] = {"snapshot": "snapshot", "delta": "delta"}


class BybitFeed(FeedAdapter):
    """Bybit v5 public streams; orderbook.1 gives quotes, the deeper orderbook topic gives the book."""

    name = "bybit"
    default_ws_url = "wss://stream.bybit.com/v5/public/spot"
    default_channels = ("publicTrade", "orderbook.50", "orderbook.1", "kline.1")
    connection_lifetime_s: ClassVar[float | None] = None
    max_streams_per_connection = 200
    subscribe_batch = 10  # spot accepts at most 10 args per subscribe request
    app_ping_interval_s: ClassVar[float | None] = 20.0

    _ids = itertools.count(1)

    @staticmethod
    def venue_symbol(base: str, quote: str) -> str:
        return f"{base}{quote}"

    @classmethod
    def supported_channels(cls) -> tuple[str, ...]:
        return ("publicTrade", *(f"orderbook.{d}" for d in _BOOK_DEPTHS), *(f"kline.{i}" for i in _INTERVALS))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        books = [c for c in self.config.channels if c.startswith("orderbook.") and c != "orderbook.1"]
        depths = [c.split(".")[1] for c in books]
        if len(depths) > 1:
            raise ValueError(f"bybit: configure at most one book depth besides orderbook.1, got {depths}")
        self._book_channel = f"orderbook.{depths[0]}" if depths else None

    def streams(self) -> dict[str, str]:
        return {f"{c}.{s}": s for s in self.symbols.venue_symbols() for c in self.config.channels}

    def connection_url(self, streams: Sequence[str]) -> str:
        return self.config.ws_url

    def subscribe_messages(self, streams: Sequence[str], *, unsubscribe: bool = False) -> list[str]:
        op = "unsubscribe" if unsubscribe else "subscribe"
        return [
            orjson.dumps(
                {
                    "op": op,
                    "args": list(streams[i : i + self.subscribe_batch]),
                    "req_id": str(next(self._ids)),
                }
            ).decode()
            for i in range(0, len(streams), self.subscribe_batch)
        ]

    def app_ping(self) -> str | None:
        return orjson.dumps({"op": "ping", "req_id": str(next(self._ids))}).decode()

    def book_sync(self) -> BookSync:
        return SnapshotDeltaSync()

    def bbo_sync(self) -> BookSync | None:
        return SnapshotDeltaSync() if "orderbook.1" in self.config.channels else None

    def resync_streams(self, stream: Stream, venue_symbol: str) -> list[str]:
        if stream is Stream.QUOTE:
            return [f"orderbook.1.{venue_symbol}"]
        if stream is Stream.DEPTH and self._book_channel is not None:
            return [f"{self._book_channel}.{venue_symbol}"]
        return []

    def parse(self, frame: str | bytes) -> ParsedFrame:
        try:
            return self._parse_fast(frame)
        except FAST_PATH_MISSES:
            return self._parse_general(frame)

    @staticmethod
    def _parse_fast(frame: str | bytes) -> ParsedFrame:
        """publicTrade and orderbook frames through typed Structs."""
        f = _FRAME.decode(frame)
        topic = f.topic
        channel, _, _ = topic.rpartition(".")
        ts = f.ts * 1_000_000
        if channel == "publicTrade":
            trades = _TRADES.decode(f.data)
            if not trades:
                raise NotOnFastPath
            events = tuple(
                TradeEvent(
                    t.s,
                    t.T * 1_000_000,
                    t.i,
                    None,
                    t.p,
                    t.v,
                    _SIDES.get(t.S, SIDE_UNSPECIFIED),
                )
                for t in trades
            )
            return ParsedFrame(topic, events)
        if channel.startswith("orderbook."):
            depth_label = channel[10:]
            kind = _BOOK_KINDS.get(f.type)
            if depth_label not in _BOOK_DEPTHS or kind is None:
                raise NotOnFastPath
            d = _BOOK.decode(f.data)
            bids, asks = tuple(d.b), tuple(d.a)
            bbo = depth_label == "1"
            event: VenueEvent
            if kind == "snapshot":
                event = DepthSnapshot(d.s, ts, d.u, bids, asks, int(depth_label), bbo=bbo)
            else:
                event = DepthDiff(d.s, ts, d.u, d.u, 0, bids, asks, bbo=bbo)
            return ParsedFrame(topic, (event,))
        raise NotOnFastPath

    def _parse_general(self, frame: str | bytes) -> ParsedFrame:
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            raise MalformedFrameError("invalid_json", "frame is not JSON") from None
        if not isinstance(msg, dict):
            raise MalformedFrameError("not_object", "frame is not a JSON object")
        try:
            topic = msg.get("topic")
            if topic is None:
                return ParsedFrame(None, (self._control(msg),))
            topic = text(topic, "topic")
            channel, _, venue_symbol = topic.rpartition(".")
            ts = ms_to_ns(msg["ts"], "ts")
            if channel == "publicTrade":
                return ParsedFrame(topic, self._trades(msg["data"], ts))
            if channel.startswith("orderbook."):
                return ParsedFrame(topic, (self._book(msg, channel, ts),))
            if channel.startswith("kline."):
                return ParsedFrame(topic, self._klines(msg["data"], venue_symbol, ts))
            raise MalformedFrameError("unknown_type", f"unknown topic {topic[:60]!r}")
        except MalformedFrameError:
            raise
        except _PARSE_ERRORS as exc:
            raise MalformedFrameError("missing_field", f"{type(exc).__name__}: {exc}") from None

    @staticmethod
    def _control(msg: dict[str, Any]) -> ControlEvent:
        op = msg.get("op")
        if not isinstance(op, str):
            raise MalformedFrameError("unknown_type", "frame has neither a topic nor an op")
        ok = msg.get("success", True) is True
        return ControlEvent(op, ok=ok, detail=str(msg.get("ret_msg", ""))[:200])

    @staticmethod
    def _trades(data: Any, ts: int) -> tuple[VenueEvent, ...]:
        if not isinstance(data, list) or not data:
            raise MalformedFrameError("bad_levels", "publicTrade data must be a non-empty list")
        out: list[VenueEvent] = []
        for raw in data:
            t = obj(raw, "data[]")
            out.append(
                TradeEvent(
                    venue_symbol=text(t["s"], "s"),
                    exchange_time_ns=ms_to_ns(t["T"], "T"),
                    trade_id=text(t["i"], "i"),
                    sequence_id=None,  # Bybit trade ids are not contiguous: deduplicated by id instead
                    price=decimal_text(t["p"], "p"),
                    quantity=decimal_text(t["v"], "v"),
                    aggressor_side=_SIDES.get(t["S"], SIDE_UNSPECIFIED),
                )
            )
        return tuple(out)

    @staticmethod
    def _book(msg: dict[str, Any], channel: str, ts: int) -> VenueEvent:
        depth_label = channel.split(".", 1)[1]
        if depth_label not in _BOOK_DEPTHS:
            raise MalformedFrameError("unknown_type", f"unknown orderbook depth {depth_label[:10]!r}")
        d = obj(msg["data"], "data")
        kind = msg["type"]
        venue_symbol = text(d["s"], "s")
        update_id = integer(d["u"], "u")
        bids, asks = levels(d["b"], "b"), levels(d["a"], "a")
        bbo = depth_label == "1"
        if kind == "snapshot":
            return DepthSnapshot(venue_symbol, ts, update_id, bids, asks, int(depth_label), bbo=bbo)
        if kind == "delta":
            return DepthDiff(venue_symbol, ts, update_id, update_id, 0, bids, asks, bbo=bbo)
        raise MalformedFrameError("unknown_type", f"unknown orderbook type {str(kind)[:20]!r}")

    @staticmethod
    def _klines(data: Any, venue_symbol: str, ts: int) -> tuple[VenueEvent, ...]:
        if not isinstance(data, list) or not data:
            raise MalformedFrameError("bad_levels", "kline data must be a non-empty list")
        out: list[VenueEvent] = []
        for raw in data:
            k = obj(raw, "data[]")
            interval = _INTERVALS.get(k["interval"])
            if interval is None:
                raise MalformedFrameError(
                    "unknown_type", f"unknown kline interval {str(k['interval'])[:10]!r}"
                )
            confirm = k["confirm"]
            if not isinstance(confirm, bool):
                raise MalformedFrameError("bad_flag", "confirm must be true or false")
            out.append(
                CandleEvent(
                    venue_symbol=text(venue_symbol, "topic symbol"),
                    exchange_time_ns=ms_to_ns(k.get("timestamp", ts // 1_000_000), "timestamp"),
                    interval=interval,
                    open_time_ns=ms_to_ns(k["start"], "start"),
                    close_time_ns=ms_to_ns(k["end"], "end"),
                    open=decimal_text(k["open"], "open"),
                    high=decimal_text(k["high"], "high"),
                    low=decimal_text(k["low"], "low"),
                    close=decimal_text(k["close"], "close"),
                    volume=decimal_text(k["volume"], "volume"),
                    quote_volume=decimal_text(k["turnover"], "turnover"),
                    trade_count=0,
                    closed=confirm,
                )
            )
        return tuple(out)
