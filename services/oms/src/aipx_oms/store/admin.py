"""Operator/admin writes outside the order flow: accounts, API keys, operator tokens, instruments, limits, the
platform halt, the audit log (+ its outbox), demo seed data.

Every function takes a connection, so a use case runs several of them (and the audit record) in one
transaction. Changes other OMS processes must see at once are announced with `pg_notify` on ADMIN_CHANNEL,
delivered when the transaction commits.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from aipx.ids import now_ns

from aipx_oms.domain.ledger import Entry, EntryType
from aipx_oms.domain.model import AccountState, Instrument
from aipx_oms.store.ledger import Conn, post_entry
from aipx_oms.store.postgres import hash_api_key

# The local stack's demo account, its API key and the demo operator token (documented in
# services/oms/README.md). `seed` installs them only into the local stack's database.
DEMO_ACCOUNT = "demo"
DEMO_API_KEY = "aipx-demo-key"
DEMO_OPERATOR = "demo-operator"
DEMO_OPERATOR_TOKEN = "aipx-demo-admin"
# Quote cash for buys and some of each demo base asset, so that the demo strategies' sells are covered too.
DEMO_FUNDING = (
    ("USDT", Decimal("1000000")),
    ("BTC", Decimal("10")),
    ("ETH", Decimal("100")),
    ("SOL", Decimal("1000")),
    ("BNB", Decimal("1000")),
    ("XRP", Decimal("100000")),
)

DEMO_INSTRUMENTS = (
    Instrument(
        "BTC-USDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), Decimal("5")
    ),
    Instrument(
        "ETH-USDT", "ETH", "USDT", Decimal("0.01"), Decimal("0.0001"), Decimal("0.0001"), Decimal("5")
    ),
    Instrument("SOL-USDT", "SOL", "USDT", Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal("5")),
    Instrument("BNB-USDT", "BNB", "USDT", Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal("5")),
    Instrument("XRP-USDT", "XRP", "USDT", Decimal("0.0001"), Decimal("0.1"), Decimal("0.1"), Decimal("5")),
)

# LISTEN/NOTIFY channel of admin changes; payload "<kind>:<value>" (see aipx_oms.admin.notify).
ADMIN_CHANNEL = "aipx_admin"
NOTIFY_KEY = "key"  # value: hex SHA-256 of the API key (revoked or issued)
NOTIFY_ACCOUNT = "account"  # value: account id (state, limits)
NOTIFY_PLATFORM = "platform"  # value: "" (halt flag)
NOTIFY_OPERATOR = "operator"  # value: hex SHA-256 of an operator token
NOTIFY_LEDGER = "ledger"  # value: account id (a ledger entry was posted)


class ApiKeyConflictError(Exception):
    """A key that is already registered to another account, or revoked: never moved, never un-revoked."""


class AdminNotFoundError(Exception):
    """The account, key or instrument an admin action names does not exist."""


class AdminConflictError(Exception):
    """The action conflicts with what exists (e.g. creating an account that exists)."""


def key_id_for(key_hash: bytes) -> str:
    """The public id of an API key: derived from its hash (the same rule migration 004 used for old keys)."""
    return "k-" + key_hash.hex()[:20]


async def notify(conn: Conn, kind: str, value: str = "") -> None:
    """Tell every OMS process (at commit) that something of `kind` changed."""
    await conn.execute("SELECT pg_notify($1, $2)", ADMIN_CHANNEL, f"{kind}:{value}")


# --- accounts ------------------------------------------------------------------------------------------

RISK_COLUMNS = (
    "max_order_notional",
    "max_position_notional",
    "max_open_orders",
    "rate_per_s",
    "rate_burst",
    "price_band_bps",
)


@dataclass(frozen=True, slots=True)
class AccountRecord:
    account_id: str
    name: str
    state: AccountState
    state_reason: str
    allow_negative_balances: bool
    limits: dict[str, Any]
    created_time_ns: int
    maker_fee_rate: Decimal | None = None
    taker_fee_rate: Decimal | None = None
    # HALTED with its working orders cancelled: orders that become live later are cancelled too.
    cancel_working_orders: bool = False

    def as_json(self) -> dict[str, Any]:
        """For the audit log (decimals as strings)."""
        return {
            "account_id": self.account_id,
            "name": self.name,
            "state": self.state.value,
            "state_reason": self.state_reason,
            "allow_negative_balances": self.allow_negative_balances,
            "risk_limits": {k: str(v) for k, v in self.limits.items()},
            "fee_rates": {
                "maker": None if self.maker_fee_rate is None else str(self.maker_fee_rate),
                "taker": None if self.taker_fee_rate is None else str(self.taker_fee_rate),
            },
            "cancel_working_orders": self.cancel_working_orders,
        }


_ACCOUNT_SELECT = (
    "SELECT a.account_id, a.name, a.state, a.state_reason, a.allow_negative_balances,"
    " a.maker_fee_rate, a.taker_fee_rate, a.cancel_working_orders,"
    " (extract(epoch FROM a.created_at) * 1e9)::bigint AS created_ns, "
    + ", ".join(f"r.{c}" for c in RISK_COLUMNS)
    + " FROM accounts a LEFT JOIN risk_limits r USING (account_id)"
)


def _account(row: asyncpg.Record) -> AccountRecord:
    return AccountRecord(
        account_id=row["account_id"],
        name=row["name"],
        state=AccountState(row["state"]),
        state_reason=row["state_reason"],
        allow_negative_balances=row["allow_negative_balances"],
        limits={c: row[c] for c in RISK_COLUMNS if row[c] is not None},
        created_time_ns=int(row["created_ns"]),
        maker_fee_rate=row["maker_fee_rate"],
        taker_fee_rate=row["taker_fee_rate"],
        cancel_working_orders=row["cancel_working_orders"],
    )


async def account_record(conn: Conn, account_id: str, *, lock: bool = False) -> AccountRecord:
    """The account (AdminNotFoundError if there is none); `lock` holds its row until the transaction ends."""
    if lock:
        await conn.execute("SELECT 1 FROM accounts WHERE account_id = $1 FOR UPDATE", account_id)
    row = await conn.fetchrow(_ACCOUNT_SELECT + " WHERE a.account_id = $1", account_id)
    if row is None:
        raise AdminNotFoundError(f"no account {account_id!r}")
    return _account(row)


async def list_accounts(conn: Conn) -> list[AccountRecord]:
    return [_account(r) for r in await conn.fetch(_ACCOUNT_SELECT + " ORDER BY a.account_id")]


async def create_account(
    conn: Conn, account_id: str, name: str = "", *, allow_negative_balances: bool = False
) -> AccountRecord:
    """A new ACTIVE account; AdminConflictError when the id is taken."""
    created = await conn.fetchval(
        "INSERT INTO accounts (account_id, name, allow_negative_balances) VALUES ($1, $2, $3)"
        " ON CONFLICT (account_id) DO NOTHING RETURNING true",
        account_id,
        name or account_id,
        allow_negative_balances,
    )
    if not created:
        raise AdminConflictError(f"account {account_id!r} already exists")
    return await account_record(conn, account_id)


async def upsert_account(
    conn: Conn, account_id: str, name: str = "", state: AccountState = AccountState.ACTIVE
) -> None:
    await conn.execute(
        "INSERT INTO accounts (account_id, name, state) VALUES ($1, $2, $3) ON CONFLICT (account_id)"
        " DO UPDATE SET name = EXCLUDED.name, state = EXCLUDED.state, updated_at = now()",
        account_id,
        name or account_id,
        state.value,
    )


async def set_account_state(
    conn: Conn, account_id: str, state: AccountState, reason: str = "", *, cancel_working: bool = False
) -> bool:
    """The kill switch: HALTED stops new orders (cancels still work), REDUCING allows only reductions.
    `cancel_working` (HALTED only): every order of the account that becomes live from now on is cancelled."""
    result = await conn.execute(
        "UPDATE accounts SET state = $2, state_reason = $3, cancel_working_orders = $4, updated_at = now()"
        " WHERE account_id = $1",
        account_id,
        state.value,
        reason,
        cancel_working and state is AccountState.HALTED,
    )
    await notify(conn, NOTIFY_ACCOUNT, account_id)
    return bool(result.endswith(" 1"))


async def set_risk_limits(conn: Conn, account_id: str, **limits: Any) -> None:
    """Set some of an account's limits (unknown names are refused; None = back to the OMS default)."""
    unknown = set(limits) - set(RISK_COLUMNS)
    if unknown:
        raise ValueError(f"unknown risk limits {sorted(unknown)}; known: {RISK_COLUMNS}")
    values = [limits.get(c) for c in RISK_COLUMNS]
    await conn.execute(
        f"INSERT INTO risk_limits (account_id, {', '.join(RISK_COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (account_id) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" if c in limits else f"{c} = coalesce(EXCLUDED.{c}, risk_limits.{c})"
                    for c in RISK_COLUMNS),
        account_id,
        *values,
    )  # fmt: skip


