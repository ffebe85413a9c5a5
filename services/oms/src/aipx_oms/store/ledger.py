"""The ledger in PostgreSQL: append-only entries, the running balance per (account, asset), reservations.

Every function takes a connection and must run inside a transaction (it locks the balance rows it changes):
the admin service calls them for deposits/withdrawals/adjustments, and the order path will call
`post_fill`/`reserve`/`release` inside the group-commit writer's transaction, so that a fill and its ledger
entries commit together. The checks are the domain's (`aipx_oms.domain.ledger`); this module only reads and
writes under the row locks that make them race-free.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

import asyncpg

from aipx_oms.domain.ledger import (
    AccountLedger,
    Balance,
    Divergence,
    Entry,
    EntryType,
    InvalidEntryError,
    Reservation,
    check_debit,
    divergences,
)
from aipx_oms.domain.model import ZERO

# A connection or a pool's connection proxy (the functions run in the caller's transaction).
Conn: TypeAlias = "asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]"


@dataclass(frozen=True, slots=True)
class PostedEntry:
    entry: Entry
    balance_after: Decimal
    # False when the idempotency key (or the fill leg) had already been posted: `entry` is the earlier one.
    created: bool


def _entry(row: asyncpg.Record) -> Entry:
    return Entry(
        entry_id=row["entry_id"],
        account_id=row["account_id"],
        asset=row["asset"],
        type=EntryType(row["type"]),
        amount=row["amount"],
        reason=row["reason"],
        actor=row["actor"],
        order_id=row["order_id"],
        fill_id=row["fill_id"],
        idempotency_key=row["idempotency_key"],
        time_ns=row["time_ns"],
    )


async def _lock_balance(conn: Conn, account_id: str, asset: str) -> tuple[Decimal, Decimal]:
    """(total, locked) of the asset, its balance row locked until the transaction ends."""
    await conn.execute(
        "INSERT INTO balances (account_id, asset) VALUES ($1, $2) ON CONFLICT DO NOTHING", account_id, asset
    )
    total = await conn.fetchval(
        "SELECT total FROM balances WHERE account_id = $1 AND asset = $2 FOR UPDATE", account_id, asset
    )
    locked = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM balance_reservations WHERE account_id = $1 AND asset = $2",
        account_id,
        asset,
    )
    return Decimal(total), Decimal(locked)


async def _allow_negative(conn: Conn, account_id: str) -> bool:
    value = await conn.fetchval(
        "SELECT allow_negative_balances FROM accounts WHERE account_id = $1 FOR SHARE", account_id
    )
    if value is None:
        raise InvalidEntryError(f"no account {account_id!r}")
    return bool(value)


async def _existing(conn: Conn, entry: Entry) -> asyncpg.Record | None:
    if entry.idempotency_key is not None:
        return await conn.fetchrow(
            "SELECT * FROM ledger_entries WHERE account_id = $1 AND idempotency_key = $2",
            entry.account_id,
            entry.idempotency_key,
        )
    return await conn.fetchrow("SELECT * FROM ledger_entries WHERE entry_id = $1", entry.entry_id)


async def _insert(conn: Conn, entry: Entry, balance_after: Decimal) -> None:
    await conn.execute(
        "INSERT INTO ledger_entries (entry_id, account_id, asset, type, amount, balance_after, reason, actor,"
        " order_id, fill_id, idempotency_key, time_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
        " $11, $12)",
        entry.entry_id,
        entry.account_id,
        entry.asset,
        entry.type.value,
        entry.amount,
        balance_after,
        entry.reason,
        entry.actor,
        entry.order_id,
        entry.fill_id,
        entry.idempotency_key,
        entry.time_ns,
    )
    await conn.execute(
        "UPDATE balances SET total = $3, updated_time_ns = $4 WHERE account_id = $1 AND asset = $2",
        entry.account_id,
        entry.asset,
        balance_after,
        entry.time_ns,
    )


async def post_entry(conn: Conn, entry: Entry) -> PostedEntry:
    """Post one entry (deposit, withdrawal, adjustment), idempotent on (account, idempotency_key) or on the
    entry id; InsufficientBalanceError when a cash account's free balance would go below zero."""
    async with conn.transaction():
        allow_negative = await _allow_negative(conn, entry.account_id)
        total, locked = await _lock_balance(conn, entry.account_id, entry.asset)
        existing = await _existing(conn, entry)
        if existing is not None:
            return PostedEntry(_entry(existing), existing["balance_after"], False)
        check_debit(entry.asset, total, locked, entry.amount, allow_negative)
        balance_after = total + entry.amount
        await _insert(conn, entry, balance_after)
        return PostedEntry(entry, balance_after, True)


