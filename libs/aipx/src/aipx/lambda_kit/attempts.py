"""Durable attempt counts of failing records, for on-demand event source mappings (`AIPX_LAMBDA_ESM_MODE`).

In on-demand mode AWS retries a failing batch until its records expire, so the handler itself must give up on
a poison record (dead-letter it) after its event source's `max_retries`. That needs a count of each record's
failed attempts that (a) every instance of the function shares — a retry may land on another warm instance
or a cold start — and (b) counts attempts that never returned: a record that kills the process (OOM,
segfault, `os._exit`) or makes the invocation time out leaves no exception to count afterwards.

Store: Redis (`AIPX_REDIS_URL`: ElastiCache in AWS, reached by every function already for idempotency; the
stack's Redis locally). Atomic HINCRBY/SET-GET with expiry in one round trip per batch are what this needs;
an S3 conditional-write ledger would cost tens of milliseconds and an ETag retry loop per write, and there
is no DynamoDB table in the Terraform. Keys, expiring after `ttl_s` (refreshed on each write):

- `aipx:attempts:{<function>:<topic>:<partition>}` - a hash of failed attempts by offset: only records that
  failed have a field, so reading a batch's counts costs one HGETALL per partition, not one key per record;
- `aipx:attempts:{<function>:<topic>:<partition>}:in-flight` - what an invocation is processing in that
  partition: `batch:<first>:<last>` from the start of a batch, `record:<offset>:<extra>` before each record
  once the partition is processed carefully. Deleted when the batch finishes (succeeded or failed normally).

How a crash is counted without a round trip per record in the common case (a mapping delivers one batch of a
partition at a time, so one invocation owns a partition's keys):

1. at the start of a batch, one pipelined round trip marks every partition in flight (`batch:...`, reading
   back the previous marker) and reads the attempt counts of all its records;
2. a previous marker still there means the last invocation on that partition never finished: it crashed or
   timed out. `record:<o>:<extra>` names the record in flight: it gets 1 + extra attempts. `batch:<f>:<l>`
   names only a range: the partition is then processed *carefully*, writing `record:<offset>:<extra>` before
   each record, so a second crash is pinned on its record (extra = 1 carries the first, unattributed crash of
   the range to it: a record that crashes the function every time is counted exactly);
3. before a record runs, attempts > max_retries means it is a poison record: it is dead-lettered unrun;
4. at the end, one round trip counts the records that failed (raised) and clears the markers and the counts
   of records that succeeded.

When Redis is unavailable (no answer within 0.5 s) batches fall back to counts kept in this process for 30 s
(logged): they see neither crashes nor other instances, but the batch goes on rather than failing for a
missing counter.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import redis

from aipx.lambda_kit.mode import LambdaSettings
from aipx.msk import MskRecord
from aipx.settings import RedisSettings

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 24 * 3600
# Records whose counts a process remembers without Redis; the oldest are forgotten beyond this.
_MAX_LOCAL = 10_000
# A counter must never cost the invocation its timeout: Redis that does not answer within this is "down",
# and is not asked again for a while (each batch meanwhile counts in its process).
_REDIS_TIMEOUT_S = 0.5
_REDIS_RETRY_AFTER_S = 30.0

Coordinates = tuple[str, int, int]  # topic, partition, offset
Partition = tuple[str, int]


class RecordCrashedError(RuntimeError):
    """A record whose earlier attempts ended the invocation without an answer (crash, OOM, timeout)."""


@dataclass
class _Batch:
    """What one invocation knows of its records' attempts."""

    prior: dict[Coordinates, int] = field(default_factory=dict)
    careful: dict[Partition, tuple[int, int]] = field(default_factory=dict)  # -> unattributed crash range
    partitions: set[Partition] = field(default_factory=set)
    durable: bool = True


