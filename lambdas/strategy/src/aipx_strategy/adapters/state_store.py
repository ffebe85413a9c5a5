"""Per-instrument engine state in Redis (one key per venue and symbol, JSON, expiring when idle)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from redis.asyncio import Redis

InstrumentKey = tuple[str, str]  # (venue, symbol)


class RedisStateStore:
    """Loads and saves serialized engine states in batches (one round trip each way per invocation)."""

    def __init__(self, url: str, *, prefix: str, ttl_s: int) -> None:
        self._url = url
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._client: Redis | None = None

    def key(self, instrument: InstrumentKey) -> str:
        venue, symbol = instrument
        return f"{self.prefix}:{venue}:{symbol}"

    def _redis(self) -> Redis:
        # Created lazily so the client binds to the event loop it is first used on (the runtime's).
        if self._client is None:
            self._client = Redis.from_url(self._url)
        return self._client

    async def load(self, instruments: Iterable[InstrumentKey]) -> dict[InstrumentKey, bytes | None]:
        wanted = list(dict.fromkeys(instruments))
        if not wanted:
            return {}
        values = await self._redis().mget([self.key(i) for i in wanted])
        return {i: v.encode() if isinstance(v, str) else v for i, v in zip(wanted, values, strict=True)}

    async def save(self, states: Mapping[InstrumentKey, bytes]) -> None:
        if not states:
            return
        async with self._redis().pipeline(transaction=False) as pipe:
            for instrument, value in states.items():
                pipe.set(self.key(instrument), value, ex=self.ttl_s)
            await pipe.execute()

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
