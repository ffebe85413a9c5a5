"""API key -> account resolution, cached (keys live hashed in PostgreSQL, or in AIPX_OMS_API_KEYS)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping

Lookup = Callable[[str], Awaitable[str | None]]


class ApiKeyAuthenticator:
    """Maps an API key to its account; positive answers are cached for `ttl_s`, negative ones briefly."""

    def __init__(self, lookup: Lookup, ttl_s: float = 30.0, negative_ttl_s: float = 2.0) -> None:
        self.lookup = lookup
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._cache: dict[str, tuple[str | None, float]] = {}

    @classmethod
    def static(cls, keys: Mapping[str, str]) -> ApiKeyAuthenticator:
        table = dict(keys)

        async def lookup(key: str) -> str | None:
            return table.get(key)

        return cls(lookup, ttl_s=float("inf"))

    @classmethod
    def from_json(cls, text: str) -> ApiKeyAuthenticator:
        """From AIPX_OMS_API_KEYS: a JSON object {"<api key>": "<account id>"}."""
        keys = json.loads(text)
        if not isinstance(keys, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
        ):
            raise ValueError('AIPX_OMS_API_KEYS must be a JSON object {"<api key>": "<account id>"}')
        return cls.static(keys)

    async def account_for(self, key: str) -> str | None:
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        account = await self.lookup(key)
        ttl = self.ttl_s if account is not None else self.negative_ttl_s
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = (account, now + ttl)
        return account
