"""Sent-markers in Redis: one key per (event id, channel), written only after a successful send."""

from __future__ import annotations

from redis.asyncio import Redis


class SentMarkers:
    def __init__(self, url: str, *, prefix: str, ttl_s: int) -> None:
        self._url = url
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._client: Redis | None = None

    def _redis(self) -> Redis:
        if self._client is None:
            self._client = Redis.from_url(self._url)
        return self._client

    def key(self, event_id: str, channel: str) -> str:
        return f"{self.prefix}:{event_id}:{channel}"

    async def was_sent(self, event_id: str, channel: str) -> bool:
        return bool(await self._redis().exists(self.key(event_id, channel)))

    async def mark_sent(self, event_id: str, channel: str) -> None:
        await self._redis().set(self.key(event_id, channel), b"1", ex=self.ttl_s)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
