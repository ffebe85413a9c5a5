"""Notification channels, each one module behind `Channel`, built from the settings in one place."""

from __future__ import annotations

import aiohttp

from aipx_notification.channels.base import Channel, DeliveryError, Message
from aipx_notification.channels.slack import SlackChannel
from aipx_notification.channels.telegram import TelegramChannel
from aipx_notification.channels.webhook import WebhookChannel
from aipx_notification.settings import NotificationSettings


def build_channels(settings: NotificationSettings, session: aiohttp.ClientSession) -> list[Channel]:
    """Every configured channel, in the order of `settings.channel_names()`."""
    channels: list[Channel] = []
    if settings.telegram_bot_token is not None and settings.telegram_chat_id is not None:
        channels.append(
            TelegramChannel(
                settings.telegram_bot_token.get_secret_value(),
                settings.telegram_chat_id,
                settings.telegram_base_url,
                session,
            )
        )
    if settings.slack_webhook_url is not None:
        channels.append(SlackChannel(settings.slack_webhook_url.get_secret_value(), session))
    for hook in settings.webhooks:
        channels.append(WebhookChannel(hook.name, hook.url, hook.secret.get_secret_value(), session))
    return channels


def secrets_of(settings: NotificationSettings) -> list[str]:
    """Every secret value in the channel settings (for the redactor), without building the channels."""
    values = [s.get_secret_value() for s in (settings.telegram_bot_token, settings.slack_webhook_url) if s]
    values.extend(w.secret.get_secret_value() for w in settings.webhooks)
    return values


__all__ = ["Channel", "DeliveryError", "Message", "build_channels", "secrets_of"]
