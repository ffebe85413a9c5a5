"""Deterministic synthetic klines for the backtest tests (trending and mean-reverting stretches)."""

from __future__ import annotations

import csv
import math
import random
from decimal import Decimal
from pathlib import Path

START_S = 1_735_689_600  # 2025-01-01T00:00Z


def klines(
    count: int = 1500, *, seed: int = 11
) -> list[tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]]:
    """(open time s, open, high, low, close, volume) of 1-minute bars, prices around 100 with 2 decimals."""
    rng = random.Random(seed)
    bars = []
    close = 100.0
    for i in range(count):
        drift = 0.0015 * math.sin(i / 37.0)
        open_ = close * (1 + rng.gauss(0, 0.0003))
        close = open_ * (1 + drift + rng.gauss(0, 0.003))
        high = max(open_, close) * (1 + abs(rng.gauss(0, 0.001)))
        low = min(open_, close) * (1 - abs(rng.gauss(0, 0.001)))
        o, h, lo, c = (Decimal(f"{v:.2f}") for v in (open_, high, low, close))
        h, lo = max(h, o, c), min(lo, o, c)
        bars.append((START_S + 60 * i, o, h, lo, c, Decimal(rng.randint(1, 50))))
    return bars


def write_csv(path: Path, bars: list[tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["open_time", "open", "high", "low", "close", "volume"])
        for t, o, h, lo, c, v in bars:
            writer.writerow([t * 1000, o, h, lo, c, v])
    return path