async def set_account_fees(
    conn: Conn, account_id: str, maker_fee_rate: Decimal | None, taker_fee_rate: Decimal | None
) -> None:
    """An account's fee rate overrides (None = its instruments' rates)."""
    await conn.execute(
        "UPDATE accounts SET maker_fee_rate = $2, taker_fee_rate = $3 WHERE account_id = $1",
        account_id,
        maker_fee_rate,
        taker_fee_rate,
    )


async def set_position_limit(conn: Conn, account_id: str, symbol: str, max_quantity: Decimal) -> None:
    await conn.execute(
        "INSERT INTO position_limits (account_id, symbol, max_quantity) VALUES ($1, $2, $3)"
        " ON CONFLICT (account_id, symbol) DO UPDATE SET max_quantity = EXCLUDED.max_quantity",
        account_id,
        symbol,
        max_quantity,
    )


# --- API keys ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    account_id: str
    label: str
    created_time_ns: int
    revoked_time_ns: int
    revoke_reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "account_id": self.account_id,
            "label": self.label,
            "revoked": self.revoked_time_ns != 0,
            "revoke_reason": self.revoke_reason,
        }


_KEY_SELECT = (
    "SELECT key_id, account_id, label, revoke_reason,"
    " (extract(epoch FROM created_at) * 1e9)::bigint AS created_ns,"
    " coalesce((extract(epoch FROM revoked_at) * 1e9)::bigint, 0) AS revoked_ns FROM api_keys"
)


