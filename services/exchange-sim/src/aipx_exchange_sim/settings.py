"""Simulator settings: environment variables AIPX_SIM_* (defaults are the local stack's feed)."""

from __future__ import annotations

from typing import Annotated, Any

from aipx.settings import LogSettings, StrictEnvSettings
from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

DEFAULT_SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT", "XRP-USDT")


class SimSettings(StrictEnvSettings):
    """What the simulator serves and how fast."""

    model_config = SettingsConfigDict(env_prefix="AIPX_SIM_", extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    ws_port: int = Field(18765, ge=0, le=65535, description="WebSocket port (0: any free port)")
    rest_port: int = Field(18766, ge=0, le=65535, description="REST + control API port (0: any free port)")
    symbols: Annotated[tuple[str, ...], NoDecode] = DEFAULT_SYMBOLS
    rate: float = Field(200.0, ge=0, description="market events per second over all symbols; 0 = full speed")
    seed: int = 7
    depth_interval_ms: int = Field(
        100, ge=1, description="depth diffs are pushed this often (Binance @100ms)"
    )
    kline_interval_ms: int = Field(1000, ge=10)
    book_levels: int = Field(50, ge=5)
    client_queue: int = Field(10_000, ge=1, description="frames queued per client before the feed waits")
    fast: bool = Field(
        False,
        description="replay a pre-generated cycle of Binance trade/aggTrade/bookTicker frames with fresh "
        "times and ids, written straight to the socket (the benchmark's load generator; no per-frame faults)",
    )
    fast_plan_events: int = Field(100_000, ge=100, description="market events pre-generated for fast mode")
    tls_cert_file: str | None = Field(None, description="PEM certificate: serve wss:// instead of ws://")
    tls_key_file: str | None = Field(None, description="PEM private key of tls_cert_file")
    replay_file: str | None = Field(None, description="JSON lines to replay instead of the random market")
    replay_speed: float = Field(1.0, ge=0, description="replay time scale; 0 = as fast as possible")
    log: LogSettings = Field(default_factory=LogSettings)

    @field_validator("symbols", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(s.strip() for s in value.split(",") if s.strip())
        return value

    @field_validator("symbols")
    @classmethod
    def _canonical(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for symbol in value:
            base, sep, quote = symbol.partition("-")
            if not (sep and base.isalnum() and quote.isalnum() and symbol.upper() == symbol):
                raise ValueError(f"symbol {symbol!r} is not canonical 'BASE-QUOTE'")
        return value
