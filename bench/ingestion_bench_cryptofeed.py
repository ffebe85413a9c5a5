"""The peer of bench/ingestion_bench.py: cryptofeed's Binance feed with its Kafka backend, pointed at the
exchange simulator. Runs in its own environment (cryptofeed is not a workspace dependency):

    uv run --isolated --no-project --with 'cryptofeed[kafka]' python bench/ingestion_bench_cryptofeed.py \
        --ws ws://127.0.0.1:18765 --rest http://127.0.0.1:18766 --bootstrap 127.0.0.1:19092 --symbols BTC-USDT

Its Kafka backend writes JSON to one topic per channel and symbol ("trades-BINANCE-BTC-USDT") with
aiokafka's defaults (acks=1, no idempotence) and awaits each record's acknowledgement before the next.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from cryptofeed import FeedHandler
from cryptofeed.backends.kafka import TickerKafka, TradeKafka
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint, WSAsyncConn
from cryptofeed.defines import TICKER, TRADES
from cryptofeed.exchanges import Binance


def _allow_plain_ws() -> None:
    """cryptofeed insists on wss://; the simulator speaks plain ws:// (as our ingestion uses it in the bench,
    so neither pays for TLS). Only the address check is bypassed; the connection code is cryptofeed's."""
    original = WSAsyncConn.__init__

    def init(self: WSAsyncConn, address: str, conn_id: str, **kwargs: Any) -> None:
        original(self, "wss://" + address.removeprefix("ws://"), conn_id, **kwargs)
        self.address = address

    WSAsyncConn.__init__ = init


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ws", required=True, help="simulator WebSocket base URL (ws://host:port)")
    parser.add_argument("--rest", required=True, help="simulator REST base URL (http://host:port)")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--symbols", required=True, help="comma-separated canonical symbols")
    args = parser.parse_args()
    _allow_plain_ws()
    # The venue endpoints are class attributes: point them at the simulator.
    Binance.websocket_endpoints = [WebsocketEndpoint(args.ws)]
    Binance.rest_endpoints = [
        RestEndpoint(
            args.rest, routes=Routes("/api/v3/exchangeInfo", l2book="/api/v3/depth?symbol={}&limit={}")
        )
    ]
    handler = FeedHandler(config={"uvloop": True, "log": {"filename": "/dev/null", "level": "WARNING"}})
    handler.add_feed(
        Binance(
            symbols=args.symbols.split(","),
            channels=[TRADES, TICKER],
            callbacks={
                TRADES: TradeKafka(bootstrap_servers=args.bootstrap),
                TICKER: TickerKafka(bootstrap_servers=args.bootstrap),
            },
        )
    )
    # cryptofeed 2.4 calls asyncio.get_event_loop(), which current uvloop no longer creates implicitly.
    asyncio.set_event_loop(asyncio.new_event_loop())
    handler.run()


if __name__ == "__main__":
    main()
