"""Slack incoming webhook: POST {"text": ...} to the webhook URL (the URL itself is the secret)."""

from __future__ import annotations

import json

import aiohttp

from aipx_notification.channels.base import Channel, Message, classify, post


class SlackChannel(Channel):
    name = "slack"

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
