"""Notification channels: one module per kind, registered here and nowhere else (see channels/base.py).

`CHANNEL_TYPES` is the registry; the settings' channel names, the channels built for the service and the
redactor's secrets all come from it. `_template.py` shows what a new kind provides; it is not registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp

from aipx_notification.channels.base import Channel, DeliveryError, Message
from aipx_notification.channels.slack import SlackChannel
from aipx_notification.channels.telegram import TelegramChannel
from aipx_notification.channels.webhook import WebhookChannel

if TYPE_CHECKING:
    from aipx_notification.settings import NotificationSettings

# The registry, in delivery order.
CHANNEL_TYPES: tuple[type[Channel], ...] = (TelegramChannel, SlackChannel, WebhookChannel)


def channel_names(settings: NotificationSettings) -> list[str]:
    """Names of the configured channels, in delivery order."""
    return [name for kind in CHANNEL_TYPES for name in kind.names(settings)]


def build_channels(settings: NotificationSettings, session: aiohttp.ClientSession) -> list[Channel]:
    """Every configured channel, in the order of `channel_names`."""
    return [channel for kind in CHANNEL_TYPES for channel in kind.build(settings, session)]


def secrets_of(settings: NotificationSettings) -> list[str]:
    """Every secret value in the channel settings (for the redactor), without building the channels."""
    return [secret for kind in CHANNEL_TYPES for secret in kind.secrets_in(settings)]


__all__ = [
    "CHANNEL_TYPES",
    "Channel",
    "DeliveryError",
    "Message",
    "build_channels",
    "channel_names",
    "secrets_of",
]
