"""The one small interface every notification channel implements (a plug-in).

A channel is one module in this package with one `Channel` subclass, registered in `CHANNEL_TYPES`
(aipx_notification.channels, the only place that lists them); `_template.py` is a complete, tested example
that is not registered. The subclass says, from the notification settings, which channels of its kind are
configured (`names`), builds them (`build`, with the shared aiohttp session) and which values are secret
(`secrets_in`, for the redactor, without building anything). An instance `send`s one message: it returns on
success and raises `DeliveryError` otherwise (whether a retry may help, how long the server asked to wait).
Its settings are fields of `NotificationSettings` (AIPX_NOTIFICATION_<KIND>_*).

HTTP goes through `post`, which never follows a redirect: a 3xx answer is a permanent failure, so a signed
body or a URL carrying a token is only ever sent to the configured URL, not to wherever a 307/308 points.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, ClassVar

import aiohttp

if TYPE_CHECKING:
    from aipx_notification.settings import NotificationSettings


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
    """One delivery target. Class side: the plug-in (what the settings configure); instance side: sending."""

    kind: ClassVar[str]  # "telegram", "slack", "webhook", ...: AIPX_NOTIFICATION_<KIND>_* settings
    name: str  # the name routes use: the kind, or "<kind>:<name>" when a kind has several

    @classmethod
    @abstractmethod
    def names(cls, settings: NotificationSettings) -> list[str]:
        """The channels of this kind the settings configure (route names), none when it is not set up."""

    @classmethod
    @abstractmethod
    def build(cls, settings: NotificationSettings, session: aiohttp.ClientSession) -> list[Channel]:
        """The configured channels of this kind, in the order of `names`."""

    @classmethod
    @abstractmethod
    def secrets_in(cls, settings: NotificationSettings) -> list[str]:
        """Secret values this kind's settings hold (tokens, keyed URLs), for the redactor."""

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
        async with session.post(url, data=data, headers=headers, allow_redirects=False) as response:
            body = await response.read()
            status = response.status
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"{channel}: {type(exc).__name__}", retryable=True) from None
    if 300 <= status < 400:
        # Never followed: a 307/308 would re-send the (signed) body to a host the settings did not name.
        raise DeliveryError(
            f"{channel}: HTTP {status}: redirect not followed (fix the channel's URL)",
            retryable=False,
            status=status,
        )
    return status, body, retry_after


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


def classify(channel: str, status: int, detail: str, retry_after_s: float | None) -> DeliveryError:
    """The error for a non-success HTTP status: 408/429/5xx retryable, other 4xx permanent."""
    retryable = status in (408, 429) or status >= 500
    return DeliveryError(
        f"{channel}: HTTP {status}: {detail[:200]}",
        retryable=retryable,
        retry_after_s=retry_after_s,
        status=status,
    )
