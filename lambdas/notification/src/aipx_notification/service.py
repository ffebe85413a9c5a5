"""Notify about one event: route it, render it, deliver it to each channel at most once.

For each channel the event is routed to: skip it if the (event id, channel) sent-marker exists; else send with
retries (backoff, honouring 429 Retry-After up to a limit) and write the marker only after a successful send.
If any channel still fails, the record fails (and is retried by the event source mapping); the channels that
already succeeded are not sent again. Error texts pass through the redactor before they are logged or raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aipx.lambda_kit import AsyncRuntime
from aws_lambda_powertools import Logger

from aipx_notification.adapters.dedupe import SentMarkers
from aipx_notification.channels import Channel, DeliveryError, Message, build_channels, secrets_of
from aipx_notification.domain.events import NotifiableEvent
from aipx_notification.domain.redaction import Redactor
from aipx_notification.domain.retry import RetryPolicy
from aipx_notification.domain.routing import Router
from aipx_notification.settings import NotificationSettings

FUNCTION = "notification"
# A child of the handler's powertools Logger: same JSON format, same correlation id.
log = Logger(service=FUNCTION, child=True)


class NotificationFailedError(Exception):
    """At least one channel could not be delivered to (its message names the channels and why, redacted)."""


@dataclass(slots=True)
class Report:
    sent: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    attempts: int = 0

    def to_json(self) -> dict[str, object]:
        return {"sent": self.sent, "already_sent": self.already_sent, "attempts": self.attempts}


class NotificationService:
    def __init__(
        self,
        settings: NotificationSettings,
        *,
        runtime: AsyncRuntime,
        markers: SentMarkers,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.markers = markers
        self.router: Router = settings.router()
        self.retry: RetryPolicy = settings.retry_policy()
        self.redact = Redactor(secrets_of(settings))
        self.sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._channels: dict[str, Channel] | None = None

    @classmethod
    def from_settings(cls, settings: NotificationSettings, runtime: AsyncRuntime) -> NotificationService:
        markers = SentMarkers(
            settings.redis.url.get_secret_value(),
            prefix=settings.dedupe_key_prefix,
            ttl_s=settings.dedupe_ttl_s,
        )
        return cls(settings, runtime=runtime, markers=markers)

    def _channel_map(self) -> dict[str, Channel]:
        # Built on the runtime's loop: the aiohttp session binds to the loop it is created on.
        if self._channels is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.http_timeout_s)
            )
            self._channels = {c.name: c for c in build_channels(self.settings, self._session)}
        return self._channels

    def notify(self, event: NotifiableEvent) -> Report:
        """Deliver `event` to its channels (sync facade over the runtime's loop)."""
        return self.runtime.run(self._notify(event))

    async def _notify(self, event: NotifiableEvent) -> Report:
        report = Report()
        targets = self.router.channels_for(event)
        if not targets:
            return report
        channels = self._channel_map()
        message = Message(event.event_id, event.event_type, self.router.render(event), event.fields)
        failures: list[str] = []
        for name in targets:
            if await self.markers.was_sent(event.event_id, name):
                report.already_sent.append(name)
                continue
            try:
                report.attempts += await self._deliver(channels[name], message)
            except DeliveryError as exc:
                failures.append(self.redact(str(exc)))
                continue
            await self.markers.mark_sent(event.event_id, name)
            report.sent.append(name)
        if failures:
            raise NotificationFailedError(f"{event.event_type} {event.event_id}: " + "; ".join(failures))
        return report

    async def _deliver(self, channel: Channel, message: Message) -> int:
        """Send with retries; the number of attempts made. Raises the last DeliveryError when giving up."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await channel.send(message)
                return attempt
            except DeliveryError as exc:
                delay = self.retry.delay(attempt, exc.retry_after_s) if exc.retryable else None
                log.warning(
                    "delivery failed",
                    extra={
                        "channel": channel.name,
                        "event_id": message.event_id,
                        "attempt": attempt,
                        "error": self.redact(str(exc)),
                        "retry_in_s": delay,
                    },
                )
                if delay is None:
                    raise
                await self.sleep(delay)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session, self._channels = None, None
        await self.markers.close()
