"""The cognitive function's memory in Redis: each decision (so a retried signal keeps its first decision) and
the latest signal per instrument (what the HTTP analysis endpoint analyses)."""

from __future__ import annotations

from aipx.v1.decisions_pb2 import Decision
from aipx.v1.signals_pb2 import TradingSignal
from redis.asyncio import Redis


class CognitiveStore:
    def __init__(self, url: str, *, prefix: str, ttl_s: int) -> None:
        self._url = url
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._client: Redis | None = None

    def _redis(self) -> Redis:
        if self._client is None:
            self._client = Redis.from_url(self._url)
        return self._client

    async def remember_decision(self, decision: Decision) -> Decision:
        """Store `decision` unless one is stored for its id already; the stored one (first writer wins)."""
        key = f"{self.prefix}:decision:{decision.decision_id}"
        created = await self._redis().set(key, decision.SerializeToString(), ex=self.ttl_s, nx=True)
        if created:
            return decision
        stored = await self.decision(decision.decision_id)
        return stored if stored is not None else decision

    async def decision(self, decision_id: str) -> Decision | None:
        raw = await self._redis().get(f"{self.prefix}:decision:{decision_id}")
        if raw is None:
            return None
        decision = Decision()
        decision.ParseFromString(raw if isinstance(raw, bytes) else raw.encode())
        return decision

    async def update_decision(self, decision: Decision) -> None:
        await self._redis().set(
            f"{self.prefix}:decision:{decision.decision_id}", decision.SerializeToString(), ex=self.ttl_s
        )

    async def remember_signal(self, signal: TradingSignal) -> None:
        key = f"{self.prefix}:latest-signal:{signal.venue}:{signal.symbol}"
        await self._redis().set(key, signal.SerializeToString(), ex=self.ttl_s)

    async def latest_signal(self, venue: str, symbol: str) -> TradingSignal | None:
        raw = await self._redis().get(f"{self.prefix}:latest-signal:{venue}:{symbol}")
        if raw is None:
            return None
        signal = TradingSignal()
        signal.ParseFromString(raw if isinstance(raw, bytes) else raw.encode())
        return signal

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
