"""Settings of the notification function (environment variables AIPX_NOTIFICATION_*, plus shared sections).

Channels (each enabled by its secret; secrets are SecretStr and never logged):
    AIPX_NOTIFICATION_TELEGRAM_BOT_TOKEN, _TELEGRAM_CHAT_ID, _TELEGRAM_BASE_URL (https://api.telegram.org)
    AIPX_NOTIFICATION_SLACK_WEBHOOK_URL
    AIPX_NOTIFICATION_WEBHOOKS   JSON list: '[{"name": "ops", "url": "https://...", "secret": "..."}]'
Routing and templates:
    AIPX_NOTIFICATION_ROUTES     JSON {event-type pattern: [channel, ...]}; channels "telegram", "slack",
                                 "webhook:<name>" or "*" (all). Default: fills, denials, rejections,
                                 cancels, expiries and approved decisions to every channel.
    AIPX_NOTIFICATION_TEMPLATES  JSON {event-type pattern: str.format template} (validated at start)
Delivery (retries by tenacity: exponential backoff, or the server's Retry-After up to _MAX_RETRY_AFTER_S;
redirects are never followed):
    AIPX_NOTIFICATION_MAX_ATTEMPTS (4), _BACKOFF_BASE_S (0.5), _BACKOFF_MAX_S (8), _MAX_RETRY_AFTER_S (30),
    AIPX_NOTIFICATION_HTTP_TIMEOUT_S (10), _DEDUPE_TTL_S (7 days), _DEDUPE_KEY_PREFIX
"""

from __future__ import annotations

from aipx.settings import ComponentSettings
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from aipx_notification.domain.routing import DEFAULT_ROUTES, Router


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr


class NotificationSettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="AIPX_NOTIFICATION_", extra="forbid", frozen=True)

    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    telegram_base_url: str = "https://api.telegram.org"
    slack_webhook_url: SecretStr | None = None
    webhooks: list[WebhookTarget] = Field(default_factory=list)

    routes: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_ROUTES.items()}
    )
    templates: dict[str, str] = Field(default_factory=dict)

    max_attempts: int = Field(4, ge=1, le=10)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(8.0, ge=0)
    max_retry_after_s: float = Field(30.0, ge=0)
    http_timeout_s: float = Field(10.0, gt=0)
    dedupe_ttl_s: int = Field(7 * 86_400, ge=60)
    dedupe_key_prefix: str = "aipx:notification:sent"

    @model_validator(mode="after")
    def _consistent(self) -> NotificationSettings:
        if (self.telegram_bot_token is None) != (self.telegram_chat_id is None):
            raise ValueError("telegram needs both AIPX_NOTIFICATION_TELEGRAM_BOT_TOKEN and _TELEGRAM_CHAT_ID")
        names = [w.name for w in self.webhooks]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate webhook names: {names}")
        self.router()
        return self

    def channel_names(self) -> list[str]:
        """Names of the configured channels, in delivery order (from the channel registry)."""
        from aipx_notification.channels import channel_names

        return channel_names(self)

    def router(self) -> Router:
        return Router.build(self.routes, self.templates, self.channel_names())
