"""Venue-neutral events produced by the venue parsers and consumed by the normalizer.

Prices and quantities stay as the venue's exact decimal text (validated by the parser), never floats.
msgspec Structs, not dataclasses: one is built per venue message, and a Struct is built in C (~0.09 us for
a trade against 0.25 for a slots dataclass); gc=False, as they hold only strings, numbers and tuples of them
(no reference cycles), so the garbage collector neither tracks nor scans them.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec
from aipx.v1.common_pb2 import Side

Level = tuple[str, str]
"""One book level as (price, quantity) decimal text; quantity "0" removes the level in a delta."""


class Kind(StrEnum):
    """Payload kinds of the market-data envelope, as used in event ids and metric labels."""

    TRADE = "trade"
    AGG_TRADE = "agg_trade"
    QUOTE = "quote"
    BOOK_DELTA = "book_delta"
    BOOK_SNAPSHOT = "book_snapshot"
    CANDLE = "candle"
    GAP = "gap"


class TradeEvent(msgspec.Struct, gc=False):
    """A public trade. `sequence_id` is the venue's numeric, per-symbol contiguous id when it has one."""

    venue_symbol: str
    exchange_time_ns: int
    trade_id: str
    sequence_id: int | None
    price: str
    quantity: str
    aggressor_side: Side.ValueType
    aggregated: bool = False
    first_trade_id: int = 0
    last_trade_id: int = 0


class QuoteEvent(msgspec.Struct, gc=False):
    """Best bid and offer; `update_id` is the venue's book update id (0 if none)."""

    venue_symbol: str
    exchange_time_ns: int
    update_id: int
    bid_price: str
    bid_size: str
    ask_price: str
    ask_size: str


class DepthDiff(msgspec.Struct, gc=False):
    """An incremental book update covering venue update ids first_update_id..final_update_id."""

    venue_symbol: str
    exchange_time_ns: int
    first_update_id: int
    final_update_id: int
    previous_final_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    bbo: bool = False
    """True for a top-of-book-only stream (e.g. Bybit orderbook.1): it feeds quotes, not the depth book."""


class DepthSnapshot(msgspec.Struct, gc=False):
    """A full book consistent with update id `last_update_id` (from REST or from the stream)."""

    venue_symbol: str
    exchange_time_ns: int
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    depth: int
    bbo: bool = False


class CandleEvent(msgspec.Struct, gc=False):
    """An OHLCV candle update; `closed` once the interval is final."""

    venue_symbol: str
    exchange_time_ns: int
    interval: str
    open_time_ns: int
    close_time_ns: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    trade_count: int
    closed: bool


class ControlEvent(msgspec.Struct, gc=False):
    """A non-data frame: subscription ack, pong, venue error. `ok` is False for errors the venue reports."""

    kind: str
    ok: bool = True
    detail: str = ""


MarketEvent = TradeEvent | QuoteEvent | DepthDiff | DepthSnapshot | CandleEvent
VenueEvent = MarketEvent | ControlEvent
