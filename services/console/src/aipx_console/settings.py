"""ConsoleSettings: the console's configuration, read from AIPX_CONSOLE_* (plus the shared sections)."""

from __future__ import annotations

from aipx.settings import ComponentSettings
from aipx.topics import MARKET_DATA_RAW, ORDER_EVENTS, TRADING_DECISIONS, TRADING_SIGNALS
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict


class ConsoleSettings(ComponentSettings):
    """Every console knob. The admin token is never configured here: the operator types it in the page."""

    model_config = SettingsConfigDict(env_prefix="AIPX_CONSOLE_", extra="forbid", frozen=True)

    http_host: str = "127.0.0.1"
    http_port: int = Field(18790, ge=0, le=65535)
    # The OMS gRPC API (OmsService for orders/positions, AdminService for the actions).
    oms_target: str = "127.0.0.1:50051"
    # JSON {"<account id>": "<api key>"}: the accounts whose orders and positions are loaded at start from
    # the OMS API (later changes of every account arrive on order-events).
    oms_api_keys: SecretStr | None = None
    oms_timeout_s: float = Field(5.0, gt=0)
    # JSON {"<service>": "http://host:port/metrics"}: the services whose key figures the console shows.
    metrics_targets: dict[str, str] = Field(default_factory=dict)
    scrape_interval_s: float = Field(2.0, gt=0)
    # Updates are coalesced and pushed to the browsers at most this often (many symbols, one frame each).
    push_interval_s: float = Field(0.25, gt=0)
    candle_interval_s: int = Field(5, ge=1)
    max_candles: int = Field(120, ge=10)
    stale_after_s: float = Field(15.0, gt=0)
    history: int = Field(200, ge=10, description="signals, decisions, fills and finished orders kept")
    # Records of each topic read at start (per partition), so the page is not empty until the next event.
    backlog: int = Field(50, ge=0)
    market_data_topic: str = MARKET_DATA_RAW
    signals_topic: str = TRADING_SIGNALS
    decisions_topic: str = TRADING_DECISIONS
    order_events_topic: str = ORDER_EVENTS
    # Dead-letter topics to count; None = the catalogue's DLQ of each topic above.
    dlq_topics: tuple[str, ...] | None = None
