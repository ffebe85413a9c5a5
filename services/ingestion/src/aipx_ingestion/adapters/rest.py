"""REST depth snapshots with the venue's rate limit respected (token bucket, Retry-After on 429/418)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp

log = logging.getLogger(__name__)


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; acquire() waits for a token."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()
        self.blocked_until = 0.0

    def delay(self) -> float:
        """Seconds until a token is available (0 if one is), without taking it."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        wait = max(0.0, self.blocked_until - now)
        if self.tokens < 1:
            wait = max(wait, (1 - self.tokens) / self.rate)
        return wait

    def take(self) -> None:
        self.tokens -= 1

    def block_for(self, seconds: float) -> None:
        """The venue asked us to back off (Retry-After): no tokens before then."""
        self.blocked_until = max(self.blocked_until, self.clock() + seconds)

    async def acquire(self) -> None:
        # The wait is computed from the refill rate, so sleeping exactly that long is the point here.
        while (wait := self.delay()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        self.take()


class SnapshotError(RuntimeError):
    """A snapshot request failed (HTTP error, timeout); the caller retries."""


class SnapshotClient:
    """GETs depth snapshots through one rate limiter shared by every symbol of a venue."""

    def __init__(
        self, session: aiohttp.ClientSession, limiter: TokenBucket, *, timeout_s: float = 10.0
    ) -> None:
        self.session = session
        self.limiter = limiter
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def fetch(self, url: str) -> bytes:
        """The body of a successful snapshot response; SnapshotError otherwise."""
        await self.limiter.acquire()
        try:
            async with self.session.get(url, timeout=self.timeout) as response:
                if response.status in (418, 429):
                    retry_after = _seconds(response.headers.get("Retry-After"), default=10.0)
                    self.limiter.block_for(retry_after)
                    raise SnapshotError(f"rate limited ({response.status}); retry after {retry_after}s")
                if response.status != 200:
                    raise SnapshotError(f"HTTP {response.status} from {url}")
                return await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SnapshotError(f"{type(exc).__name__}: {exc}") from exc


def _seconds(value: str | None, *, default: float) -> float:
    try:
        return max(0.0, float(value)) if value else default
    except ValueError:
        return default
