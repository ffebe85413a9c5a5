"""Reference for a new notification channel: copy this module, fill in each part, add the class to
`CHANNEL_TYPES` in channels/__init__.py and its settings fields to `NotificationSettings`. Nothing else
changes: routing ("<kind>" in AIPX_NOTIFICATION_ROUTES), templates, retries, de-duplication and redaction
work from this interface. Not registered (templates stay out of production); tested in
tests/lambdas/notification/test_notification_channels.py.

This template is a working channel for a service that takes `POST <url>` with a bearer token and
{"text": ...}, answering 2xx on success and 429 with Retry-After when rate-limited.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import aiohttp

from aipx_notification.channels.base import Channel, Message, classify, post

if TYPE_CHECKING:
    from aipx_notification.settings import NotificationSettings


class TemplateChannel(Channel):
    # 1. Name the kind: routes say "template", settings are AIPX_NOTIFICATION_TEMPLATE_*.
    kind = "template"
    name = "template"

    # 2. Read the settings: add `template_url: SecretStr | None = None` and `template_token: SecretStr | None
    #    = None` to NotificationSettings (the channel is configured when they are set). Until then, none.
    @classmethod
    def names(cls, settings: NotificationSettings) -> list[str]:
        return [cls.name] if getattr(settings, "template_url", None) is not None else []

    @classmethod
    def build(cls, settings: NotificationSettings, session: aiohttp.ClientSession) -> list[Channel]:
        url, token = getattr(settings, "template_url", None), getattr(settings, "template_token", None)
        if url is None or token is None:
            return []
        return [cls(url.get_secret_value(), token.get_secret_value(), session)]

    # 3. Say what is secret (the redactor masks it in every log line and error).
    @classmethod
    def secrets_in(cls, settings: NotificationSettings) -> list[str]:
        values = (getattr(settings, "template_url", None), getattr(settings, "template_token", None))
        return [v.get_secret_value() for v in values if v is not None]

    def __init__(self, url: str, token: str, session: aiohttp.ClientSession) -> None:
        self._url = url
        self._token = token
        self._session = session

    def secrets(self) -> list[str]:
        return [self._token]

    # 4. Send once through `post` (no redirects followed; transport errors are retryable) and map the
    #    answer: return on success, `classify` the rest (408/429/5xx retryable, other 4xx permanent).
    async def send(self, message: Message) -> None:
        body = json.dumps({"text": message.text}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"}
        status, reply, retry_after = await post(
            self._session, self.name, self._url, data=body, headers=headers
        )
        if not 200 <= status < 300:
            raise classify(self.name, status, reply.decode("utf-8", "replace"), retry_after)
