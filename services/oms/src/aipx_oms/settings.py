"""OmsSettings: the OMS's configuration, read from AIPX_OMS_* (plus the shared AIPX_<SECTION>_* sections)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal, Self

from aipx.settings import ComponentSettings
from aipx.topics import ADMIN_EVENTS, MARKET_DATA_RAW, ORDER_EVENTS
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

# services/oms/src/aipx_oms/settings.py -> services/oms/migrations
DEFAULT_MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


class OmsSettings(ComponentSettings):
    """Every OMS knob. Secrets (API keys, venue credentials) come only from the environment."""

    model_config = SettingsConfigDict(env_prefix="AIPX_OMS_", extra="forbid", frozen=True)

    # gRPC endpoint
    grpc_host: str = "0.0.0.0"
    grpc_port: int = Field(50051, ge=0, le=65535)
    tls_cert_file: Path | None = Field(None, description="PEM server certificate; TLS is on when set")
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = Field(None, description="PEM CA bundle; requires client certificates")
    # Requests above max_request_bytes are refused with INVALID_ARGUMENT naming their largest field (a valid
    # order is under 10 KiB: 32 tags of 256 characters). Above max_message_bytes gRPC itself refuses them
    # (RESOURCE_EXHAUSTED) before reading them whole: that bounds the memory one request can take.
    max_request_bytes: int = Field(64 * 1024, ge=1024)
    max_message_bytes: int = Field(1024 * 1024, ge=4096)
    # SIGTERM: in-flight requests get this long to finish; then the outbox relay gets up to shutdown_flush_s
    # to publish what was committed, and the writer lock is released (a standby takes over at its next poll).
    shutdown_grace_s: float = Field(5.0, ge=0)
    shutdown_flush_s: float = Field(5.0, ge=0)

    # Hot standby (store/leadership.py): one OMS process per database leads, the others poll for the writer
    # lock every leader_poll_s. leader_session_timeout_s bounds how long a dead or hung leader's session (and
    # so its lock) survives in PostgreSQL (idle_session_timeout, idle_in_transaction_session_timeout,
    # tcp_user_timeout, TCP keepalives); the leader pings its session every leader_heartbeat_s while idle.
    leader_poll_s: float = Field(0.5, gt=0, le=10)
    leader_session_timeout_s: float = Field(5.0, ge=1, le=300)
    leader_heartbeat_s: float = Field(1.0, gt=0)

    # Authentication: API key -> account. "postgres" reads the hashed keys of the api_keys table;
    # "env" reads AIPX_OMS_API_KEYS, a JSON object {"<api key>": "<account id>"} (for single-tenant setups).
    api_key_source: Literal["postgres", "env"] = "postgres"
    api_keys: SecretStr | None = None
    api_key_cache_ttl_s: float = Field(30.0, ge=0)
    # Failed authentications allowed per source (peer address) and minute, then refused without a lookup;
    # database lookups of uncached credentials per second (process-wide).
    auth_failures_per_minute: float = Field(30.0, gt=0)
    auth_lookups_per_s: float = Field(500.0, gt=0)

    # Admin service (aipx.v1.AdminService, same port): operator tokens come from the operator_tokens table
    # and from AIPX_OMS_ADMIN_TOKENS, a JSON object {"<operator name>": "<hex SHA-256 of the token>"}
    # (`aipx-admin hash-token` prints one). Admin actions are published to admin_events_topic.
    admin_enabled: bool = True
    admin_tokens: SecretStr | None = None
    admin_events_topic: str = ADMIN_EVENTS
    # The asset GetAccount expresses equity in (balances are valued at <asset>-<valuation_asset> marks).
    valuation_asset: str = "USDT"

    # Pre-trade risk defaults, used where an account has no risk_limits row (or a NULL column).
    risk_max_order_notional: Decimal = Decimal("1000000")
    risk_max_position_notional: Decimal = Decimal("5000000")
    risk_max_open_orders: int = Field(1000, ge=0)
    risk_rate_per_s: Decimal = Decimal("200")
    risk_rate_burst: int = Field(400, ge=1)
    risk_price_band_bps: Decimal = Decimal("1000")

    # Venues: which are enabled (names of venues.registry.VENUES), which one an order without `venue` goes to.
    # A venue's own settings are named AIPX_OMS_<VENUE>_* and checked by its plug-in.
    venues: tuple[str, ...] = ("paper",)
    default_venue: str = "paper"
    market_data_topic: str = MARKET_DATA_RAW
    # Only follow this venue's market data in the paper venue (None: any venue, latest wins).
    paper_market_data_venue: str | None = None
    market_data_offset_reset: Literal["latest", "earliest"] = "latest"
    # The paper venue's fee rate (maker and taker) where neither the instrument nor the account sets rates.
    paper_fee_rate: Decimal = Decimal("0")
    # Paper taker fills (orders that take on arrival, market-priced orders) move this many basis points
    # against the order from the touch (buys up, sells down), exact, not rounded to a tick (aipx.matching).
    paper_slippage_bps: Decimal = Field(Decimal("0"), ge=0, le=1000)
    binance_base_url: str = "https://api.binance.com"
    binance_ws_url: str = "wss://stream.binance.com:9443"
    binance_api_key: SecretStr | None = None
    binance_api_secret: SecretStr | None = None
    # Every signed request carries recvWindow: Binance refuses one that reaches it later than timestamp +
    # recvWindow. An order the venue does not know is taken as never received only once that deadline plus
    # binance_clock_skew_margin_ms (Binance's clock may be behind ours) has passed; until then it is asked
    # again.
    binance_recv_window_ms: int = Field(5000, ge=1, le=60000)
    binance_clock_skew_margin_ms: int = Field(1000, ge=0, le=60000)
    # The OMS account whose ledger mirrors the Binance account's balances (None: balances not reconciled);
    # the account endpoint is read every binance_balance_reconcile_s (and the user stream's updates followed).
    binance_account_id: str | None = None
    binance_balance_reconcile_s: float = Field(60.0, gt=0)

    # Order events
    order_events_topic: str = ORDER_EVENTS
    relay_enabled: bool = True
    relay_batch_size: int = Field(500, ge=1)
    relay_poll_interval_s: float = Field(0.05, gt=0)
    # After a partial batch the relay waits until this long after its previous fetch, so that under load it
    # publishes tens of events per fetch, produce request and mark instead of one or two (less PostgreSQL and
    # broker work per event); events are at most this much later. 0 = publish as soon as committed.
    relay_batch_interval_s: float = Field(0.05, ge=0, le=1)
    # Published outbox rows are deleted this long after publication (the events stay in order_events).
    relay_prune_after_s: float = Field(3600.0, ge=0)
    relay_prune_every_s: float = Field(60.0, gt=0)
    relay_retry_backoff_s: float = Field(1.0, gt=0)

    # Group commit: a batch takes whatever queued while the previous commit ran, up to this many
    # operations; while writes are concurrent (the last batch had several) it lingers this long for more.
    batch_max_ops: int = Field(512, ge=1)
    batch_linger_ms: float = Field(1.0, ge=0)

    # Storage
    migrate_on_start: bool = True
    migrations_dir: Path = DEFAULT_MIGRATIONS_DIR
    redis_key_prefix: str = "aipx:oms"
    # Rate-limit tokens taken from Redis ahead of need: this many seconds at the rate (0: Redis per order).
    rate_limit_lease_s: float = Field(0.05, ge=0, le=1)
    # A cancel waits this long for the venue's confirmation before answering with PENDING_CANCEL.
    cancel_wait_s: float = Field(1.0, ge=0)
    # How often account states/limits and instruments are re-read (operators change them in the database).
    account_refresh_s: float = Field(2.0, gt=0)

    # The order path under failure (see services/oms/README.md, "Failures").
    # A venue call whose outcome is unknown (timeout, connection error, 5xx) is resolved by asking the venue,
    # first after venue_query_delay_s, then with exponential backoff (jittered) up to venue_retry_max_s.
    venue_query_delay_s: float = Field(0.5, ge=0)
    venue_retry_max_s: float = Field(10.0, gt=0)
    binance_request_timeout_s: float = Field(10.0, gt=0)
    # The durable send path: every send_sweep_interval_s the events committed since the last sweep are
    # checked; an order accepted (or a cancel requested) more than send_sweep_grace_s ago that this process
    # has not handed to its venue (its commit's outcome was unknown to us) is sent now.
    send_sweep_interval_s: float = Field(1.0, gt=0)
    send_sweep_grace_s: float = Field(2.0, ge=0)
    # Reconciliation of open orders and fills with each venue while running (0 = only at startup).
    reconcile_interval_s: float = Field(15.0, ge=0)
    # Execution reports are retried until stored (backoff up to report_retry_max_s); at most
    # report_queue_max wait at once, beyond that venues stop reading their streams (backpressure).
    report_retry_max_s: float = Field(2.0, gt=0)
    report_queue_max: int = Field(10_000, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both AIPX_OMS_TLS_CERT_FILE and AIPX_OMS_TLS_KEY_FILE, or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("AIPX_OMS_TLS_CLIENT_CA_FILE needs AIPX_OMS_TLS_CERT_FILE/KEY_FILE")
        if self.leader_heartbeat_s * 2 > self.leader_session_timeout_s:
            raise ValueError(
                "AIPX_OMS_LEADER_HEARTBEAT_S must be at most half of AIPX_OMS_LEADER_SESSION_TIMEOUT_S"
            )
        if self.max_request_bytes > self.max_message_bytes:
            raise ValueError("AIPX_OMS_MAX_REQUEST_BYTES must not exceed AIPX_OMS_MAX_MESSAGE_BYTES")
        if self.default_venue not in self.venues:
            raise ValueError(f"default venue {self.default_venue!r} is not enabled ({self.venues})")
        if self.api_key_source == "env" and self.api_keys is None:
            raise ValueError("AIPX_OMS_API_KEY_SOURCE=env needs AIPX_OMS_API_KEYS")
        from aipx_oms.venues.registry import check_venues

        problems = check_venues(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self