def _key(row: asyncpg.Record) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row["key_id"],
        account_id=row["account_id"],
        label=row["label"],
        created_time_ns=int(row["created_ns"]),
        revoked_time_ns=int(row["revoked_ns"]),
        revoke_reason=row["revoke_reason"],
    )


def new_api_key() -> str:
    """A fresh random API key (192 bits)."""
    return f"aipx-{secrets.token_urlsafe(24)}"


async def insert_api_key(conn: Conn, account_id: str, key: str, label: str = "") -> tuple[ApiKeyRecord, bool]:
    """Register (the hash of) `key` for the account; (record, created). Registering it again for the same
    account is a no-op; for another account, or once revoked, it is refused (ApiKeyConflictError): a key is
    never moved silently to another account nor brought back from revocation."""
    key_hash = hash_api_key(key)
    created = await conn.fetchval(
        "INSERT INTO api_keys (key_hash, key_id, account_id, label) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (key_hash) DO NOTHING RETURNING true",
        key_hash,
        key_id_for(key_hash),
        account_id,
        label,
    )
    row = await conn.fetchrow(_KEY_SELECT + " WHERE key_hash = $1", key_hash)
    assert row is not None
    record = _key(row)
    if not created:
        if record.account_id != account_id:
            raise ApiKeyConflictError(f"this key is registered to another account ({record.key_id})")
        if record.revoked_time_ns:
            raise ApiKeyConflictError(f"this key was revoked ({record.key_id}); issue a new one")
    else:
        await notify(conn, NOTIFY_KEY, key_hash.hex())
    return record, bool(created)


