"""Credential -> principal resolution, cached: API keys -> accounts (OMS) and operator tokens -> operators
(admin service). Secrets live hashed (SHA-256) in PostgreSQL, or in the environment.

Cache coherence: every OMS process LISTENs on the admin channel (aipx_oms.admin.notify); a revocation or a new
key invalidates the cached entry of that key hash in every process as soon as the revoking transaction
commits. While that listener is not connected (`live` False) answers are cached at most `fallback_ttl_s`
(1 s), so a revocation never takes longer than that to bite.

Failed attempts cost little and are bounded: an unknown credential is remembered (bounded LRU,
`negative_ttl_s`) so repeating it costs no database round trip; each source (the peer address) may fail
`failures_per_minute` times a minute, after which its attempts are refused without a lookup; and database
lookups of uncached credentials are rate limited process-wide (`lookups_per_s`; callers wait, within their
deadline).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping

from aiolimiter import AsyncLimiter

# SHA-256 of a credential: the form stored in PostgreSQL (API keys and operator tokens alike), and the key of
# the caches here (so a NOTIFY naming a hash invalidates the right entry).
from aipx_oms.store.postgres import hash_api_key as credential_hash

log = logging.getLogger(__name__)

Lookup = Callable[[str], Awaitable[str | None]]

_MAX_POSITIVE = 100_000
_MAX_NEGATIVE = 10_000
_MAX_SOURCES = 10_000


class TooManyFailuresError(Exception):
    """The source failed authentication too often recently; refused without looking the credential up."""


def peer_host(peer: str) -> str:
    """The source of a gRPC peer ("ipv4:10.0.0.7:53012" -> "ipv4:10.0.0.7"): its address without the port,
    so that new connections from one host share one failure budget."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer


class FailureLimiter:
    """Per-source budget of failed authentications (aiolimiter leaky buckets; the latest sources kept)."""

    def __init__(self, failures_per_minute: float) -> None:
        self.failures_per_minute = failures_per_minute
        self._sources: OrderedDict[str, AsyncLimiter] = OrderedDict()

    def allowed(self, source: str) -> bool:
        limiter = self._sources.get(peer_host(source))
        return limiter is None or limiter.has_capacity()

    async def failed(self, source: str) -> None:
        source = peer_host(source)
        limiter = self._sources.get(source)
        if limiter is None:
            limiter = AsyncLimiter(self.failures_per_minute, 60)
            self._sources[source] = limiter
            if len(self._sources) > _MAX_SOURCES:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(source)
        if limiter.has_capacity():
            await limiter.acquire()


class ApiKeyAuthenticator:
    """Maps a credential (an API key, an operator token) to its principal (account, operator); see the
    module docstring for caching, invalidation and the failure limits."""

    def __init__(
        self,
        lookup: Lookup,
        ttl_s: float = 30.0,
        negative_ttl_s: float = 2.0,
        *,
        fallback_ttl_s: float = 1.0,
        failures_per_minute: float = 30.0,
        lookups_per_s: float = 500.0,
    ) -> None:
        self.lookup = lookup
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.fallback_ttl_s = fallback_ttl_s
        # True while cache invalidations arrive (the LISTEN connection is up); set by the notifier.
        self.live = False
        self.failures = FailureLimiter(failures_per_minute)
        self._lookups = AsyncLimiter(lookups_per_s, 1)
        self._cache: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._unknown: OrderedDict[bytes, float] = OrderedDict()

    @classmethod
    def static(cls, keys: Mapping[str, str]) -> ApiKeyAuthenticator:
        """A fixed table {credential: principal} (never changes, so cached for good)."""
        table = dict(keys)

        async def lookup(key: str) -> str | None:
            return table.get(key)

        authenticator = cls(lookup, ttl_s=float("inf"))
        authenticator.live = True
        return authenticator

    @classmethod
    def from_json(cls, text: str) -> ApiKeyAuthenticator:
        """From AIPX_OMS_API_KEYS: a JSON object {"<api key>": "<account id>"}."""
        keys = json.loads(text)
        if not isinstance(keys, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
        ):
            raise ValueError('AIPX_OMS_API_KEYS must be a JSON object {"<api key>": "<account id>"}')
        return cls.static(keys)

    def invalidate(self, key_hash: bytes) -> None:
        """Forget what is cached of one credential (it was revoked, or issued after a miss)."""
        self._cache.pop(key_hash, None)
        self._unknown.pop(key_hash, None)

    def clear(self) -> None:
        """Forget everything (the invalidation feed was interrupted: changes may have been missed)."""
        self._cache.clear()
        self._unknown.clear()

    def cached(self, key: str) -> str | None:
        """The principal of `key` when a fresh answer is cached, else None (then ask `authenticate`): the
        request path's synchronous fast path (no coroutine, no peer lookup)."""
        cached = self._cache.get(credential_hash(key))
        if cached is not None and time.monotonic() - cached[1] < (
            self.ttl_s if self.live else self.fallback_ttl_s
        ):
            return cached[0]
        return None

    async def account_for(self, key: str, source: str = "") -> str | None:
        """The principal of `key`, or None (unknown, revoked, or `source` over its failure budget)."""
        try:
            return await self.authenticate(key, source)
        except TooManyFailuresError:
            return None

    async def authenticate(self, key: str, source: str = "") -> str | None:
        """The principal of `key`, or None; TooManyFailuresError when `source` failed too often lately."""
        now = time.monotonic()
        key_hash = credential_hash(key)
        cached = self._cache.get(key_hash)
        if cached is not None:
            principal, cached_at = cached
            if now - cached_at < (self.ttl_s if self.live else self.fallback_ttl_s):
                return principal
            del self._cache[key_hash]
        if not self.failures.allowed(source):
            raise TooManyFailuresError(
                f"too many failed authentications from {peer_host(source) or 'this source'}"
            )
        missed_until = self._unknown.get(key_hash)
        if missed_until is not None and missed_until > now:
            await self.failures.failed(source)
            return None
        await self._lookups.acquire()
        found = await self.lookup(key)
        now = time.monotonic()
        if found is None:
            self._unknown[key_hash] = now + self.negative_ttl_s
            self._unknown.move_to_end(key_hash)
            if len(self._unknown) > _MAX_NEGATIVE:
                self._unknown.popitem(last=False)
            await self.failures.failed(source)
            return None
        self._unknown.pop(key_hash, None)
        self._cache[key_hash] = (found, now)
        if len(self._cache) > _MAX_POSITIVE:
            self._cache.popitem(last=False)
        return found
