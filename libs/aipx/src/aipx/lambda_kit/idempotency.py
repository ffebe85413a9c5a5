"""Idempotent per-record processing on powertools idempotency with its Redis-backed cache persistence layer.

Any failure replays records (the event source mapping retries from the lowest failed offset), so a record's
side effect must happen once per *key*: the record's `aipx-event-id` header when present (the same event
re-published keeps its id), else `topic-partition-offset`. The first successful result is stored in Redis
for `expires_after_seconds`; a replay returns it without running the function again. A function that raises
stores nothing, so the record is retried. A concurrent duplicate still in progress raises
`IdempotencyAlreadyInProgressError`, which counts as a record failure (retried later).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.idempotency import (
    BasePersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from aipx.msk import MskRecord
from aipx.serde import HEADER_EVENT_ID
from aipx.settings import RedisSettings

T = TypeVar("T")


def idempotency_key(record: MskRecord) -> str:
    """The record's event id when it carries one, else 'topic-partition-offset'."""
    return record.header(HEADER_EVENT_ID) or record.ident


def redis_persistence(url: str | None = None) -> BasePersistenceLayer:
    """powertools' Redis cache persistence layer on `url` (default: AIPX_REDIS_URL). Connects lazily."""
    from aws_lambda_powertools.utilities.idempotency.persistence.cache import CachePersistenceLayer

    url = url or RedisSettings().url.get_secret_value()
    with warnings.catch_warnings():
        # powertools marks the Redis class deprecated in favour of its CachePersistenceLayer alias (the same
        # class), so the warning is noise here.
        warnings.simplefilter("ignore", DeprecationWarning)
        return CachePersistenceLayer(url=url)


class RecordIdempotency:
    """Runs a per-record function at most once per idempotency key (results kept in Redis)."""

    def __init__(
        self,
        name: str,
        *,
        redis_url: str | None = None,
        persistence: BasePersistenceLayer | None = None,
        expires_after_seconds: int = 24 * 3600,
    ) -> None:
        self.name = name
        self._redis_url = redis_url
        self._persistence = persistence
        self.config = IdempotencyConfig(
            event_key_jmespath="key",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_seconds,
        )
        self._guarded: Callable[..., Any] | None = None
        self._lock = threading.Lock()

    def _guard(self) -> Callable[..., Any]:
        with self._lock:
            if self._guarded is None:
                persistence = self._persistence or redis_persistence(self._redis_url)

                def call(*, payload: dict[str, str], work: Callable[[], Any]) -> Any:
                    return work()

                self._guarded = idempotent_function(
                    call,
                    data_keyword_argument="payload",
                    persistence_store=persistence,
                    config=self.config,
                    key_prefix=f"aipx#{self.name}",
                )
            return self._guarded

    def register_lambda_context(self, context: LambdaContext | None) -> None:
        """Tie in-progress locks to the invocation's remaining time (call once per invocation)."""
        if context is not None:
            self.config.register_lambda_context(context)

    def run(self, key: str, work: Callable[[], T]) -> T:
        """`work()` once per `key`; a replay returns the stored (JSON-serializable) result instead."""
        result: T = self._guard()(payload={"key": key}, work=work)
        return result

    def run_record(self, record: MskRecord, work: Callable[[], T]) -> T:
        """`run` keyed by `idempotency_key(record)`."""
        return self.run(idempotency_key(record), work)