async def add_api_key(conn: Conn, account_id: str, key: str | None = None, label: str = "") -> str:
    """Store (the hash of) an API key for the account; returns the key (a new random one if none given).
    See insert_api_key for re-registration."""
    key = key or new_api_key()
    await insert_api_key(conn, account_id, key, label)
    return key


async def api_key(conn: Conn, key_id: str, *, lock: bool = False) -> ApiKeyRecord:
    row = await conn.fetchrow(_KEY_SELECT + " WHERE key_id = $1" + (" FOR UPDATE" if lock else ""), key_id)
    if row is None:
        raise AdminNotFoundError(f"no API key {key_id!r}")
    return _key(row)


async def revoke_api_key(conn: Conn, key_id: str, reason: str = "") -> ApiKeyRecord:
    """Revoke a key (idempotent: a revoked key keeps its first revocation); every OMS process is told."""
    key_hash = await conn.fetchval(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()),"
        " revoke_reason = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoke_reason END"
        " WHERE key_id = $1 RETURNING key_hash",
        key_id,
        reason,
    )
    if key_hash is None:
        raise AdminNotFoundError(f"no API key {key_id!r}")
    await notify(conn, NOTIFY_KEY, bytes(key_hash).hex())
    return await api_key(conn, key_id)


async def list_api_keys(conn: Conn, account_id: str = "") -> list[ApiKeyRecord]:
    if account_id:
        rows = await conn.fetch(_KEY_SELECT + " WHERE account_id = $1 ORDER BY created_at", account_id)
    else:
        rows = await conn.fetch(_KEY_SELECT + " ORDER BY account_id, created_at")
    return [_key(r) for r in rows]


# --- operator tokens -----------------------------------------------------------------------------------


async def add_operator_token(conn: Conn, operator: str, token: str) -> None:
    """Register an operator token (stored hashed); re-registering it for the same operator is a no-op."""
    token_hash = hash_api_key(token)  # operator tokens are stored like API keys
    existing = await conn.fetchrow(
        "INSERT INTO operator_tokens (token_hash, operator) VALUES ($1, $2)"
        " ON CONFLICT (token_hash) DO UPDATE SET token_hash = EXCLUDED.token_hash"
        " RETURNING operator, revoked_at",
        token_hash,
        operator,
    )
    assert existing is not None
    if existing["operator"] != operator or existing["revoked_at"] is not None:
        raise ApiKeyConflictError("this operator token belongs to another operator or was revoked")


async def operator_for_token(conn: Conn, token_hash: bytes) -> str | None:
    value = await conn.fetchval(
        "SELECT operator FROM operator_tokens WHERE token_hash = $1 AND revoked_at IS NULL", token_hash
    )
    return None if value is None else str(value)


# --- instruments and the platform halt ----------------------------------------------------------------


def instrument_json(instrument: Instrument) -> dict[str, Any]:
    return {
        "symbol": instrument.symbol,
        "base_asset": instrument.base_asset,
        "quote_asset": instrument.quote_asset,
        "tick_size": str(instrument.tick_size),
        "lot_size": str(instrument.lot_size),
        "min_quantity": str(instrument.min_quantity),
        "min_notional": str(instrument.min_notional),
        "trading": instrument.trading,
        "maker_fee_rate": str(instrument.maker_fee_rate),
        "taker_fee_rate": str(instrument.taker_fee_rate),
    }


