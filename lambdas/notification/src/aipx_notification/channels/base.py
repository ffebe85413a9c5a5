"""The one small interface every notification channel implements.

A channel is a module in this package with one `Channel` subclass: a `name` (used in routes), a constructor
taking its settings and the shared aiohttp session, `secrets()` (values the redactor must mask) and
`send(message)`, which returns on success and raises `DeliveryError` otherwise (saying whether a retry may
help and how long the server asked to wait). Register it in `aipx_notification.channels.build_channels`.
`slack.py` is the smallest complete example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import aiohttp

from aipx_notification.domain.retry import parse_retry_after


@dataclass(frozen=True, slots=True)
class Message:
    """What to deliver: the rendered text plus the event it is about."""

    event_id: str
    event_type: str
    text: str
    fields: dict[str, str]


class DeliveryError(Exception):
    """A delivery failed. `retryable`: 429, 5xx, timeouts, connection errors; `retry_after_s` when told."""

    def __init__(
        self, message: str, *, retryable: bool, retry_after_s: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.status = status


class Channel(ABC):
    name: str

    @abstractmethod
    async def send(self, message: Message) -> None:
        """Deliver once; DeliveryError on failure."""

    @abstractmethod
    def secrets(self) -> list[str]:
        """Secret values of this channel (tokens, URLs with keys) to be masked wherever text is logged."""


async def post(
    session: aiohttp.ClientSession,
    channel: str,
    url: str,
    *,
    data: bytes,
    headers: dict[str, str],
) -> tuple[int, bytes, float | None]:
    """POST and return (status, body, retry-after seconds); transport errors become retryable DeliveryErrors
    that name only the error type (aiohttp messages can contain the URL, which may hold a secret)."""
    try:
        async with session.post(url, data=data, headers=headers) as response:
            body = await response.read()
            return response.status, body, parse_retry_after(response.headers.get("Retry-After"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"{channel}: {type(exc).__name__}", retryable=True) from None


def classify(channel: str, status: int, detail: str, retry_after_s: float | None) -> DeliveryError:
    """The error for a non-success HTTP status: 408/429/5xx retryable, other 4xx permanent."""
    retryable = status in (408, 429) or status >= 500
    return DeliveryError(
        f"{channel}: HTTP {status}: {detail[:200]}",
        retryable=retryable,
        retry_after_s=retry_after_s,
        status=status,
    )
