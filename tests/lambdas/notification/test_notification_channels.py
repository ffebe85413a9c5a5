"""Channels as plug-ins (one registry, a template kept out of it), delivery retries by tenacity, and no
redirect followed (a 307/308 must not re-send a signed body to another host): the last against a real HTTP
server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aipx.lambda_kit import AsyncRuntime
from aipx_notification.adapters.dedupe import SentMarkers
from aipx_notification.channels import CHANNEL_TYPES, Channel, DeliveryError, Message, channel_names
from aipx_notification.channels._template import TemplateChannel
from aipx_notification.channels.slack import SlackChannel
from aipx_notification.channels.webhook import WebhookChannel
from aipx_notification.service import NotificationService
from aipx_notification.settings import NotificationSettings

MESSAGE = Message("ev-1", "order.filled", "Filled BUY 0.001 BTC-USDT", {"symbol": "BTC-USDT"})


def test_the_registry_lists_each_kind_once_and_not_the_template() -> None:
    kinds = [kind.kind for kind in CHANNEL_TYPES]
    assert kinds == ["telegram", "slack", "webhook"] and len(set(kinds)) == len(kinds)
    assert TemplateChannel not in CHANNEL_TYPES
    settings = NotificationSettings(
        slack_webhook_url="https://hooks.example/T/B/x",
        webhooks=[{"name": "ops", "url": "https://ops.example/hook", "secret": "s"}],
    )
    assert channel_names(settings) == settings.channel_names() == ["slack", "webhook:ops"]
    # The template, as a new kind would be once registered, provides the whole interface.
    assert TemplateChannel.names(settings) == [] and TemplateChannel.secrets_in(settings) == []
    kinds_and_template: list[type[Channel]] = [*CHANNEL_TYPES, TemplateChannel]
    for kind in kinds_and_template:
        assert not getattr(kind, "__abstractmethods__", None), kind  # every part of the interface provided


class Scripted(Channel):
    """A channel whose sends fail as scripted (pure logic: no I/O)."""

    kind = "scripted"
    name = "scripted"

    def __init__(self, errors: list[DeliveryError]) -> None:
        self.errors = errors
        self.sends = 0

    @classmethod
    def names(cls, settings: NotificationSettings) -> list[str]:
        return []

    @classmethod
    def build(cls, settings: NotificationSettings, session: aiohttp.ClientSession) -> list[Channel]:
        return []

    @classmethod
    def secrets_in(cls, settings: NotificationSettings) -> list[str]:
        return []

    def secrets(self) -> list[str]:
        return []

    async def send(self, message: Message) -> None:
        self.sends += 1
        if self.errors:
            raise self.errors.pop(0)


def service(sleeps: list[float]) -> NotificationService:
    settings = NotificationSettings(
        max_attempts=4, backoff_base_s=0.5, backoff_max_s=1.5, max_retry_after_s=30
    )

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    markers = SentMarkers("redis://unused", prefix="unit", ttl_s=60)  # connects lazily: never here
    return NotificationService(settings, runtime=AsyncRuntime(), markers=markers, sleep=sleep)


def retryable(retry_after_s: float | None = None) -> DeliveryError:
    return DeliveryError("HTTP 503", retryable=True, retry_after_s=retry_after_s, status=503)


async def test_retries_back_off_exponentially_capped_and_stop_after_max_attempts() -> None:
    sleeps: list[float] = []
    channel = Scripted([retryable(), retryable(), retryable()])
    assert await service(sleeps)._deliver(channel, MESSAGE) == 4
    assert sleeps == [0.5, 1.0, 1.5]
    sleeps.clear()
    failing = Scripted([retryable() for _ in range(5)])
    with pytest.raises(DeliveryError):
        await service(sleeps)._deliver(failing, MESSAGE)
    assert failing.sends == 4 and sleeps == [0.5, 1.0, 1.5]


async def test_retry_after_is_honoured_unless_too_long_and_permanent_errors_are_not_retried() -> None:
    sleeps: list[float] = []
    assert await service(sleeps)._deliver(Scripted([retryable(7)]), MESSAGE) == 2
    assert sleeps == [7]
    too_long = Scripted([retryable(31)])  # not waited for inside the invocation: the record is retried later
    with pytest.raises(DeliveryError):
        await service(sleeps)._deliver(too_long, MESSAGE)
    permanent = Scripted([DeliveryError("HTTP 400", retryable=False, status=400)])
    with pytest.raises(DeliveryError):
        await service(sleeps)._deliver(permanent, MESSAGE)
    assert too_long.sends == permanent.sends == 1 and sleeps == [7]


@pytest.fixture
async def redirecting() -> AsyncIterator[dict[str, Any]]:
    """A real HTTP server whose /hook answers 307 to /elsewhere (as if to another host), recording both."""
    seen: dict[str, Any] = {"hook": [], "elsewhere": []}

    async def hook(request: web.Request) -> web.Response:
        seen["hook"].append(await request.read())
        raise web.HTTPTemporaryRedirect(location=f"{seen['url']}/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        seen["elsewhere"].append(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/elsewhere", elsewhere)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    seen["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield seen
    await runner.cleanup()


async def test_a_redirect_is_a_permanent_failure_and_the_signed_body_goes_nowhere_else(
    redirecting: dict[str, Any],
) -> None:
    async with aiohttp.ClientSession() as session:
        for channel in (
            WebhookChannel("ops", redirecting["url"] + "/hook", "whsec-secret", session),
            SlackChannel(redirecting["url"] + "/hook", session),
            TemplateChannel(redirecting["url"] + "/hook", "token", session),
        ):
            with pytest.raises(DeliveryError, match=r"HTTP 307: redirect not followed") as err:
                await channel.send(MESSAGE)
            assert err.value.retryable is False and err.value.status == 307
    assert len(redirecting["hook"]) == 3 and redirecting["elsewhere"] == []
    assert json.loads(redirecting["hook"][0])["event_id"] == "ev-1"