async def instrument(conn: Conn, symbol: str) -> Instrument | None:
    row = await conn.fetchrow("SELECT * FROM instruments WHERE symbol = $1", symbol)
    if row is None:
        return None
    return Instrument(
        row["symbol"],
        row["base_asset"],
        row["quote_asset"],
        row["tick_size"],
        row["lot_size"],
        row["min_quantity"],
        row["min_notional"],
        row["trading"],
    )


async def upsert_instrument(conn: Conn, instrument: Instrument) -> None:
    await conn.execute(
        "INSERT INTO instruments (symbol, base_asset, quote_asset, tick_size, lot_size, min_quantity,"
        " min_notional, trading, maker_fee_rate, taker_fee_rate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
        " $10) ON CONFLICT (symbol) DO UPDATE SET"
        " base_asset = EXCLUDED.base_asset, quote_asset = EXCLUDED.quote_asset,"
        " tick_size = EXCLUDED.tick_size,"
        " lot_size = EXCLUDED.lot_size, min_quantity = EXCLUDED.min_quantity,"
        " min_notional = EXCLUDED.min_notional, trading = EXCLUDED.trading,"
        " maker_fee_rate = EXCLUDED.maker_fee_rate, taker_fee_rate = EXCLUDED.taker_fee_rate",
        instrument.symbol,
        instrument.base_asset,
        instrument.quote_asset,
        instrument.tick_size,
        instrument.lot_size,
        instrument.min_quantity,
        instrument.min_notional,
        instrument.trading,
        instrument.maker_fee_rate,
        instrument.taker_fee_rate,
    )


async def platform_halt(conn: Conn, *, lock: bool = False) -> tuple[bool, str]:
    """(halted, reason) of the platform-wide halt."""
    row = await conn.fetchrow("SELECT halted, reason FROM platform_state" + (" FOR UPDATE" if lock else ""))
    return (False, "") if row is None else (bool(row["halted"]), str(row["reason"]))


async def set_platform_halt(conn: Conn, halted: bool, reason: str) -> None:
    await conn.execute(
        "INSERT INTO platform_state (singleton, halted, reason) VALUES (true, $1, $2) ON CONFLICT (singleton)"
        " DO UPDATE SET halted = EXCLUDED.halted, reason = EXCLUDED.reason, updated_at = now()",
        halted,
        reason,
    )
    await notify(conn, NOTIFY_PLATFORM)


# --- the audit log -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditRow:
    audit_id: int
    event_id: str
    time_ns: int
    actor: str
    action: str
    account_id: str
    before_json: str
    after_json: str
    reason: str


def _audit(row: asyncpg.Record) -> AuditRow:
    return AuditRow(
        audit_id=row["audit_id"],
        event_id=str(row["event_id"]),
        time_ns=row["time_ns"],
        actor=row["actor"],
        action=row["action"],
        account_id=row["account_id"],
        before_json=row["before_json"] or "",
        after_json=row["after_json"] or "",
        reason=row["reason"],
    )


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


async def append_audit(
    conn: Conn,
    *,
    actor: str,
    action: str,
    account_id: str = "",
    before: Any = None,
    after: Any = None,
    reason: str = "",
) -> AuditRow:
    """Write the audit record of an action (in the action's transaction) and queue it for `admin-events`."""
    row = await conn.fetchrow(
        "INSERT INTO admin_audit (event_id, time_ns, actor, action, account_id, before_json, after_json,"
        " reason) VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8)"
        " RETURNING audit_id, event_id, time_ns, actor, action, account_id,"
        " before_json::text, after_json::text, reason",
        uuid.uuid4(),
        now_ns(),
        actor,
        action,
        account_id,
        _json(before),
        _json(after),
        reason,
    )
    assert row is not None
    await conn.execute("INSERT INTO admin_outbox (audit_id) VALUES ($1)", row["audit_id"])
    return _audit(row)


