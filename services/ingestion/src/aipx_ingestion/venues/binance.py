"""Binance spot public market data: combined streams (trade, aggTrade, bookTicker, depth diffs, klines)
and the REST depth snapshot used to initialise books (GET /api/v3/depth).

Formats: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import msgspec
import orjson
from aipx.numbers import INT64_MAX, MAX_EPOCH_MS
from aipx.v1.common_pb2 import SIDE_BUY, SIDE_SELL

from aipx_ingestion.domain.book import BookSync, DiffDepthSync
from aipx_ingestion.domain.errors import MalformedFrameError
from aipx_ingestion.domain.events import (
    CandleEvent,
    ControlEvent,
    DepthDiff,
    DepthSnapshot,
    QuoteEvent,
    TradeEvent,
    VenueEvent,
)
from aipx_ingestion.venues._fields import (
    FAST_PATH_MISSES,
    PLAIN_PAIR,
    PLAIN_QUAD,
    NotOnFastPath,
    decimal_text,
    integer,
    levels,
    ms_to_ns,
    obj,
    text,
)
from aipx_ingestion.venues.base import FeedAdapter, ParsedFrame

_PARSE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError)

# -- fast path: typed msgspec Structs for the high-rate streams --------------------------------------------
# The same checks as the general parser below, declared: ids are non-negative int64s (never bools), times
# epoch milliseconds whose nanoseconds fit an int64, texts non-empty, flags true/false; decimal strings plain
# non-negative text (what decimal_text passes unchanged; checked after decoding, a frame's decimals in one
# regex call: PLAIN_PAIR, PLAIN_QUAD). A frame the Structs refuse is parsed
# again by the general parser, which canonicalises or names the reason: errors are rare, reported as before.
_Id = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
_Ms = Annotated[int, msgspec.Meta(ge=0, le=MAX_EPOCH_MS)]
_Text = Annotated[str, msgspec.Meta(min_length=1)]


class _Combined(msgspec.Struct):
    stream: _Text
    data: msgspec.Raw


class _Trade(msgspec.Struct):
    e: Literal["trade"]
    s: _Text
    t: _Id
    p: str  # p, q: PLAIN_PAIR
    q: str
    T: _Ms
    m: bool


class _AggTrade(msgspec.Struct):
    e: Literal["aggTrade"]
    s: _Text
    a: _Id
    p: str  # p, q: PLAIN_PAIR
    q: str
    f: _Id
    l: _Id  # noqa: E741 - Binance's field name
    T: _Ms
    m: bool


class _BookTicker(msgspec.Struct):
    u: _Id
    s: _Text
    b: str  # b, B, a, A: PLAIN_QUAD
    B: str
    a: str
    A: str
    e: Literal["bookTicker"] | None = None
    E: _Ms | msgspec.UnsetType = msgspec.UNSET  # spot has none; null is refused, as by the general parser


_COMBINED = msgspec.json.Decoder(_Combined)
_TRADE = msgspec.json.Decoder(_Trade)
_AGG_TRADE = msgspec.json.Decoder(_AggTrade)
_BOOK_TICKER = msgspec.json.Decoder(_BookTicker)


class BinanceFeed(FeedAdapter):
    """Binance spot combined streams; books follow the documented diff-depth + REST snapshot procedure."""

    name = "binance"
    default_ws_url = "wss://stream.binance.com:9443/stream"
    default_rest_url = "https://api.binance.com"
    default_channels = ("trade", "bookTicker", "depth@100ms", "kline_1m")
    connection_lifetime_s: ClassVar[float | None] = 24 * 3600.0
    max_streams_per_connection = 1024
    subscribe_batch = 50
    rest_snapshots = True
    # IP request-weight limit of the spot REST API (exchangeInfo rateLimits: REQUEST_WEIGHT 6000 per minute);
    # every response reports what is used so far in the current minute.
    rest_weight_header = "X-MBX-USED-WEIGHT-1M"
    rest_weight_limit = 6000
    rest_weight_window_s = 60.0

    _ids = itertools.count(1)

    @staticmethod
    def venue_symbol(base: str, quote: str) -> str:
        return f"{base}{quote}"

    @classmethod
    def supported_channels(cls) -> tuple[str, ...]:
        klines = tuple(f"kline_{i}" for i in ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "4h", "1d"))
        return ("trade", "aggTrade", "bookTicker", "depth", "depth@100ms", *klines)

    def streams(self) -> dict[str, str]:
        return {f"{s.lower()}@{c}": s for s in self.symbols.venue_symbols() for c in self.config.channels}

    def connection_url(self, streams: Sequence[str]) -> str:
        # Streams are subscribed with SUBSCRIBE requests (staggered) rather than in the URL.
        return self.config.ws_url

    def subscribe_messages(self, streams: Sequence[str], *, unsubscribe: bool = False) -> list[str]:
        method = "UNSUBSCRIBE" if unsubscribe else "SUBSCRIBE"
        return [
            orjson.dumps(
                {
                    "method": method,
                    "params": list(streams[i : i + self.subscribe_batch]),
                    "id": next(self._ids),
                }
            ).decode()
            for i in range(0, len(streams), self.subscribe_batch)
        ]

    def book_sync(self) -> BookSync:
        return DiffDepthSync()

    def snapshot_url(self, venue_symbol: str) -> str:
        return f"{self.config.rest_url}/api/v3/depth?symbol={venue_symbol}&limit={self.config.snapshot_depth}"

    def snapshot_weight(self) -> int:
        # GET /api/v3/depth: weight by limit (1-100: 5, 101-500: 25, 501-1000: 50, 1001-5000: 250).
        depth = self.config.snapshot_depth
        return 5 if depth <= 100 else 25 if depth <= 500 else 50 if depth <= 1000 else 250

    def parse_snapshot(self, body: bytes, venue_symbol: str, received_ns: int) -> DepthSnapshot:
        try:
            msg = obj(orjson.loads(body), "snapshot")
            return DepthSnapshot(
                venue_symbol=venue_symbol,
                exchange_time_ns=received_ns,
                last_update_id=integer(msg["lastUpdateId"], "lastUpdateId"),
                bids=levels(msg["bids"], "bids"),
                asks=levels(msg["asks"], "asks"),
                depth=self.config.snapshot_depth,
            )
        except MalformedFrameError:
            raise
        except orjson.JSONDecodeError:
            raise MalformedFrameError("invalid_json", "depth snapshot is not JSON") from None
        except _PARSE_ERRORS as exc:
            raise MalformedFrameError(
                "missing_field", f"depth snapshot: {type(exc).__name__} {exc}"
            ) from None

    def parse(self, frame: str | bytes) -> ParsedFrame:
        try:
            return self._parse_fast(frame)
        except FAST_PATH_MISSES:
            return self._parse_general(frame)

    @staticmethod
    def _parse_fast(frame: str | bytes) -> ParsedFrame:
        """aggTrade, trade and bookTicker frames of the combined stream through typed Structs."""
        combined = _COMBINED.decode(frame)
        stream = combined.stream
        event: VenueEvent
        if stream.endswith("@aggTrade"):
            a = _AGG_TRADE.decode(combined.data)
            if PLAIN_PAIR(f"{a.p} {a.q}") is None:
                raise NotOnFastPath
            side = SIDE_SELL if a.m else SIDE_BUY
            event = TradeEvent(a.s, a.T * 1_000_000, str(a.a), a.a, a.p, a.q, side, True, a.f, a.l)
        elif stream.endswith("@bookTicker"):
            b = _BOOK_TICKER.decode(combined.data)
            if PLAIN_QUAD(f"{b.b} {b.B} {b.a} {b.A}") is None:
                raise NotOnFastPath
            time_ns = 0 if b.E is msgspec.UNSET else b.E * 1_000_000
            event = QuoteEvent(b.s, time_ns, b.u, b.b, b.B, b.a, b.A)
        elif stream.endswith("@trade"):
            t = _TRADE.decode(combined.data)
            if PLAIN_PAIR(f"{t.p} {t.q}") is None:
                raise NotOnFastPath
            side = SIDE_SELL if t.m else SIDE_BUY
            event = TradeEvent(t.s, t.T * 1_000_000, str(t.t), t.t, t.p, t.q, side)
        else:
            raise NotOnFastPath
        return ParsedFrame(stream, (event,))

    def _parse_general(self, frame: str | bytes) -> ParsedFrame:
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            raise MalformedFrameError("invalid_json", "frame is not JSON") from None
        if not isinstance(msg, dict):
            raise MalformedFrameError("not_object", "frame is not a JSON object")
        try:
            if "stream" in msg:
                return ParsedFrame(text(msg["stream"], "stream"), (self._data(obj(msg["data"], "data")),))
            if "id" in msg and ("result" in msg or "error" in msg):
                error = msg.get("error")
                return ParsedFrame(
                    None, (ControlEvent("response", ok=error is None, detail=str(error or "")),)
                )
            return ParsedFrame(None, (self._data(msg),))
        except MalformedFrameError:
            raise
        except _PARSE_ERRORS as exc:
            raise MalformedFrameError("missing_field", f"{type(exc).__name__}: {exc}") from None

    def _data(self, d: dict[str, Any]) -> VenueEvent:
        event = d.get("e")
        if event == "trade":
            trade_id = integer(d["t"], "t")
            return TradeEvent(
                venue_symbol=text(d["s"], "s"),
                exchange_time_ns=ms_to_ns(d["T"], "T"),
                trade_id=str(trade_id),
                sequence_id=trade_id,
                price=decimal_text(d["p"], "p"),
                quantity=decimal_text(d["q"], "q"),
                # m: the buyer is the maker, so the seller was the aggressor.
                aggressor_side=SIDE_SELL if _flag(d["m"], "m") else SIDE_BUY,
            )
        if event == "aggTrade":
            agg_id = integer(d["a"], "a")
            return TradeEvent(
                venue_symbol=text(d["s"], "s"),
                exchange_time_ns=ms_to_ns(d["T"], "T"),
                trade_id=str(agg_id),
                sequence_id=agg_id,
                price=decimal_text(d["p"], "p"),
                quantity=decimal_text(d["q"], "q"),
                aggressor_side=SIDE_SELL if _flag(d["m"], "m") else SIDE_BUY,
                aggregated=True,
                first_trade_id=integer(d["f"], "f"),
                last_trade_id=integer(d["l"], "l"),
            )
        if event == "depthUpdate":
            first, final = integer(d["U"], "U"), integer(d["u"], "u")
            if first > final:
                raise MalformedFrameError("bad_range", f"depthUpdate U={first} > u={final}")
            return DepthDiff(
                venue_symbol=text(d["s"], "s"),
                exchange_time_ns=ms_to_ns(d["E"], "E"),
                first_update_id=first,
                final_update_id=final,
                previous_final_update_id=integer(d.get("pu", 0), "pu"),
                bids=levels(d["b"], "b"),
                asks=levels(d["a"], "a"),
            )
        if event == "kline":
            k = obj(d["k"], "k")
            return CandleEvent(
                venue_symbol=text(d["s"], "s"),
                exchange_time_ns=ms_to_ns(d["E"], "E"),
                interval=text(k["i"], "k.i"),
                open_time_ns=ms_to_ns(k["t"], "k.t"),
                close_time_ns=ms_to_ns(k["T"], "k.T"),
                open=decimal_text(k["o"], "k.o"),
                high=decimal_text(k["h"], "k.h"),
                low=decimal_text(k["l"], "k.l"),
                close=decimal_text(k["c"], "k.c"),
                volume=decimal_text(k["v"], "k.v"),
                quote_volume=decimal_text(k["q"], "k.q"),
                trade_count=integer(k["n"], "k.n"),
                closed=_flag(k["x"], "k.x"),
            )
        if event == "bookTicker" or (event is None and "u" in d and "b" in d and "A" in d):
            # Spot bookTicker has no event type or time; the futures one has both.
            return QuoteEvent(
                venue_symbol=text(d["s"], "s"),
                exchange_time_ns=ms_to_ns(d["E"], "E") if "E" in d else 0,
                update_id=integer(d["u"], "u"),
                bid_price=decimal_text(d["b"], "b"),
                bid_size=decimal_text(d["B"], "B"),
                ask_price=decimal_text(d["a"], "a"),
                ask_size=decimal_text(d["A"], "A"),
            )
        raise MalformedFrameError("unknown_type", f"unknown event type {str(event)[:40]!r}")


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise MalformedFrameError("bad_flag", f"{field} must be true or false")
    return value
