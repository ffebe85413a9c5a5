"""Telegram Bot API: POST {base}/bot<token>/sendMessage with {"chat_id", "text"}.

Telegram answers {"ok": true, ...}; on flood control it answers HTTP 429 with
{"ok": false, "parameters": {"retry_after": N}}, which is honoured like a Retry-After header.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp

from aipx_notification.channels.base import Channel, DeliveryError, Message, classify, post

if TYPE_CHECKING:
    from aipx_notification.settings import NotificationSettings


class TelegramChannel(Channel):
    kind = "telegram"
    name = "telegram"

    @classmethod
    def names(cls, settings: NotificationSettings) -> list[str]:
        return [cls.name] if settings.telegram_bot_token is not None else []

    @classmethod
    def build(cls, settings: NotificationSettings, session: aiohttp.ClientSession) -> list[Channel]:
        token, chat = settings.telegram_bot_token, settings.telegram_chat_id
        if token is None or chat is None:
            return []
        return [cls(token.get_secret_value(), chat, settings.telegram_base_url, session)]

    @classmethod
    def secrets_in(cls, settings: NotificationSettings) -> list[str]:
        token = settings.telegram_bot_token
        return [token.get_secret_value()] if token is not None else []

    def __init__(self, bot_token: str, chat_id: str, base_url: str, session: aiohttp.ClientSession) -> None:
        self._token = bot_token
        self._chat_id = chat_id
        self._url = f"{base_url.rstrip('/')}/bot{bot_token}/sendMessage"
        self._session = session

    def secrets(self) -> list[str]:
        return [self._token]

    async def send(self, message: Message) -> None:
        body = json.dumps(
            {"chat_id": self._chat_id, "text": message.text, "disable_web_page_preview": True}
        ).encode()
        status, reply, retry_after = await post(
            self._session, self.name, self._url, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            answer: Any = json.loads(reply) if reply else {}
        except json.JSONDecodeError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if status == 200 and answer.get("ok") is True:
            return
        parameters = answer.get("parameters")
        if isinstance(parameters, dict) and isinstance(parameters.get("retry_after"), int | float):
            retry_after = float(parameters["retry_after"])
        detail = str(answer.get("description") or reply.decode("utf-8", "replace"))
        if status == 200:
            raise DeliveryError(f"{self.name}: not ok: {detail[:200]}", retryable=False, status=status)
        raise classify(self.name, status, detail, retry_after)