class AttemptCounter:
    """Failed attempts per record: durable in Redis (shared by all instances, counting crashes), or in this
    process only (`url=None`, or as the fallback while Redis is unavailable)."""

    def __init__(self, function: str, *, url: str | None, ttl_s: int = DEFAULT_TTL_S) -> None:
        self.function = function
        self.ttl_s = ttl_s
        self._url = url
        self._client: redis.Redis | None = None
        self._down_until = 0.0
        self._local: OrderedDict[Coordinates, int] = OrderedDict()
        self._batch = _Batch(durable=False)

    @property
    def durable(self) -> bool:
        """Counting in Redis for the current batch (False: in-process fallback)."""
        return self._batch.durable

    def _redis(self) -> redis.Redis:
        if self._client is None:
            assert self._url is not None
            self._client = redis.Redis.from_url(
                self._url, socket_timeout=_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_TIMEOUT_S
            )
        return self._client

    def _prefix(self, topic: str, partition: int) -> str:
        # The hash tag keeps a partition's keys in one slot (cluster mode).
        return f"aipx:attempts:{{{self.function}:{topic}:{partition}}}"

    def _counts_key(self, p: Partition) -> str:
        return self._prefix(*p)

    def _flight_key(self, p: Partition) -> str:
        return f"{self._prefix(*p)}:in-flight"

    def begin(self, records: Sequence[Coordinates]) -> None:
        """Start a batch: mark its partitions in flight, count the attempts of records an unfinished
        invocation left behind, and read every record's attempts (one round trip unless it finds a crash)."""
        ranges: dict[Partition, tuple[int, int]] = {}
        for topic, partition, offset in records:
            lo, hi = ranges.get((topic, partition), (offset, offset))
            ranges[(topic, partition)] = (min(lo, offset), max(hi, offset))
        self._batch = _Batch(partitions=set(ranges))
        if self._url is None or time.monotonic() < self._down_until:
            self._begin_local(records)
            return
        try:
            self._begin_durable(records, ranges)
        except (redis.RedisError, OSError) as exc:
            self._down_until = time.monotonic() + _REDIS_RETRY_AFTER_S
            log.warning(
                "attempt counter unavailable (%s): counting in this process only for %.0f s; crashes and "
                "timeouts are not counted meanwhile",
                exc,
                _REDIS_RETRY_AFTER_S,
            )
            self._batch = _Batch(partitions=set(ranges), durable=False)
            self._begin_local(records)

    def _begin_local(self, records: Iterable[Coordinates]) -> None:
        self._batch.durable = False
        self._batch.prior = {c: n for c in records if (n := self._local.get(c, 0))}

    def _begin_durable(
        self, records: Sequence[Coordinates], ranges: Mapping[Partition, tuple[int, int]]
    ) -> None:
        client = self._redis()
        partitions = list(ranges)
        with client.pipeline(transaction=False) as pipe:
            for p in partitions:
                lo, hi = ranges[p]
                pipe.set(self._flight_key(p), f"batch:{lo}:{hi}", ex=self.ttl_s, get=True)
                pipe.hgetall(self._counts_key(p))  # only failing records have a field: usually empty
            replies = pipe.execute()
        previous = dict(zip(partitions, replies[::2], strict=True))
        wanted = set(records)
        prior: dict[Coordinates, int] = {}
        for p, counts in zip(partitions, replies[1::2], strict=True):
            for offset, n in counts.items():
                c = (p[0], p[1], int(offset))
                if c in wanted:  # a count of a record outside this batch is left as it is
                    prior[c] = int(n)
        crashed: dict[Coordinates, int] = {}
        for p, marker in previous.items():
            if marker is None:
                continue
            kind, _, rest = marker.decode().partition(":")
            a, _, b = rest.partition(":")
            if kind == "record":  # that record was running when the invocation ended
                crashed[(p[0], p[1], int(a))] = 1 + int(b or 0)
                self._batch.careful[p] = (-1, -1)
            else:  # somewhere in that range: pin the next crash on its record
                self._batch.careful[p] = (int(a), int(b))
        if crashed:
            with client.pipeline(transaction=False) as pipe:
                for c, n in crashed.items():
                    pipe.hincrby(self._counts_key(c[:2]), str(c[2]), n)
                    pipe.expire(self._counts_key(c[:2]), self.ttl_s)
                replies = pipe.execute()
            for (c, _), total in zip(crashed.items(), replies[::2], strict=True):
                prior[c] = int(total)
                log.warning(
                    "an earlier invocation ended while processing %s-%d@%d (crash or timeout): attempt %d",
                    c[0],
                    c[1],
                    c[2],
                    total,
                    extra={"function": self.function},
                )
        self._batch.prior = prior

    def prior(self, record: Coordinates) -> int:
        """Failed attempts of `record` before this one."""
        return self._batch.prior.get(record, 0)

    def starting(self, record: MskRecord) -> None:
        """About to run `record`: in a partition processed carefully, name it as in flight first."""
        p = (record.topic, record.partition)
        careful = self._batch.careful.get(p)
        if careful is None or not self._batch.durable:
            return
        lo, hi = careful
        extra = 1 if lo <= record.offset <= hi else 0
        try:
            self._redis().set(self._flight_key(p), f"record:{record.offset}:{extra}", ex=self.ttl_s)
        except (redis.RedisError, OSError) as exc:
            log.warning("attempt counter unavailable (%s): %s runs uncounted", exc, record.ident)

    def finish(self, failed: Sequence[Coordinates]) -> dict[Coordinates, int]:
        """End the batch: count one more attempt of each failed record (returned: its total) and forget the
        records that succeeded."""
        failed_set = set(failed)
        succeeded = [c for c in self._batch.prior if c not in failed_set]
        totals: dict[Coordinates, int] = {}
        for c in failed:
            totals[c] = self._local.pop(c, self._batch.prior.get(c, 0)) + 1
            self._local[c] = totals[c]
        for c in succeeded:
            self._local.pop(c, None)
        while len(self._local) > _MAX_LOCAL:
            self._local.popitem(last=False)
        if self._batch.durable:
            try:
                totals = self._finish_durable(failed, succeeded) or totals
            except (redis.RedisError, OSError) as exc:
                log.warning("attempt counter unavailable (%s): failures counted in this process only", exc)
        self._batch = _Batch(durable=self._batch.durable)
        return totals

    def _finish_durable(
        self, failed: Sequence[Coordinates], succeeded: Sequence[Coordinates]
    ) -> dict[Coordinates, int]:
        with self._redis().pipeline(transaction=False) as pipe:
            for c in failed:
                pipe.hincrby(self._counts_key(c[:2]), str(c[2]), 1)
                pipe.expire(self._counts_key(c[:2]), self.ttl_s)
            self._hdel(pipe, succeeded)
            if self._batch.partitions:
                pipe.delete(*(self._flight_key(p) for p in self._batch.partitions))
            replies = pipe.execute()
        return {c: int(n) for c, n in zip(failed, replies[: 2 * len(failed) : 2], strict=True)}

    def _hdel(self, pipe: redis.client.Pipeline, records: Iterable[Coordinates]) -> None:
        by_partition: dict[Partition, list[str]] = {}
        for topic, partition, offset in records:
            by_partition.setdefault((topic, partition), []).append(str(offset))
        for partition_, offsets in by_partition.items():
            pipe.hdel(self._counts_key(partition_), *offsets)

    def forget(self, records: Sequence[Coordinates]) -> None:
        """Drop the counts of records that were dead-lettered (handled: a replay starts afresh)."""
        for c in records:
            self._local.pop(c, None)
        if not records or self._url is None:
            return
        try:
            with self._redis().pipeline(transaction=False) as pipe:
                self._hdel(pipe, records)
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("attempt counter unavailable (%s): dead-lettered records' counts expire later", exc)

    def close(self) -> None:
        """Close the Redis connection pool (idempotent)."""
        if self._client is not None:
            client, self._client = self._client, None
            client.close()


def attempt_counter(function: str, settings: LambdaSettings | None = None) -> AttemptCounter:
    """The counter AIPX_LAMBDA_ATTEMPT_STORE asks for (`redis`: on AIPX_REDIS_URL; `process`: in-process)."""
    settings = settings or LambdaSettings()
    url = RedisSettings().url.get_secret_value() if settings.attempt_store == "redis" else None
    return AttemptCounter(function, url=url, ttl_s=settings.attempt_ttl_s)
