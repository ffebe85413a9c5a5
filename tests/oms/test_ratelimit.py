"""RedisTokenBucket against the real Redis: exact for small limits, leases keep Redis off the hot path."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from aipx_oms.domain.risk import RateVerdict
from aipx_oms.ratelimit.redis_bucket import RateLimiterUnavailableError, RedisTokenBucket

pytestmark = pytest.mark.integration


async def test_burst_then_limited_and_concurrent_calls_coalesce(redis_url: str) -> None:
    bucket = RedisTokenBucket.from_url(redis_url, f"test-rl:{uuid.uuid4().hex}", lease_s=0.05)
    calls = 0
    script = bucket._script

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await script(*args, **kwargs)

    bucket._script = counting  # type: ignore[assignment]
    try:
        verdicts = await asyncio.gather(*(bucket.acquire("a", Decimal("0.001"), 5) for _ in range(12)))
        assert verdicts.count(RateVerdict.ALLOWED) == 5 and verdicts.count(RateVerdict.LIMITED) == 7
        assert calls == 1, "twelve concurrent requests, one Redis call"
        other = await bucket.acquire("b", Decimal("0.001"), 5)
        assert other is RateVerdict.ALLOWED, "buckets are per account"
        calls = 0
        allowed = 0
        for _ in range(50):
            allowed += (await bucket.acquire("c", Decimal(1000), 1000)) is RateVerdict.ALLOWED
        assert allowed == 50
        assert calls <= 2, f"leased tokens are spent locally ({calls} Redis calls for 50 orders)"
    finally:
        await bucket.close()


async def test_redis_unreachable_is_an_error_not_a_verdict() -> None:
    bucket = RedisTokenBucket.from_url("redis://127.0.0.1:1/0", "test-rl:none")
    try:
        with pytest.raises(RateLimiterUnavailableError):
            await bucket.acquire("a", Decimal(10), 10)
    finally:
        await bucket.close()
