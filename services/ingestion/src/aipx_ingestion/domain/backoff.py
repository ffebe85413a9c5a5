"""Reconnect delays: exponential backoff with a cap and jitter."""

from __future__ import annotations

import random

_RNG = random.Random()


def backoff_delay(attempt: int, *, initial: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before reconnect attempt `attempt` (1-based): half fixed, half random ("equal jitter").

    The fixed half keeps a floor under the delay; the random half spreads many clients' reconnects apart.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(cap, initial * 2.0 ** min(attempt - 1, 32))
    jitter: float = (rng or _RNG).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter
