-- AIPX OMS schema, version 1: accounts, API keys, instruments, risk limits, orders, fills, positions,
-- the append-only order event log and the transactional outbox.

CREATE TABLE accounts (
    account_id  text PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    state       text NOT NULL DEFAULT 'ACTIVE' CHECK (state IN ('ACTIVE', 'REDUCING', 'HALTED')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 digests only; the key itself is shown once, when it is created.
CREATE TABLE api_keys (
    key_hash    bytea PRIMARY KEY CHECK (length(key_hash) = 32),
    account_id  text NOT NULL REFERENCES accounts (account_id),
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE instruments (
    symbol        text PRIMARY KEY,
    base_asset    text NOT NULL,
    quote_asset   text NOT NULL,
    tick_size     numeric NOT NULL CHECK (tick_size > 0),
    lot_size      numeric NOT NULL CHECK (lot_size > 0),
    min_quantity  numeric NOT NULL DEFAULT 0 CHECK (min_quantity >= 0),
    min_notional  numeric NOT NULL DEFAULT 0 CHECK (min_notional >= 0),
    trading       boolean NOT NULL DEFAULT true
);

-- Per-account limits; a NULL column means "the OMS default" (AIPX_OMS_RISK_*).
CREATE TABLE risk_limits (
    account_id             text PRIMARY KEY REFERENCES accounts (account_id),
    max_order_notional     numeric CHECK (max_order_notional >= 0),
    max_position_notional  numeric CHECK (max_position_notional >= 0),
    max_open_orders        integer CHECK (max_open_orders >= 0),
    rate_per_s             numeric CHECK (rate_per_s > 0),
    rate_burst             integer CHECK (rate_burst > 0),
    price_band_bps         numeric CHECK (price_band_bps >= 0)
);

-- Optional per-symbol position limits in base quantity (override the notional limit for that symbol).
CREATE TABLE position_limits (
    account_id    text NOT NULL REFERENCES accounts (account_id),
    symbol        text NOT NULL REFERENCES instruments (symbol),
    max_quantity  numeric NOT NULL CHECK (max_quantity >= 0),
    PRIMARY KEY (account_id, symbol)
);

CREATE TABLE orders (
    order_id            text PRIMARY KEY,
    account_id          text NOT NULL REFERENCES accounts (account_id),
    client_order_id     text NOT NULL,
    symbol              text NOT NULL,
    side                text NOT NULL CHECK (side IN ('BUY', 'SELL')),
    type                text NOT NULL,
    time_in_force       text NOT NULL,
    quantity            numeric NOT NULL CHECK (quantity > 0),
    price               numeric,
    stop_price          numeric,
    reduce_only         boolean NOT NULL DEFAULT false,
    post_only           boolean NOT NULL DEFAULT false,
    venue               text NOT NULL,
    venue_order_id      text NOT NULL DEFAULT '',
    status              text NOT NULL,
    filled_quantity     numeric NOT NULL DEFAULT 0 CHECK (filled_quantity >= 0 AND filled_quantity <= quantity),
    average_fill_price  numeric,
    reject_reason       text,
    reject_message      text NOT NULL DEFAULT '',
    tags                jsonb NOT NULL DEFAULT '{}',
    sequence            bigint NOT NULL CHECK (sequence >= 1),
    created_time_ns     bigint NOT NULL,
    updated_time_ns     bigint NOT NULL,
    -- The idempotency of SubmitOrder: one order per (account, client order id), whatever the concurrency.
    CONSTRAINT orders_client_order_id_unique UNIQUE (account_id, client_order_id)
);
CREATE INDEX orders_account_created ON orders (account_id, created_time_ns DESC, order_id DESC);
CREATE INDEX orders_open ON orders (account_id)
    WHERE status IN ('PENDING_NEW', 'ACCEPTED', 'PARTIALLY_FILLED', 'PENDING_CANCEL');

-- Idempotency of CancelOrder / ReplaceOrder: one outcome per (account, idempotency key).
CREATE TABLE request_keys (
    account_id       text NOT NULL REFERENCES accounts (account_id),
    idempotency_key  text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('cancel', 'replace')),
    order_id         text NOT NULL REFERENCES orders (order_id),
    outcome          text NOT NULL,
    reason           text,
    message          text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, idempotency_key)
);

CREATE TABLE fills (
    fill_id        text PRIMARY KEY,
    order_id       text NOT NULL REFERENCES orders (order_id),
    account_id     text NOT NULL,
    symbol         text NOT NULL,
    side           text NOT NULL,
    quantity       numeric NOT NULL CHECK (quantity > 0),
    price          numeric NOT NULL CHECK (price > 0),
    fee            numeric NOT NULL DEFAULT 0,
    fee_currency   text NOT NULL DEFAULT '',
    liquidity      text NOT NULL,
    venue          text NOT NULL,
    venue_fill_id  text NOT NULL,
    fill_time_ns   bigint NOT NULL,
    -- A venue execution is applied once, however often the venue reports it.
    CONSTRAINT fills_venue_fill_unique UNIQUE (order_id, venue_fill_id)
);
CREATE INDEX fills_account ON fills (account_id, fill_time_ns);

CREATE TABLE positions (
    account_id       text NOT NULL REFERENCES accounts (account_id),
    symbol           text NOT NULL,
    quantity         numeric NOT NULL DEFAULT 0,
    average_price    numeric NOT NULL DEFAULT 0,
    realized_pnl     numeric NOT NULL DEFAULT 0,
    updated_time_ns  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, symbol)
);

-- The append-only event log. log_sequence is assigned by the OMS's single writer (which holds the writer
-- advisory lock), in commit order: monotonic, possibly with gaps. payload = serialized aipx.v1.OrderEvent.
CREATE TABLE order_events (
    log_sequence   bigint PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    account_id     text NOT NULL,
    order_id       text NOT NULL REFERENCES orders (order_id),
    sequence       bigint NOT NULL,
    type           text NOT NULL,
    symbol         text NOT NULL,
    event_time_ns  bigint NOT NULL,
    payload        bytea NOT NULL,
    CONSTRAINT order_events_order_sequence_unique UNIQUE (order_id, sequence)
);
CREATE INDEX order_events_account ON order_events (account_id, log_sequence);

CREATE FUNCTION order_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order_events is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER order_events_no_update BEFORE UPDATE OR DELETE ON order_events
    FOR EACH ROW EXECUTE FUNCTION order_events_append_only();

-- The transactional outbox: one row per event, written in the event's transaction; the relay publishes
-- unpublished rows to Kafka in log order and then marks them published.
CREATE TABLE outbox (
    log_sequence  bigint PRIMARY KEY REFERENCES order_events (log_sequence),
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (log_sequence) WHERE published_at IS NULL;
