"""Fast mode: a pre-generated cycle of Binance trade, aggTrade and bookTicker frames, replayed with fresh
times and ids, encoded as WebSocket frames once and written to the socket in one call per batch.

The simulator is the benchmark's load generator: stepping the random-walk market, building a dict and a JSON
document per frame, and sending each frame through the WebSocket library cost about half a core at 10,000
frames/s. Here the market is stepped only while the plan is made (so prices, sizes and sides follow the same
model); at run time a frame costs one %-format of a template and a few bytes of header.

Ids stay valid across cycles: on every pass the ids of a stream are shifted by the span they covered in one
pass, so trade ids stay contiguous and book update ids keep increasing; event times are the wall clock.
Fault injection does not apply to these frames (use the normal mode for fault tests).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from aipx_exchange_sim import binance
from aipx_exchange_sim.market import SymbolMarket, price_text, size_text

TRADE: Final = 0
AGG_TRADE: Final = 1
BOOK_TICKER: Final = 2


@dataclass(frozen=True, slots=True)
class PlannedFrame:
    """One frame of the cycle: its stream, a %-template and the id it carries on the first pass."""

    stream: str
    kind: int
    template: str
    first_id: int
    span: int
    """Added to the id on every further pass."""

    def render(self, cycle: int, now_ms: int) -> str:
        ident = self.first_id + cycle * self.span
        if self.kind == AGG_TRADE:
            return self.template % (now_ms, ident, ident, ident, now_ms)
        if self.kind == TRADE:
            return self.template % (now_ms, ident, now_ms)
        return self.template % ident


def _trade_template(stream: str, symbol: str, price: str, size: str, buyer_is_maker: bool) -> str:
    m = "true" if buyer_is_maker else "false"
    return (
        f'{{"stream":"{stream}","data":{{"e":"trade","E":%d,"s":"{symbol}","t":%d,"p":"{price}",'
        f'"q":"{size}","T":%d,"m":{m},"M":true}}}}'
    )


def _agg_template(stream: str, symbol: str, price: str, size: str, buyer_is_maker: bool) -> str:
    m = "true" if buyer_is_maker else "false"
    return (
        f'{{"stream":"{stream}","data":{{"e":"aggTrade","E":%d,"s":"{symbol}","a":%d,"p":"{price}",'
        f'"q":"{size}","f":%d,"l":%d,"T":%d,"m":{m},"M":true}}}}'
    )


def _ticker_template(stream: str, m: SymbolMarket) -> str:
    bid, ask = m.best_bid, m.best_ask
    bid_size, ask_size = size_text(m.bids.get(bid, 0)), size_text(m.asks.get(ask, 0))
    return (
        f'{{"stream":"{stream}","data":{{"u":%d,"s":"{m.venue_symbol}","b":"{price_text(bid)}",'
        f'"B":"{bid_size}","a":"{price_text(ask)}","A":"{ask_size}"}}}}'
    )


def plan(markets: list[SymbolMarket], rng: random.Random, events: int) -> tuple[list[PlannedFrame], int]:
    """Step the markets `events` times as the normal mode does (a trade 45%, else a book change) and record
    the frames; returns the frames and the number of market events they came from."""
    raw: list[tuple[str, int, str, int]] = []
    names = {m.venue_symbol: binance.streams(m) for m in markets}
    for _ in range(events):
        m = markets[int(rng.random() * len(markets))]
        streams = names[m.venue_symbol]
        if rng.random() < 0.45:
            trade, top_changed = m.step_trade(0)
            price, size = price_text(trade.price), size_text(trade.lots)
            stream = streams["trade"]
            template = _trade_template(stream, m.venue_symbol, price, size, trade.buyer_is_maker)
            raw.append((stream, TRADE, template, trade.trade_id))
            stream = streams["aggTrade"]
            template = _agg_template(stream, m.venue_symbol, price, size, trade.buyer_is_maker)
            raw.append((stream, AGG_TRADE, template, trade.trade_id))
        else:
            top_changed = m.step_book()
        if top_changed:
            stream = streams["bookTicker"]
            raw.append((stream, BOOK_TICKER, _ticker_template(stream, m), m.update_id))
    for m in markets:
        m.take_diff(0)  # the plan's book changes are not depth diffs: the books stand still from here
    low: dict[str, int] = {}
    high: dict[str, int] = {}
    for stream, _, _, ident in raw:
        low[stream] = min(low.get(stream, ident), ident)
        high[stream] = max(high.get(stream, ident), ident)
    frames = [
        PlannedFrame(stream, kind, template, ident, high[stream] - low[stream] + 1)
        for stream, kind, template, ident in raw
    ]
    return frames, events


def ws_text_frame(text: str) -> bytes:
    """An unmasked, final WebSocket text frame (server to client, RFC 6455 section 5.2)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65_536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload
