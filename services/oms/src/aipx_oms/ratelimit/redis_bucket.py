"""RedisTokenBucket: the per-account order rate limit as a token bucket in Redis (shared by OMS replicas).

Two things keep Redis off the per-order path: concurrent requests of one account are coalesced into one
script call taking N tokens, and each call also takes a small lease (the tokens of `lease_s` at the account's
rate, at most a tenth of the burst) that later requests spend locally. Leased tokens never go back, so the
long-run rate is exact; a burst can exceed the bucket size by at most the lease.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from aipx_oms.domain.risk import RateVerdict

# KEYS[1]: bucket; ARGV: rate per second, burst, tokens wanted. Returns the tokens granted (0..wanted).
# Redis's own clock (TIME) keeps replicas of the OMS consistent with each other.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000000)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return granted
"""


class RateLimiterUnavailableError(RuntimeError):
    """Redis could not be asked: the order cannot be rate-checked (the caller gets UNAVAILABLE)."""


@dataclass(slots=True)
class _Lease:
    tokens: int


class RedisTokenBucket:
    """RateLimiter over Redis."""

    def __init__(self, client: aioredis.Redis, prefix: str = "aipx:oms", lease_s: float = 0.05) -> None:
        self.client = client
        self.prefix = prefix
        self.lease_s = lease_s
        self._script = client.register_script(_TAKE)
        self._waiting: dict[str, list[asyncio.Future[RateVerdict]]] = {}
        self._leases: dict[str, _Lease] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_url(cls, url: str, prefix: str = "aipx:oms", *, lease_s: float = 0.05) -> RedisTokenBucket:
        client = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        return cls(client, prefix, lease_s)

    async def close(self) -> None:
        await self.client.aclose()

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    def key(self, account_id: str) -> str:
        return f"{self.prefix}:rate:{account_id}"

    async def acquire(self, account_id: str, rate_per_s: Decimal, burst: int) -> RateVerdict:
        lease = self._leases.get(account_id)
        if lease is not None and lease.tokens > 0:
            lease.tokens -= 1
            return RateVerdict.ALLOWED
        future: asyncio.Future[RateVerdict] = asyncio.get_running_loop().create_future()
        waiters = self._waiting.setdefault(account_id, [])
        waiters.append(future)
        if len(waiters) == 1:
            task = asyncio.create_task(self._flush(account_id, rate_per_s, burst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _flush(self, account_id: str, rate_per_s: Decimal, burst: int) -> None:
        await asyncio.sleep(0)  # let the requests arriving in this loop iteration join the call
        waiters = self._waiting.pop(account_id, [])
        lease_size = min(burst // 10, int(rate_per_s * Decimal(str(self.lease_s))))
        wanted = len(waiters) + max(lease_size, 0)
        try:
            granted = int(
                await self._script(keys=[self.key(account_id)], args=[str(rate_per_s), burst, wanted])
            )
        except (RedisError, OSError) as exc:
            error = RateLimiterUnavailableError(f"Redis unavailable for the rate limit: {exc}")
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            return
        for index, waiter in enumerate(waiters):
            if not waiter.done():
                waiter.set_result(RateVerdict.ALLOWED if index < granted else RateVerdict.LIMITED)
        if granted > len(waiters):
            self._leases[account_id] = _Lease(granted - len(waiters))
