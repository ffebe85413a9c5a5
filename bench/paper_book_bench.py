"""Paper venue benchmark: OMS CPU per market-data message with 10, 1,000 and 100,000 resting orders.

Each size rests that many orders on one symbol (limit bids below and asks above the market, and buy/sell
stops beyond them, all at distinct prices and times), then feeds the same stream of quotes and trades through
the OMS's path for market data (`MarketDataCache.apply` -> `PaperVenue` -> `aipx.matching`). The stream moves
around the mid and fills a few orders near the touch, as a live market does; CPU time is process time per
message. Target (issue #16): the 100,000-order cost within 2x of the 10-order cost.

    uv run python bench/paper_book_bench.py [--messages 20000] [--sizes 10,1000,100000]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time
from datetime import UTC, datetime
from decimal import Decimal

from aipx.money import to_pb
from aipx.v1.market_data_pb2 import MarketDataEnvelope, Quote, Trade
from aipx_oms.domain.model import Order, OrderStatus, OrderType, Side, TimeInForce
from aipx_oms.venues.market_data import MarketDataCache
from aipx_oms.venues.paper import PaperVenue

SYMBOL = "BTC-USDT"
MID = Decimal(50_000)


def order(i: int, side: Side, kind: OrderType, price: Decimal) -> Order:
    stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
    return Order(
        order_id=f"o{i}", account_id="acc", client_order_id=f"c{i}", symbol=SYMBOL, side=side, type=kind,
        time_in_force=TimeInForce.GTC, quantity=Decimal("0.01"), price=None if stop else price,
        stop_price=price if stop else None, reduce_only=False, post_only=False, venue="paper",
        status=OrderStatus.ACCEPTED, created_time_ns=1, updated_time_ns=1,
    )  # fmt: skip


def messages(count: int) -> list[MarketDataEnvelope]:
    """Quotes and trades wandering +-20 around the mid (every 50th message trades through the touch)."""
    out = []
    for i in range(count):
        offset = Decimal((i * 7) % 41 - 20)
        if i % 2:
            payload = Trade(trade_id=str(i), price=to_pb(MID + offset), quantity=to_pb(Decimal("0.02")))
            out.append(MarketDataEnvelope(venue="paper", symbol=SYMBOL, trade=payload))
        else:
            bid, ask = MID + offset - Decimal("0.5"), MID + offset + Decimal("0.5")
            size = to_pb(Decimal("0.05"))
            quote = Quote(bid_price=to_pb(bid), ask_price=to_pb(ask), bid_size=size, ask_size=size)
            out.append(MarketDataEnvelope(venue="paper", symbol=SYMBOL, quote=quote))
    return out


async def run(size: int, stream: list[MarketDataEnvelope]) -> tuple[float, int, int]:
    """(us of CPU per message, fills, orders left) with `size` orders resting."""
    market = MarketDataCache()
    paper = PaperVenue(market, expiry_check_s=3600)
    fills = 0

    def on_report(report: object) -> None:
        nonlocal fills
        fills += 1

    await paper.start(on_report)
    orders = []
    for i in range(size):
        kind = (OrderType.LIMIT, OrderType.LIMIT, OrderType.STOP, OrderType.STOP)[i % 4]
        side = Side.BUY if i % 2 == 0 else Side.SELL
        # Limits from 15 away from the mid outwards (the nearest fill as the market wanders); stops from 30.
        step = Decimal(i // 4) * Decimal("0.01")
        distance = (Decimal(15) if kind is OrderType.LIMIT else Decimal(30)) + step
        away = -distance if (side is Side.BUY) == (kind is OrderType.LIMIT) else distance
        orders.append(order(i, side, kind, MID + away))
    await paper.reconcile(orders)
    start = time.process_time()
    for envelope in stream:
        market.apply(envelope)
    cpu = time.process_time() - start
    await paper.stop()
    return cpu / len(stream) * 1e6, fills, len(paper.working)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--sizes", default="10,1000,100000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    stream = messages(args.messages)
    print(f"paper_book_bench {datetime.now(UTC):%Y-%m-%d %H:%M}Z on {platform.machine()} "
          f"{platform.python_version()}, {args.messages} messages per size")  # fmt: skip
    results = {}
    for size in sizes:
        us, fills, left = await run(size, stream)
        results[size] = us
        print(f"  {size:>7} resting orders: {us:7.2f} us CPU/message  ({fills} fills, {left} left)")
    first, last = results[sizes[0]], results[sizes[-1]]
    verdict = "met" if last <= 2 * first else "MISSED"
    print(f"  ratio {sizes[-1]} / {sizes[0]}: {last / first:.2f}x (target <= 2x: {verdict})")


if __name__ == "__main__":
    asyncio.run(main())
