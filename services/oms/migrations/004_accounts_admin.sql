-- AIPX OMS schema, version 4: accounts and money (issue #14) - operator administration (operator tokens,
-- API key ids and revocation reasons, trading-state reasons, the platform halt, the append-only audit log and
-- its outbox to `admin-events`) and the ledger (entries, balances derived from them, reservations).

ALTER TABLE accounts ADD COLUMN state_reason text NOT NULL DEFAULT '';
-- Cash accounts (false) never carry a negative balance; margin accounts (true) may.
ALTER TABLE accounts ADD COLUMN allow_negative_balances boolean NOT NULL DEFAULT false;

-- A public id per API key (the secret is only ever stored hashed). Existing keys get one from their hash.
ALTER TABLE api_keys ADD COLUMN key_id text;
UPDATE api_keys SET key_id = 'k-' || substr(encode(key_hash, 'hex'), 1, 20) WHERE key_id IS NULL;
ALTER TABLE api_keys ALTER COLUMN key_id SET NOT NULL;
CREATE UNIQUE INDEX api_keys_key_id ON api_keys (key_id);
ALTER TABLE api_keys ADD COLUMN revoke_reason text NOT NULL DEFAULT '';

-- Operator tokens of the admin service (SHA-256 digests; AIPX_OMS_ADMIN_TOKENS adds more from the env).
CREATE TABLE operator_tokens (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    operator    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- The platform-wide halt: one row.
CREATE TABLE platform_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    halted      boolean NOT NULL DEFAULT false,
    reason      text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO platform_state DEFAULT VALUES;

-- Every admin action: who, what, when, before/after. Append-only (a trigger refuses UPDATE and DELETE).
CREATE TABLE admin_audit (
    audit_id     bigserial PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    time_ns      bigint NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    account_id   text NOT NULL DEFAULT '',
    before_json  jsonb,
    after_json   jsonb,
    reason       text NOT NULL DEFAULT ''
);
CREATE INDEX admin_audit_account ON admin_audit (account_id, audit_id DESC);

CREATE FUNCTION admin_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER admin_audit_no_update BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION admin_audit_append_only();

-- The audit records still to publish to `admin-events` (written in the action's transaction).
CREATE TABLE admin_outbox (
    audit_id      bigint PRIMARY KEY REFERENCES admin_audit (audit_id),
    published_at  timestamptz
);
CREATE INDEX admin_outbox_unpublished ON admin_outbox (audit_id) WHERE published_at IS NULL;

-- The ledger: every movement of an account's asset. Append-only. A balance is the sum of its entries.
CREATE TABLE ledger_entries (
    entry_id         text PRIMARY KEY,
    account_id       text NOT NULL REFERENCES accounts (account_id),
    asset            text NOT NULL,
    type             text NOT NULL CHECK (type IN ('DEPOSIT', 'WITHDRAWAL', 'ADJUSTMENT', 'TRADE', 'FEE')),
    amount           numeric NOT NULL,
    balance_after    numeric NOT NULL,
    reason           text NOT NULL DEFAULT '',
    actor            text NOT NULL DEFAULT '',
    order_id         text,
    fill_id          text,
    idempotency_key  text,
    time_ns          bigint NOT NULL,
    CONSTRAINT ledger_entries_idempotency UNIQUE (account_id, idempotency_key),
    -- A fill moves each asset once (a trade leg, a fee).
    CONSTRAINT ledger_entries_fill_leg UNIQUE (fill_id, asset, type)
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, asset, time_ns);

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

-- The running balance per account and asset (= the sum of its entries), updated in each entry's
-- transaction under the row lock; the lock also serializes the non-negative check.
CREATE TABLE balances (
    account_id       text NOT NULL REFERENCES accounts (account_id),
    asset            text NOT NULL,
    total            numeric NOT NULL DEFAULT 0,
    updated_time_ns  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, asset)
);

-- Funds held for working orders (the order path fills this in a later round); locked = their sum.
CREATE TABLE balance_reservations (
    order_id    text NOT NULL,
    account_id  text NOT NULL REFERENCES accounts (account_id),
    asset       text NOT NULL,
    amount      numeric NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (order_id, asset)
);
CREATE INDEX balance_reservations_account ON balance_reservations (account_id, asset);
