"""Notify about one event: route it, render it, deliver it to each channel at most once.

For each channel the event is routed to: skip it if the (event id, channel) sent-marker exists; else send with
retries (tenacity: exponential backoff, or the server's Retry-After when it gives one; a Retry-After longer
than AIPX_NOTIFICATION_MAX_RETRY_AFTER_S is not waited for inside the invocation: the record fails and the
event source mapping retries it later) and write the marker only after a successful send.
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
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from aipx_notification.adapters.dedupe import SentMarkers
from aipx_notification.channels import Channel, DeliveryError, Message, build_channels, secrets_of
from aipx_notification.domain.events import NotifiableEvent
from aipx_notification.domain.redaction import Redactor
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

    def retryable(self, exc: BaseException) -> bool:
        """A delivery error worth another attempt now: retryable, and any Retry-After short enough."""
        return (
            isinstance(exc, DeliveryError)
            and exc.retryable
            and (exc.retry_after_s is None or exc.retry_after_s <= self.settings.max_retry_after_s)
        )

    def _wait(self, state: RetryCallState) -> float:
        """The server's Retry-After when it gave one, else exponential backoff (base * 2**(n-1), capped)."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, DeliveryError) and exc.retry_after_s is not None:
            return exc.retry_after_s
        backoff = wait_exponential(multiplier=self.settings.backoff_base_s, max=self.settings.backoff_max_s)
        return float(backoff(state))

    def _log_failure(self, channel: Channel, message: Message, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "delivery failed",
            extra={
                "channel": channel.name,
                "event_id": message.event_id,
                "attempt": state.attempt_number,
                "error": self.redact(str(exc)),
                "retry_in_s": state.next_action.sleep if state.next_action is not None else None,
            },
        )

    async def _deliver(self, channel: Channel, message: Message) -> int:
        """Send with retries; the number of attempts made. Raises the last DeliveryError when giving up."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(self.retryable),
            sleep=self.sleep,
            before_sleep=lambda state: self._log_failure(channel, message, state),
            reraise=True,
        )
        state: RetryCallState | None = None
        try:
            async for attempt in retrying:
                state = attempt.retry_state
                with attempt:
                    await channel.send(message)
        except DeliveryError:
            if state is not None:
                self._log_failure(channel, message, state)  # the last attempt: no retry follows
            raise
        return state.attempt_number if state is not None else 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session, self._channels = None, None
        await self.markers.close()
