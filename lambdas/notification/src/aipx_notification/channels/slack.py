"""Slack incoming webhook: POST {"text": ...} to the webhook URL (the URL itself is the secret)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import aiohttp

from aipx_notification.channels.base import Channel, Message, classify, post

if TYPE_CHECKING:
    from aipx_notification.settings import NotificationSettings


class SlackChannel(Channel):
    kind = "slack"
    name = "slack"

    @classmethod
    def names(cls, settings: NotificationSettings) -> list[str]:
        return [cls.name] if settings.slack_webhook_url is not None else []

    @classmethod
    def build(cls, settings: NotificationSettings, session: aiohttp.ClientSession) -> list[Channel]:
        url = settings.slack_webhook_url
        return [cls(url.get_secret_value(), session)] if url is not None else []

    @classmethod
    def secrets_in(cls, settings: NotificationSettings) -> list[str]:
        url = settings.slack_webhook_url
        return [url.get_secret_value()] if url is not None else []

    def __init__(self, webhook_url: str, session: aiohttp.ClientSession) -> None:
        self._url = webhook_url
        self._session = session

    def secrets(self) -> list[str]:
        return [self._url]

    async def send(self, message: Message) -> None:
        body = json.dumps({"text": message.text}).encode()
        status, reply, retry_after = await post(
            self._session, self.name, self._url, data=body, headers={"Content-Type": "application/json"}
        )
        if status != 200:
            raise classify(self.name, status, reply.decode("utf-8", "replace"), retry_after)
