"""Retry policy for deliveries: exponential backoff, and the server's Retry-After when it gives one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    # A Retry-After longer than this is not waited for inside the invocation: the record is failed and the
    # event source mapping retries it later (dedupe keeps already-sent channels from sending again).
    max_retry_after_s: float = 30.0

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float | None:
        """Seconds to wait before attempt `attempt + 1` (attempts count from 1); None: stop retrying."""
        if attempt >= self.max_attempts:
            return None
        if retry_after_s is not None:
            return retry_after_s if retry_after_s <= self.max_retry_after_s else None
        return min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (attempt - 1))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """A Retry-After header value (delta-seconds or an HTTP date) in seconds; None when absent/unparseable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
