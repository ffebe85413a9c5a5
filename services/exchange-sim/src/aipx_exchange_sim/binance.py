"""Binance spot wire formats: combined-stream frames, SUBSCRIBE handling, the REST depth snapshot."""

from __future__ import annotations

from typing import Any

import orjson

from aipx_exchange_sim.market import (
    Candle,
    DiffTick,
    SymbolMarket,
    TradeTick,
    price_text,
    quote_text,
    size_text,
)

VENUE = "binance"


def _levels(levels: list[tuple[int, int]]) -> list[list[str]]:
    return [[price_text(p), size_text(q)] for p, q in levels]


def combined(stream: str, data: dict[str, Any]) -> str:
    return orjson.dumps({"stream": stream, "data": data}).decode()


def trade(m: SymbolMarket, t: TradeTick, now_ms: int) -> dict[str, Any]:
    return {
        "e": "trade",
        "E": now_ms,
        "s": m.venue_symbol,
        "t": t.trade_id,
        "p": price_text(t.price),
        "q": size_text(t.lots),
        "T": t.time_ms,
        "m": t.buyer_is_maker,
        "M": True,
    }


def agg_trade(m: SymbolMarket, t: TradeTick, now_ms: int) -> dict[str, Any]:
    return {
        "e": "aggTrade",
        "E": now_ms,
        "s": m.venue_symbol,
        "a": t.trade_id,
        "p": price_text(t.price),
        "q": size_text(t.lots),
        "f": t.trade_id,
        "l": t.trade_id,
        "T": t.time_ms,
        "m": t.buyer_is_maker,
        "M": True,
    }


def book_ticker(m: SymbolMarket) -> dict[str, Any]:
    return {
        "u": m.update_id,
        "s": m.venue_symbol,
        "b": price_text(m.best_bid),
        "B": size_text(m.bids.get(m.best_bid, 0)),
        "a": price_text(m.best_ask),
        "A": size_text(m.asks.get(m.best_ask, 0)),
    }


def depth_update(m: SymbolMarket, d: DiffTick) -> dict[str, Any]:
    return {
        "e": "depthUpdate",
        "E": d.time_ms,
        "s": m.venue_symbol,
        "U": d.first_update_id,
        "u": d.last_update_id,
        "b": _levels(d.bids),
        "a": _levels(d.asks),
    }


def kline(m: SymbolMarket, c: Candle, closed: bool, now_ms: int) -> dict[str, Any]:
    return {
        "e": "kline",
        "E": now_ms,
        "s": m.venue_symbol,
        "k": {
            "t": c.open_ms,
            "T": c.open_ms + 59_999,
            "s": m.venue_symbol,
            "i": "1m",
            "f": c.first_trade or -1,
            "L": c.last_trade or -1,
            "o": price_text(c.open),
            "c": price_text(c.close),
            "h": price_text(c.high),
            "l": price_text(c.low),
            "v": size_text(c.lots),
            "n": c.trades,
            "x": closed,
            "q": quote_text(1, c.quote_value),
            "V": "0",
            "Q": "0",
            "B": "0",
        },
    }


def depth_snapshot(m: SymbolMarket, limit: int) -> bytes:
    bids, asks = m.top(limit)
    return orjson.dumps({"lastUpdateId": m.update_id, "bids": _levels(bids), "asks": _levels(asks)})


def streams(m: SymbolMarket) -> dict[str, str]:
    """Stream names of a symbol by simulator channel."""
    s = m.venue_symbol.lower()
    return {
        "trade": f"{s}@trade",
        "aggTrade": f"{s}@aggTrade",
        "bookTicker": f"{s}@bookTicker",
        "depth": f"{s}@depth@100ms",
        "kline": f"{s}@kline_1m",
    }


def handle_request(raw: str | bytes, subscriptions: set[str]) -> tuple[str, list[str], list[str]]:
    """Apply a SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS request: (reply, added streams, removed streams)."""
    try:
        msg = orjson.loads(raw)
        method, req_id = msg["method"], msg.get("id")
        params = msg.get("params", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise ValueError("params")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return orjson.dumps({"error": {"code": 2, "msg": "Invalid request"}, "id": None}).decode(), [], []
    if method == "SUBSCRIBE":
        added = [p for p in params if p not in subscriptions]
        subscriptions.update(params)
        return orjson.dumps({"result": None, "id": req_id}).decode(), added, []
    if method == "UNSUBSCRIBE":
        removed = [p for p in params if p in subscriptions]
        subscriptions.difference_update(params)
        return orjson.dumps({"result": None, "id": req_id}).decode(), [], removed
    if method == "LIST_SUBSCRIPTIONS":
        return orjson.dumps({"result": sorted(subscriptions), "id": req_id}).decode(), [], []
    return (
        orjson.dumps({"error": {"code": 1, "msg": f"unknown method {method!s:.20}"}, "id": req_id}).decode(),
        [],
        [],
    )
