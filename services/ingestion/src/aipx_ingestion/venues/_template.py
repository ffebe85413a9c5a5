"""Reference for a new venue: copy this module, fill in each part, register the class in venues/__init__.py
(the template itself is not registered: it is documentation, not a production venue).

Nothing else changes: the connection manager, the normalizer (sequence, dedupe, gaps, books), the Kafka
publisher and the metrics work from this interface. Add recorded payloads of each message type under
tests/ingestion/fixtures/<venue>/ and a normalization test like tests/ingestion/test_venue_binance.py.
This module is a working (minimal) feed of trades only for a venue speaking

    {"channel": "trades", "symbol": "BTC_USDT", "id": 17, "price": "1.5", "size": "2", "side": "buy", "ts": 1}

so the template itself is tested (tests/ingestion/test_runtime_rules.py, test_parser_fuzz.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import orjson
from aipx.v1.common_pb2 import SIDE_BUY, SIDE_SELL, SIDE_UNSPECIFIED

from aipx_ingestion.domain.book import BookSync, SnapshotDeltaSync
from aipx_ingestion.domain.errors import MalformedFrameError
from aipx_ingestion.domain.events import ControlEvent, TradeEvent
from aipx_ingestion.venues._fields import decimal_text, integer, ms_to_ns, obj, text
from aipx_ingestion.venues.base import FeedAdapter, ParsedFrame


class TemplateFeed(FeedAdapter):
    """1. Declare: id, endpoints (the real ones; settings override them), channels, venue limits."""

    name = "template"
    default_ws_url = "wss://example.invalid/ws"
    default_channels = ("trades",)
    connection_lifetime_s: ClassVar[float | None] = None
    max_streams_per_connection = 100
    subscribe_batch = 10

    # 2. Spell symbols the venue's way.
    @staticmethod
    def venue_symbol(base: str, quote: str) -> str:
        return f"{base}_{quote}"

    @classmethod
    def supported_channels(cls) -> tuple[str, ...]:
        return ("trades",)

    # 3. Subscribe: stream names, the URL, and the (batched) subscribe requests.
    def streams(self) -> dict[str, str]:
        return {f"{c}:{s}": s for s in self.symbols.venue_symbols() for c in self.config.channels}

    def connection_url(self, streams: Sequence[str]) -> str:
        return self.config.ws_url

    def subscribe_messages(self, streams: Sequence[str], *, unsubscribe: bool = False) -> list[str]:
        op = "unsubscribe" if unsubscribe else "subscribe"
        return [
            orjson.dumps({"op": op, "streams": list(streams[i : i + self.subscribe_batch])}).decode()
            for i in range(0, len(streams), self.subscribe_batch)
        ]

    # 4. Parse: one frame -> venue-neutral events; any problem -> MalformedFrameError (never another error).
    def parse(self, frame: str | bytes) -> ParsedFrame:
        try:
            msg = obj(orjson.loads(frame), "frame")
            if "channel" not in msg:
                return ParsedFrame(None, (ControlEvent(str(msg.get("op", "unknown"))),))
            if msg["channel"] != "trades":
                raise MalformedFrameError("unknown_type", f"unknown channel {str(msg['channel'])[:20]!r}")
            trade_id = integer(msg["id"], "id")
            symbol = text(msg["symbol"], "symbol")
            event = TradeEvent(
                venue_symbol=symbol,
                exchange_time_ns=ms_to_ns(msg["ts"], "ts"),
                trade_id=str(trade_id),
                sequence_id=trade_id,  # contiguous ids -> gap detection; None -> dedupe by id only
                price=decimal_text(msg["price"], "price"),
                quantity=decimal_text(msg["size"], "size"),
                aggressor_side={"buy": SIDE_BUY, "sell": SIDE_SELL}.get(msg["side"], SIDE_UNSPECIFIED),
            )
            return ParsedFrame(f"trades:{symbol}", (event,))
        except MalformedFrameError:
            raise
        except orjson.JSONDecodeError:
            raise MalformedFrameError("invalid_json", "frame is not JSON") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedFrameError("missing_field", f"{type(exc).__name__}: {exc}") from None

    # 5. Books: which synchronisation rules the venue's depth stream follows (unused without a book channel).
    def book_sync(self) -> BookSync:
        return SnapshotDeltaSync()
