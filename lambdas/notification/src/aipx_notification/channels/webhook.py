"""Generic webhook: POST a JSON body signed with HMAC-SHA256.

Body: {"event_id", "event_type", "text", "fields"} (sorted keys, compact). Headers:
    X-AIPX-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes with the shared secret>
    X-AIPX-Event-Id / X-AIPX-Event-Type: for the receiver's own routing and de-duplication.
Receivers verify with `verify_signature(secret, body, header)`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING

import aiohttp

from aipx_notification.channels.base import Channel, Message, classify, post

if TYPE_CHECKING:
    from aipx_notification.settings import NotificationSettings

SIGNATURE_HEADER = "X-AIPX-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of `body` under `secret` (constant-time comparison)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


class WebhookChannel(Channel):
    """Several per deployment: one per entry of AIPX_NOTIFICATION_WEBHOOKS, named "webhook:<name>"."""

    kind = "webhook"

    @classmethod
    def names(cls, settings: NotificationSettings) -> list[str]:
        return [f"webhook:{hook.name}" for hook in settings.webhooks]

    @classmethod
    def build(cls, settings: NotificationSettings, session: aiohttp.ClientSession) -> list[Channel]:
        return [cls(h.name, h.url, h.secret.get_secret_value(), session) for h in settings.webhooks]

    @classmethod
    def secrets_in(cls, settings: NotificationSettings) -> list[str]:
        return [hook.secret.get_secret_value() for hook in settings.webhooks]

    def __init__(self, name: str, url: str, secret: str, session: aiohttp.ClientSession) -> None:
        self.name = f"webhook:{name}"
        self._url = url
        self._secret = secret
        self._session = session

    def secrets(self) -> list[str]:
        return [self._secret]

    async def send(self, message: Message) -> None:
        body = json.dumps(
            {
                "event_id": message.event_id,
                "event_type": message.event_type,
                "text": message.text,
                "fields": message.fields,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            "X-AIPX-Event-Id": message.event_id,
            "X-AIPX-Event-Type": message.event_type,
        }
        status, reply, retry_after = await post(
            self._session, self.name, self._url, data=body, headers=headers
        )
        if not 200 <= status < 300:
            raise classify(self.name, status, reply.decode("utf-8", "replace"), retry_after)