_AUDIT_SELECT = (
    "SELECT audit_id, event_id, time_ns, actor, action, account_id, before_json::text,"
    " after_json::text, reason FROM admin_audit"
)


async def list_audit(
    conn: Conn, account_id: str = "", limit: int = 100, before_audit_id: int = 0
) -> list[AuditRow]:
    """Newest first; only `account_id`'s records when given; below `before_audit_id` when non-zero."""
    rows = await conn.fetch(
        _AUDIT_SELECT + " WHERE ($1 = '' OR account_id = $1) AND ($2 = 0 OR audit_id < $2)"
        " ORDER BY audit_id DESC LIMIT $3",
        account_id,
        before_audit_id,
        limit,
    )
    return [_audit(r) for r in rows]


async def claim_unpublished_audit(conn: Conn, limit: int) -> list[AuditRow]:
    """Unpublished audit records in order, locked for this transaction (other publishers skip them)."""
    ids = [
        r["audit_id"]
        for r in await conn.fetch(
            "SELECT audit_id FROM admin_outbox WHERE published_at IS NULL ORDER BY audit_id"
            " LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
    ]
    if not ids:
        return []
    rows = await conn.fetch(_AUDIT_SELECT + " WHERE audit_id = ANY($1) ORDER BY audit_id", ids)
    return [_audit(r) for r in rows]


async def mark_audit_published(conn: Conn, audit_ids: Sequence[int]) -> None:
    await conn.execute(
        "UPDATE admin_outbox SET published_at = now() WHERE audit_id = ANY($1)", list(audit_ids)
    )


# --- the demo seed -------------------------------------------------------------------------------------

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
STACK_POSTGRES_PORT_ENV = "AIPX_STACK_POSTGRES_PORT"
STACK_POSTGRES_DEFAULT_PORT = 15432  # aipx_stack's default (stack/src/aipx_stack/config.py)


def not_local_stack(dsn: str, environ: Mapping[str, str]) -> str | None:
    """Why `dsn` is not the local stack's PostgreSQL (None when it is): the local stack listens on a loopback
    address at AIPX_STACK_POSTGRES_PORT (default 15432), natively or as a container's published port."""
    parsed = urlsplit(dsn)
    host = parsed.hostname or ""
    try:
        port = parsed.port or 5432
    except ValueError:
        return f"the DSN's port is not a number ({dsn.rsplit('@', 1)[-1]})"
    raw = environ.get(STACK_POSTGRES_PORT_ENV) or str(STACK_POSTGRES_DEFAULT_PORT)
    expected = int(raw) if raw.isdigit() else STACK_POSTGRES_DEFAULT_PORT
    if host not in LOCAL_HOSTS:
        return f"host {host or '(none)'!r} is not a loopback address"
    if port != expected:
        return f"port {port} is not the local stack's ({STACK_POSTGRES_PORT_ENV}={expected})"
    return None


async def seed_demo(conn: Conn) -> None:
    """The local stack's demo data: instruments, the demo account funded with DEMO_FUNDING, its API key and
    the demo operator token (idempotent)."""
    async with conn.transaction():
        for item in DEMO_INSTRUMENTS:
            await upsert_instrument(conn, item)
        await upsert_account(conn, DEMO_ACCOUNT, "Demo account")
        await add_api_key(conn, DEMO_ACCOUNT, DEMO_API_KEY, "demo")
        await add_operator_token(conn, DEMO_OPERATOR, DEMO_OPERATOR_TOKEN)
        for asset, amount in DEMO_FUNDING:
            entry = Entry(
                entry_id=f"seed:{DEMO_ACCOUNT}:{asset}",
                account_id=DEMO_ACCOUNT,
                asset=asset,
                type=EntryType.DEPOSIT,
                amount=amount,
                reason="demo funding",
                actor="seed",
                idempotency_key=f"seed-funding-{asset}",
                time_ns=now_ns(),
            )
            await post_entry(conn, entry)
