"""REST depth snapshots within the venue's limits: a request rate (aiolimiter), Retry-After on 429/418, and
the venue's used-weight header (Binance X-MBX-USED-WEIGHT-1M): when the next request would exceed the
weight allowed in the current window, requests wait for the next window instead of earning a 429 (and, if
repeated, a 418 ban)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiolimiter import AsyncLimiter

log = logging.getLogger(__name__)

_WINDOW_MARGIN_S = 0.5
"""Waited past a window's end: the venue's clock and ours differ by a little."""


@dataclass(frozen=True, slots=True)
class WeightBudget:
    """A venue's request-weight limit as its responses report it."""

    header: str
    limit: int
    window_s: float
    request_weight: int

    def pause(self, used: int, now: float) -> float:
        """Seconds to hold requests after the venue reported `used` weight at wall time `now` (0: go on).

        Windows are taken to turn over at multiples of `window_s` of the epoch clock (Binance's minutes); a
        misjudged turn-over costs at most one 429, whose Retry-After is honoured.
        """
        if used + self.request_weight <= self.limit:
            return 0.0
        return self.window_s - (now % self.window_s) + _WINDOW_MARGIN_S


class SnapshotError(RuntimeError):
    """A snapshot request failed (HTTP error, timeout); the caller retries."""


class SnapshotClient:
    """GETs depth snapshots through one rate limiter shared by every symbol of a venue."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        rate_per_s: float,
        burst: int,
        budget: WeightBudget | None = None,
        timeout_s: float = 10.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.session = session
        # A leaky bucket of `burst` requests draining at `rate_per_s`.
        self.limiter = AsyncLimiter(burst, burst / rate_per_s)
        self.budget = budget
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.wall_clock = wall_clock
        self.blocked_until = 0.0  # monotonic
        self.used_weight: int | None = None

    def block_for(self, seconds: float) -> None:
        """The venue asked us to back off: no request before then."""
        self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)

    def blocked_for(self) -> float:
        """Seconds until requests may go out again (0 if they may now)."""
        return max(0.0, self.blocked_until - time.monotonic())

    async def fetch(self, url: str) -> bytes:
        """The body of a successful snapshot response; SnapshotError otherwise."""
        # Sleeping exactly until the venue's block ends is the point here.
        while (wait := self.blocked_for()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        await self.limiter.acquire()
        try:
            async with self.session.get(url, timeout=self.timeout) as response:
                self._note_weight(response.headers.get(self.budget.header) if self.budget else None)
                if response.status in (418, 429):
                    retry_after = _seconds(response.headers.get("Retry-After"), default=10.0)
                    self.block_for(retry_after)
                    raise SnapshotError(f"rate limited ({response.status}); retry after {retry_after}s")
                if response.status != 200:
                    raise SnapshotError(f"HTTP {response.status} from {url}")
                return await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SnapshotError(f"{type(exc).__name__}: {exc}") from exc

    def _note_weight(self, header: str | None) -> None:
        if self.budget is None or header is None:
            return
        try:
            used = int(header)
        except ValueError:
            log.warning("ignored %s header %r (not an integer)", self.budget.header, header[:40])
            return
        self.used_weight = used
        pause = self.budget.pause(used, self.wall_clock())
        if pause > 0:
            log.warning("REST weight %d of %d used; holding snapshot requests for %.1fs", used,
                        self.budget.limit, pause)  # fmt: skip
            self.block_for(pause)


def _seconds(value: str | None, *, default: float) -> float:
    try:
        return max(0.0, float(value)) if value else default
    except ValueError:
        return default
