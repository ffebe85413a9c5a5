"""Settings of the cognitive function (environment variables AIPX_COGNITIVE_*, plus the shared sections).

Validation (the original design's rules):
    AIPX_COGNITIVE_MIN_CONFIDENCE            ensemble confidence needed to approve (0.7)
    AIPX_COGNITIVE_MIN_RISK_REWARD           reward/risk needed to approve (1.5)
    AIPX_COGNITIVE_MIN_AGREEING_VOTES        analysts that must agree with the signal (2)
    AIPX_COGNITIVE_REQUIRE_TREND_AGREEMENT   the signal must agree with the trend filter (true)
LLM analysts (each abstains while its key is unset):
    AIPX_COGNITIVE_OPENAI_API_KEY / _OPENAI_BASE_URL / _OPENAI_MODEL
    AIPX_COGNITIVE_ANTHROPIC_API_KEY / _ANTHROPIC_BASE_URL / _ANTHROPIC_MODEL
    AIPX_COGNITIVE_LLM_TIMEOUT_S             per-call budget (20 s); AIPX_COGNITIVE_LLM_MAX_RETRIES (1)
Auto-trading (orders through the OMS for approved decisions):
    AIPX_COGNITIVE_AUTO_TRADING_ENABLED      false by default
    AIPX_COGNITIVE_AUTO_TRADING_STRATEGIES   JSON list of strategy ids, or ["*"]
    AIPX_COGNITIVE_ACCOUNT                   label of the OMS account the API key maps to (client order ids)
    AIPX_COGNITIVE_ORDER_QUANTITIES          JSON {symbol: quantity}, e.g. '{"BTC-USDT": "0.001"}'
    AIPX_COGNITIVE_ORDER_TYPE                market (IOC) | limit (GTC at the signal price)
    AIPX_COGNITIVE_ORDER_VENUE               execution venue ("paper")
    AIPX_COGNITIVE_OMS_TARGET / _OMS_API_KEY / _OMS_TIMEOUT_S / _OMS_TLS (true: TLS with system roots)
Other:
    AIPX_COGNITIVE_DECISIONS_TOPIC           output topic (default: the catalogue's trading-decisions)
    AIPX_COGNITIVE_STATE_KEY_PREFIX / _STATE_TTL_S   Redis keys of decisions and latest signals
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from aipx.settings import ComponentSettings
from aipx.topics import TRADING_DECISIONS
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from aipx_cognitive.domain.decisions import AutoTradingPolicy
from aipx_cognitive.domain.ensemble import ValidationPolicy


class CognitiveSettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="AIPX_COGNITIVE_", extra="forbid", frozen=True)

    min_confidence: float = Field(0.7, ge=0, le=1)
    min_risk_reward: float = Field(1.5, gt=0)
    min_agreeing_votes: int = Field(2, ge=1)
    require_trend_agreement: bool = True

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-haiku-4-5"
    llm_timeout_s: float = Field(20.0, gt=0)
    llm_max_retries: int = Field(1, ge=0)

    auto_trading_enabled: bool = False
    auto_trading_strategies: list[str] = Field(default_factory=list)
    account: str = Field("default", pattern=r"^[A-Za-z0-9._:-]{1,40}$")
    order_quantities: dict[str, Decimal] = Field(default_factory=dict)
    order_type: Literal["market", "limit"] = "market"
    order_venue: str = "paper"
    oms_target: str = "127.0.0.1:50051"
    oms_api_key: SecretStr | None = None
    oms_timeout_s: float = Field(5.0, gt=0)
    # TLS to the OMS (true behind the AWS load balancer, which terminates TLS on 443; system CA roots)
    oms_tls: bool = False

    decisions_topic: str = TRADING_DECISIONS
    state_key_prefix: str = "aipx:cognitive"
    state_ttl_s: int = Field(30 * 86_400, ge=60)

    @field_validator("order_quantities")
    @classmethod
    def _positive(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = [s for s, q in value.items() if not q.is_finite() or q <= 0]
        if bad:
            raise ValueError(f"order quantities must be positive decimals: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _auto_trading_needs_a_key(self) -> CognitiveSettings:
        if self.auto_trading_enabled and self.oms_api_key is None:
            raise ValueError("AIPX_COGNITIVE_AUTO_TRADING_ENABLED needs AIPX_COGNITIVE_OMS_API_KEY")
        return self

    def validation_policy(self) -> ValidationPolicy:
        return ValidationPolicy(
            self.min_confidence, self.min_risk_reward, self.min_agreeing_votes, self.require_trend_agreement
        )

    def auto_trading_policy(self) -> AutoTradingPolicy:
        return AutoTradingPolicy(
            enabled=self.auto_trading_enabled,
            account=self.account,
            strategies=frozenset(self.auto_trading_strategies),
            quantities=dict(self.order_quantities),
            order_type=self.order_type,
            venue=self.order_venue,
        )
