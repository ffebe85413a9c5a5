"""Bybit v5 public wire formats: publicTrade, orderbook.{1,50} snapshot/delta, kline.1, op requests."""

from __future__ import annotations

from typing import Any

import orjson

from aipx_exchange_sim.market import Candle, SymbolMarket, TradeTick, price_text, quote_text, size_text

VENUE = "bybit"
BOOK_DEPTH = 50


def _levels(levels: list[tuple[int, int]]) -> list[list[str]]:
    return [[price_text(p), size_text(q)] for p, q in levels]


def frame(msg: dict[str, Any]) -> str:
    return orjson.dumps(msg).decode()


def public_trade(m: SymbolMarket, t: TradeTick, now_ms: int) -> dict[str, Any]:
    return {
        "topic": f"publicTrade.{m.venue_symbol}",
        "type": "snapshot",
        "ts": now_ms,
        "data": [
            {
                "i": str(2_290_000_000_000_000_000 + t.trade_id),
                "T": t.time_ms,
                "p": price_text(t.price),
                "v": size_text(t.lots),
                "S": "Sell" if t.buyer_is_maker else "Buy",
                "s": m.venue_symbol,
                "BT": False,
                "L": "PlusTick",
            }
        ],
    }


def book(
    m: SymbolMarket,
    depth: int,
    kind: str,
    update_id: int,
    *,
    levels: tuple[list[tuple[int, int]], list[tuple[int, int]]],
    now_ms: int,
) -> dict[str, Any]:
    return {
        "topic": f"orderbook.{depth}.{m.venue_symbol}",
        "type": kind,
        "ts": now_ms,
        "data": {
            "s": m.venue_symbol,
            "b": _levels(levels[0]),
            "a": _levels(levels[1]),
            "u": update_id,
            "seq": m.update_id,
        },
        "cts": now_ms,
    }


def kline(m: SymbolMarket, c: Candle, closed: bool, now_ms: int) -> dict[str, Any]:
    return {
        "topic": f"kline.1.{m.venue_symbol}",
        "type": "snapshot",
        "ts": now_ms,
        "data": [
            {
                "start": c.open_ms,
                "end": c.open_ms + 59_999,
                "interval": "1",
                "open": price_text(c.open),
                "close": price_text(c.close),
                "high": price_text(c.high),
                "low": price_text(c.low),
                "volume": size_text(c.lots),
                "turnover": quote_text(1, c.quote_value),
                "confirm": closed,
                "timestamp": now_ms,
            }
        ],
    }


def topics(m: SymbolMarket) -> dict[str, str]:
    """Topic names of a symbol by simulator channel."""
    s = m.venue_symbol
    return {
        "trade": f"publicTrade.{s}",
        "depth": f"orderbook.{BOOK_DEPTH}.{s}",
        "bbo": f"orderbook.1.{s}",
        "kline": f"kline.1.{s}",
    }


def handle_request(
    raw: str | bytes, subscriptions: set[str], conn_id: str
) -> tuple[str, list[str], list[str]]:
    """Apply an op request (subscribe, unsubscribe, ping): (reply, added topics, removed topics)."""
    try:
        msg = orjson.loads(raw)
        op = msg["op"]
        req_id = str(msg.get("req_id", ""))
        args = msg.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ValueError("args")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return frame({"success": False, "ret_msg": "Invalid request", "conn_id": conn_id, "op": ""}), [], []
    reply: dict[str, Any] = {"success": True, "ret_msg": "", "conn_id": conn_id, "req_id": req_id, "op": op}
    if op == "ping":
        reply["ret_msg"] = "pong"
        return frame(reply), [], []
    if op == "subscribe":
        dup = [a for a in args if a in subscriptions]
        if dup:
            reply.update(success=False, ret_msg=f"error:handler not found,topic:{dup[0]} already subscribed")
            return frame(reply), [], []
        subscriptions.update(args)
        return frame(reply), list(args), []
    if op == "unsubscribe":
        removed = [a for a in args if a in subscriptions]
        subscriptions.difference_update(args)
        return frame(reply), [], removed
    reply.update(success=False, ret_msg=f"unknown op {op!s:.20}")
    return frame(reply), [], []