async def post_fill(conn: Conn, entries: Sequence[Entry], *, final: bool, check: bool = True) -> bool:
    """The order path's hook: post a fill's entries (from `domain.ledger.fill_entries`: base, quote, fee) and
    draw them from the order's reservation; `final` releases what the order still holds. Idempotent on the
    fill (False when its entries were already posted). Runs in the caller's transaction. `check=False`: the
    fill already happened at the venue, so it is posted even when it overdraws a cash account."""
    first = entries[0]
    assert first.order_id is not None and first.fill_id is not None
    async with conn.transaction():
        if await conn.fetchval("SELECT 1 FROM ledger_entries WHERE entry_id = $1", first.entry_id):
            return False
        allow_negative = await _allow_negative(conn, first.account_id)
        moves: dict[str, Decimal] = {}
        for entry in entries:
            moves[entry.asset] = moves.get(entry.asset, ZERO) + entry.amount
        reservation = await conn.fetchrow(
            "SELECT asset, amount FROM balance_reservations WHERE order_id = $1 FOR UPDATE", first.order_id
        )
        consumed = ZERO
        if reservation is not None:
            consumed = min(max(-moves.get(reservation["asset"], ZERO), ZERO), reservation["amount"])
        totals: dict[str, Decimal] = {}
        for asset in sorted(moves):  # a fixed lock order: no deadlock between two fills
            total, locked = await _lock_balance(conn, first.account_id, asset)
            held = consumed if reservation is not None and asset == reservation["asset"] else ZERO
            check_debit(asset, total, locked - held, moves[asset], allow_negative or not check)
            totals[asset] = total
        for entry in entries:
            totals[entry.asset] += entry.amount
            await _insert(conn, entry, totals[entry.asset])
        if reservation is not None:
            left = reservation["amount"] - consumed
            if final or left <= ZERO:
                await conn.execute("DELETE FROM balance_reservations WHERE order_id = $1", first.order_id)
            else:
                await conn.execute(
                    "UPDATE balance_reservations SET amount = $2 WHERE order_id = $1", first.order_id, left
                )
    return True


async def reserve(conn: Conn, account_id: str, reservation: Reservation) -> None:
    """The order path's hook: hold funds for a working order (replacing its earlier reservation);
    InsufficientBalanceError when a cash account's free balance does not cover it."""
    async with conn.transaction():
        allow_negative = await _allow_negative(conn, account_id)
        total, locked = await _lock_balance(conn, account_id, reservation.asset)
        held = await conn.fetchval(
            "SELECT amount FROM balance_reservations WHERE order_id = $1 AND asset = $2",
            reservation.order_id,
            reservation.asset,
        )
        check_debit(reservation.asset, total, locked - (held or ZERO), -reservation.amount, allow_negative)
        await conn.execute("DELETE FROM balance_reservations WHERE order_id = $1", reservation.order_id)
        await conn.execute(
            "INSERT INTO balance_reservations (order_id, account_id, asset, amount) VALUES ($1, $2, $3, $4)",
            reservation.order_id,
            account_id,
            reservation.asset,
            reservation.amount,
        )


async def release(conn: Conn, order_id: str) -> None:
    """The order path's hook: free what a finished order held (cancel, reject, expiry)."""
    await conn.execute("DELETE FROM balance_reservations WHERE order_id = $1", order_id)


async def balances(conn: Conn, account_id: str) -> list[Balance]:
    """Every asset of the account: total (the running sum of its entries) and locked (its reservations)."""
    rows = await conn.fetch(
        "SELECT asset, coalesce(b.total, 0) AS total, coalesce(r.locked, 0) AS locked"
        " FROM (SELECT asset, total FROM balances WHERE account_id = $1) b"
        " FULL JOIN (SELECT asset, sum(amount) AS locked FROM balance_reservations WHERE account_id = $1"
        " GROUP BY asset) r USING (asset) ORDER BY asset",
        account_id,
    )
    return [Balance(r["asset"], r["total"], r["locked"]) for r in rows]


async def entries(conn: Conn, account_id: str, asset: str = "") -> list[Entry]:
    """The account's entries in posting order (all assets, or one)."""
    rows = await conn.fetch(
        "SELECT * FROM ledger_entries WHERE account_id = $1 AND ($2 = '' OR asset = $2)"
        " ORDER BY time_ns, entry_id",
        account_id,
        asset,
    )
    return [_entry(r) for r in rows]


async def reservations(conn: Conn, account_id: str) -> list[Reservation]:
    rows = await conn.fetch(
        "SELECT order_id, asset, amount FROM balance_reservations WHERE account_id = $1", account_id
    )
    return [Reservation(r["order_id"], r["asset"], r["amount"]) for r in rows]


async def account_ledger(conn: Conn, account_id: str) -> AccountLedger:
    """The account's balances and reservations as the order path keeps them in memory."""
    allow_negative = await conn.fetchval(
        "SELECT allow_negative_balances FROM accounts WHERE account_id = $1", account_id
    )
    totals = await conn.fetch("SELECT asset, total FROM balances WHERE account_id = $1", account_id)
    return AccountLedger(
        account_id,
        bool(allow_negative),
        {r["asset"]: r["total"] for r in totals},
        {r.order_id: r for r in await reservations(conn, account_id)},
    )


async def reconcile(
    conn: Conn,
    account_id: str,
    venue_totals: Mapping[str, Decimal],
    *,
    complete: bool,
    reason: str,
    actor: str,
    time_ns: int,
) -> list[Divergence]:
    """Make the account's ledger agree with a venue's balances: under the balance row locks (so no fill
    posts in between), one ADJUSTMENT entry per diverging asset, posted even below zero (the venue's balance
    is the fact). The divergences found (none: nothing written)."""
    async with conn.transaction():
        assets = sorted(
            set(venue_totals) | ({b.asset for b in await balances(conn, account_id)} if complete else set())
        )
        ledger_totals = {}
        for asset in assets:  # a fixed lock order, as post_fill
            ledger_totals[asset], _ = await _lock_balance(conn, account_id, asset)
        found = divergences(ledger_totals, venue_totals, complete=complete)
        for divergence in found:
            entry = Entry(
                entry_id=f"rec-{uuid.uuid4().hex}",
                account_id=account_id,
                asset=divergence.asset,
                type=EntryType.ADJUSTMENT,
                amount=divergence.adjustment,
                reason=f"{reason}: venue {divergence.venue}, ledger {divergence.ledger}",
                actor=actor,
                time_ns=time_ns,
            )
            await _insert(conn, entry, divergence.venue)
    return found
