"""The one interface every venue implements (see `_template.py` for a commented reference).

A venue is declarative where it can be (id, default endpoints and channels, limits) plus four behaviours:
how to spell a symbol, how to subscribe, how to parse a frame, and how to resynchronise a book.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import msgspec

from aipx_ingestion.domain.book import BookSync
from aipx_ingestion.domain.events import DepthSnapshot, VenueEvent
from aipx_ingestion.domain.normalizer import Stream
from aipx_ingestion.domain.symbols import SymbolMap


class ParsedFrame(msgspec.Struct, gc=False):
    """The events of one frame and the venue stream (topic) they came from (None for control frames).

    A Struct: one is built per frame (see domain/events.py)."""

    stream: str | None
    events: Sequence[VenueEvent]


@dataclass(frozen=True, slots=True)
class VenueConfig:
    """Where and what a venue adapter connects to, resolved from the ingestion settings."""

    ws_url: str
    rest_url: str
    symbols: SymbolMap
    channels: tuple[str, ...]
    snapshot_depth: int = 1000


class FeedAdapter(ABC):
    """A public market-data feed of one venue."""

    name: ClassVar[str]
    """Venue id used in envelopes, keys and metrics ("binance")."""
    default_ws_url: ClassVar[str]
    default_rest_url: ClassVar[str] = ""
    default_channels: ClassVar[tuple[str, ...]]
    connection_lifetime_s: ClassVar[float | None] = None
    """The venue closes connections after this long; ingestion rotates them before (None: no limit)."""
    max_streams_per_connection: ClassVar[int] = 200
    subscribe_batch: ClassVar[int] = 10
    """Streams per subscribe request (venues cap the arguments of one request)."""
    app_ping_interval_s: ClassVar[float | None] = None
    """Interval of the application-level ping the venue requires, if any (besides WebSocket pings)."""
    rest_snapshots: ClassVar[bool] = False
    """True if books are initialised from a REST snapshot (else the stream sends snapshots)."""
    rest_weight_header: ClassVar[str | None] = None
    """Response header with the weight used in the current window (Binance X-MBX-USED-WEIGHT-1M)."""
    rest_weight_limit: ClassVar[int] = 0
    """Weight allowed per window (with rest_weight_header)."""
    rest_weight_window_s: ClassVar[float] = 60.0

    def __init__(self, config: VenueConfig) -> None:
        unknown = sorted(set(config.channels) - set(self.supported_channels()))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown channel(s) {unknown}; supported: {sorted(self.supported_channels())}"
            )
        self.config = config
        self.symbols = config.symbols

    @staticmethod
    @abstractmethod
    def venue_symbol(base: str, quote: str) -> str:
        """The venue's spelling of an instrument ("BTC", "USDT") -> "BTCUSDT"."""

    @classmethod
    @abstractmethod
    def supported_channels(cls) -> tuple[str, ...]:
        """Channel names accepted in configuration."""

    @abstractmethod
    def streams(self) -> dict[str, str]:
        """Every stream/topic to subscribe for the configured symbols and channels -> its venue symbol."""

    @abstractmethod
    def connection_url(self, streams: Sequence[str]) -> str:
        """The URL of a connection that will carry `streams`."""

    @abstractmethod
    def subscribe_messages(self, streams: Sequence[str], *, unsubscribe: bool = False) -> list[str]:
        """The (un)subscribe requests for `streams`, batched to the venue's limits, in send order."""

    def app_ping(self) -> str | None:
        """The application-level ping frame, if the venue needs one."""
        return None

    @abstractmethod
    def parse(self, frame: str | bytes) -> ParsedFrame:
        """Parse one frame; raises MalformedFrameError (never anything else) for input it cannot use."""

    @abstractmethod
    def book_sync(self) -> BookSync:
        """A fresh depth-book synchroniser following the venue's rules."""

    def bbo_sync(self) -> BookSync | None:
        """A synchroniser for a top-of-book stream that feeds quotes, if the venue uses one."""
        return None

    def resync_streams(self, stream: Stream, venue_symbol: str) -> list[str]:
        """Streams to resubscribe to resync `stream` of a symbol (venues whose streams send snapshots)."""
        return []

    def snapshot_url(self, venue_symbol: str) -> str:
        """REST URL of a depth snapshot (venues with rest_snapshots)."""
        raise NotImplementedError(f"{self.name} has no REST depth snapshots")

    def snapshot_weight(self) -> int:
        """The weight one snapshot request costs against rest_weight_limit."""
        return 1

    def parse_snapshot(self, body: bytes, venue_symbol: str, received_ns: int) -> DepthSnapshot:
        """Parse a REST depth snapshot; raises MalformedFrameError."""
        raise NotImplementedError(f"{self.name} has no REST depth snapshots")
