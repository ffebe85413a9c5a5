"""Ingestion settings: environment variables AIPX_INGESTION_* (plus the shared AIPX_KAFKA_*, AIPX_LOG_*,
AIPX_METRICS_* sections). Defaults feed from the local exchange simulator (aipx-exchange-sim).

Lists are comma-separated (AIPX_INGESTION_SYMBOLS=BTC-USDT,ETH-USDT); per-venue maps are JSON
(AIPX_INGESTION_WS_URLS='{"binance": "wss://stream.binance.com:9443/stream"}').
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from aipx.settings import ComponentSettings
from aipx.topics import MARKET_DATA_RAW
from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from aipx_ingestion.domain.symbols import split_canonical
from aipx_ingestion.venues import VENUES

SIM_WS = "ws://127.0.0.1:18765"
SIM_REST = "http://127.0.0.1:18766"

CsvTuple = Annotated[tuple[str, ...], NoDecode]


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class IngestionSettings(ComponentSettings):
    """Everything the ingestion service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="AIPX_INGESTION_", extra="forbid", frozen=True)

    venues: CsvTuple = ("binance", "bybit")
    symbols: CsvTuple = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT", "XRP-USDT")
    ws_urls: dict[str, str] = Field(
        default_factory=lambda: {
            "binance": f"{SIM_WS}/binance/stream",
            "bybit": f"{SIM_WS}/bybit/v5/public/spot",
        },
        description="WebSocket endpoint per venue (unset venues use the adapter's real endpoint)",
    )
    rest_urls: dict[str, str] = Field(default_factory=lambda: {"binance": SIM_REST})
    channels: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="channels per venue (unset venues use the adapter's defaults)"
    )
    topic: str = Field(MARKET_DATA_RAW, description="target topic (tests publish to a fresh one)")

    buffer_size: int = Field(100_000, ge=1, description="envelopes buffered between readers and the producer")
    batch_linger_ms: float = Field(
        2.0,
        ge=0,
        description="how long the sink lets a batch gather after its first envelope (at 10,000 msg/s: p99 "
        "9 ms at 2 ms, 11-14 ms at the producers' 5 ms; the buffer fills past a batch at full speed anyway)",
    )
    produce_timeout_ms: int = Field(
        120_000,
        ge=1_000,
        description="how long the producer keeps retrying a batch (must outlast a broker restart)",
    )
    shutdown_timeout_s: float = Field(30.0, gt=0)

    tls_ca_file: str | None = Field(
        None,
        description="CA certificates (PEM) trusted for wss:// besides the system's, e.g. a test venue's "
        "self-signed certificate",
    )
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    reconnect_reset_after_s: float = Field(
        30.0,
        gt=0,
        description="the reconnect backoff resets only after a connection stayed up this long "
        "(one that ends sooner counts as a failed attempt)",
    )
    open_timeout_s: float = Field(10.0, gt=0)
    ping_interval_s: float = Field(20.0, gt=0)
    ping_timeout_s: float = Field(60.0, gt=0)
    stale_after_s: float = Field(30.0, gt=0, description="no frame at all for this long: reconnect")
    stale_stream_after_s: float = Field(120.0, gt=0, description="a stream silent this long: resubscribe it")
    connection_lifetime_s: dict[str, float] = Field(
        default_factory=dict, description="per-venue override of the venue's connection lifetime"
    )
    rotation_margin_s: float = Field(600.0, ge=0, description="rotate this long before the lifetime ends")
    subscribe_interval_s: float = Field(0.25, ge=0, description="pause between subscribe requests")
    streams_per_connection: int = Field(200, ge=1)

    snapshot_depth: int = Field(1000, ge=1, le=5000)
    snapshot_rate_per_s: float = Field(2.0, gt=0, description="REST snapshot requests per second per venue")
    snapshot_burst: int = Field(5, ge=1)
    book_snapshot_interval_s: float = Field(
        60.0, ge=0, description="periodic BookSnapshot; 0 = only on resync"
    )
    log_sample_every: int = Field(1000, ge=1, description="log one malformed frame per this many")

    @field_validator("venues", "symbols", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _csv(value)

    @field_validator("symbols")
    @classmethod
    def _canonical(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for symbol in value:
            split_canonical(symbol)
        if not value:
            raise ValueError("at least one symbol is required")
        return value

    @model_validator(mode="after")
    def _known_venues(self) -> Self:
        for name in (
            *self.venues,
            *self.ws_urls,
            *self.rest_urls,
            *self.channels,
            *self.connection_lifetime_s,
        ):
            if name not in VENUES:
                raise ValueError(f"unknown venue {name!r}; known: {', '.join(sorted(VENUES))}")
        if not self.venues:
            raise ValueError("at least one venue is required")
        return self
