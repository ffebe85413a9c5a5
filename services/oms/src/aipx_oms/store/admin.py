"""Operator/admin writes outside the order flow: accounts, API keys, instruments, limits, demo seed data."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import asyncpg

from aipx_oms.domain.model import AccountState, Instrument
from aipx_oms.store.postgres import hash_api_key

# The local stack's demo account and its API key (documented in services/oms/README.md). Never use in AWS.
DEMO_ACCOUNT = "demo"
DEMO_API_KEY = "aipx-demo-key"

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


async def upsert_account(
    conn: asyncpg.Connection, account_id: str, name: str = "", state: AccountState = AccountState.ACTIVE
) -> None:
    await conn.execute(
        "INSERT INTO accounts (account_id, name, state) VALUES ($1, $2, $3) ON CONFLICT (account_id)"
        " DO UPDATE SET name = EXCLUDED.name, state = EXCLUDED.state, updated_at = now()",
        account_id,
        name or account_id,
        state.value,
    )


async def set_account_state(conn: asyncpg.Connection, account_id: str, state: AccountState) -> bool:
    """The kill switch: HALTED stops new orders (cancels still work), REDUCING allows only reductions."""
    result = await conn.execute(
        "UPDATE accounts SET state = $2, updated_at = now() WHERE account_id = $1", account_id, state.value
    )
    return result.endswith(" 1")


async def add_api_key(
    conn: asyncpg.Connection, account_id: str, key: str | None = None, label: str = ""
) -> str:
    """Store (the hash of) an API key for the account; returns the key (a new random one if none given)."""
    key = key or f"aipx-{secrets.token_urlsafe(24)}"
    await conn.execute(
        "INSERT INTO api_keys (key_hash, account_id, label) VALUES ($1, $2, $3)"
        " ON CONFLICT (key_hash) DO UPDATE SET account_id = EXCLUDED.account_id, revoked_at = NULL",
        hash_api_key(key),
        account_id,
        label,
    )
    return key


async def upsert_instrument(conn: asyncpg.Connection, instrument: Instrument) -> None:
    await conn.execute(
        "INSERT INTO instruments (symbol, base_asset, quote_asset, tick_size, lot_size, min_quantity,"
        " min_notional, trading) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (symbol) DO UPDATE SET"
        " base_asset = EXCLUDED.base_asset, quote_asset = EXCLUDED.quote_asset,"
        " tick_size = EXCLUDED.tick_size,"
        " lot_size = EXCLUDED.lot_size, min_quantity = EXCLUDED.min_quantity,"
        " min_notional = EXCLUDED.min_notional, trading = EXCLUDED.trading",
        instrument.symbol,
        instrument.base_asset,
        instrument.quote_asset,
        instrument.tick_size,
        instrument.lot_size,
        instrument.min_quantity,
        instrument.min_notional,
        instrument.trading,
    )


RISK_COLUMNS = (
    "max_order_notional",
    "max_position_notional",
    "max_open_orders",
    "rate_per_s",
    "rate_burst",
    "price_band_bps",
)


async def set_risk_limits(conn: asyncpg.Connection, account_id: str, **limits: Any) -> None:
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


async def set_position_limit(
    conn: asyncpg.Connection, account_id: str, symbol: str, max_quantity: Decimal
) -> None:
    await conn.execute(
        "INSERT INTO position_limits (account_id, symbol, max_quantity) VALUES ($1, $2, $3)"
        " ON CONFLICT (account_id, symbol) DO UPDATE SET max_quantity = EXCLUDED.max_quantity",
        account_id,
        symbol,
        max_quantity,
    )


async def seed_demo(conn: asyncpg.Connection) -> None:
    """The local stack's demo data: instruments, the demo account and its API key (idempotent)."""
    async with conn.transaction():
        for instrument in DEMO_INSTRUMENTS:
            await upsert_instrument(conn, instrument)
        await upsert_account(conn, DEMO_ACCOUNT, "Demo account")
        await add_api_key(conn, DEMO_ACCOUNT, DEMO_API_KEY, "demo")
