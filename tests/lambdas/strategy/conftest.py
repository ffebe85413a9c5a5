"""Synthetic market data for the strategy tests: a seeded random walk with trending regimes, as trades."""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

import pytest
from aipx.money import to_pb
from aipx.v1.market_data_pb2 import MarketDataEnvelope, Trade

MINUTE_NS = 60_000_000_000
T0_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def make_trades(
    minutes: int, *, seed: int = 7, venue: str = "binance", symbol: str = "BTC-USDT", per_minute: int = 4
) -> list[MarketDataEnvelope]:
    """`per_minute` trades in each minute; the drift switches sign every ~90 minutes so trends flip."""
    rng = random.Random(seed)
    price = 30_000.0
    drift = 0.0
    out: list[MarketDataEnvelope] = []
    seq = 0
    for minute in range(minutes):
        if minute % 90 == 0:
            drift = rng.choice((-1, 1)) * rng.uniform(2.0, 8.0)
        for k in range(per_minute):
            price = max(1000.0, price + drift / per_minute + rng.gauss(0, 12))
            seq += 1
            t = T0_NS + minute * MINUTE_NS + (k * MINUTE_NS) // per_minute + rng.randrange(1_000_000)
            out.append(
                MarketDataEnvelope(
                    venue=venue,
                    symbol=symbol,
                    venue_symbol=symbol.replace("-", ""),
                    exchange_time_ns=t,
                    ingest_time_ns=t + 1_000_000,
                    source_sequence=seq,
                    event_id=f"{venue}:{symbol}:trade:{seq}",
                    trade=Trade(
                        trade_id=str(seq),
                        price=to_pb(Decimal(f"{price:.2f}")),
                        quantity=to_pb(Decimal(f"{rng.uniform(0.001, 0.5):.4f}")),
                    ),
                )
            )
    return out


@pytest.fixture(scope="session")
def trades() -> Callable[..., list[MarketDataEnvelope]]:
    return make_trades
