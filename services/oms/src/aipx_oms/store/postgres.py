"""Reads of the OMS store (asyncpg pool). Writes go through the GroupCommitWriter (store.writer)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
from aipx.numbers import epoch_ns

from aipx_oms.domain.ledger import AccountLedger
from aipx_oms.domain.model import AccountState, Instrument, Order, OrderStatus, Position
from aipx_oms.store import ledger
from aipx_oms.store.errors import StoreUnavailableError, is_unavailable
from aipx_oms.store.rows import (
    ORDER_COLUMNS,
    init_connection,
    instrument_from_row,
    order_from_row,
    position_from_row,
)

OPEN_STATUS_VALUES = [
    s.value for s in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL)
]


def hash_api_key(key: str) -> bytes:
    """The stored form of an API key (SHA-256 digest)."""
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class AccountRow:
    account_id: str
    state: AccountState
    limits: dict[str, Any]
    position_quantity: dict[str, Any]
    # The account's (maker, taker) fee rates overriding its instruments' (None: the instrument's).
    fee_rates: tuple[Decimal | None, Decimal | None] = (None, None)
    # HALTED with its working orders cancelled (orders that become live later are cancelled too).
    cancel_working: bool = False


@dataclass(frozen=True, slots=True)
class RequestKeyRow:
    account_id: str
    idempotency_key: str
    kind: str
    order_id: str
    outcome: str
    reason: str | None
    message: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class EventHead:
    """What the durable send path needs of an event: which order, what happened, when."""

    log_sequence: int
    type: str
    order_id: str
    event_time_ns: int


@dataclass(frozen=True, slots=True)
class OrderFilter:
    symbols: Sequence[str] = ()
    statuses: Sequence[OrderStatus] = ()
    open_only: bool = False
    created_after_ns: int = 0
    created_before_ns: int = 0


@dataclass(frozen=True, slots=True)
class StoredEvent:
    log_sequence: int
    account_id: str
    event_id: str
    event_time_ns: int
    payload: bytes


async def fetch_unpublished(conn: asyncpg.Connection | Any, limit: int) -> list[StoredEvent]:
    """Outbox rows not yet published, oldest first (on a given connection)."""
    rows = await conn.fetch(
        "SELECT e.log_sequence, e.account_id, e.event_id::text AS event_id, e.event_time_ns, e.payload"
        " FROM outbox o JOIN order_events e USING (log_sequence)"
        " WHERE o.published_at IS NULL ORDER BY o.log_sequence LIMIT $1",
        limit,
    )
    return [StoredEvent(r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def mark_published(conn: asyncpg.Connection | Any, log_sequences: Sequence[int]) -> None:
    await conn.execute(
        "UPDATE outbox SET published_at = now() WHERE log_sequence = ANY($1::bigint[])", list(log_sequences)
    )


async def prune_published(conn: asyncpg.Connection | Any, older_than_s: float, limit: int = 10_000) -> int:
    """Delete up to `limit` outbox rows published more than `older_than_s` ago, oldest first; how many.

    The outbox only tracks publication: the events themselves stay in order_events. Rows are published in log
    order, so the oldest rows are the published ones and the scan in primary-key order stops early.
    """
    result: str = await conn.execute(
        "DELETE FROM outbox WHERE log_sequence IN (SELECT log_sequence FROM outbox"
        " WHERE published_at < now() - make_interval(secs => $1) ORDER BY log_sequence LIMIT $2)",
        older_than_s,
        limit,
    )
    return int(result.rsplit(" ", 1)[-1])


def encode_page_token(order: Order) -> str:
    raw = f"{order.created_time_ns}:{order.order_id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_page_token(token: str) -> tuple[int, str]:
    """(created_time_ns, order_id) of the last order of the previous page; ValueError if malformed."""
    try:
        created, order_id = base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)
        return epoch_ns(created, field="page_token"), order_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("malformed page token") from exc


class OmsStore:
    """The OMS's read side over a connection pool; connection failures surface as StoreUnavailableError."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(
        cls, dsn: str, *, min_size: int = 2, max_size: int = 20, command_timeout_s: float = 10.0
    ) -> OmsStore:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=init_connection,
                command_timeout=command_timeout_s,
            )
        except Exception as exc:
            if is_unavailable(exc):
                raise StoreUnavailableError(f"cannot connect to PostgreSQL: {exc}") from exc
            raise
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def _conn(
        self, budget_s: float | None = None
    ) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[Any]]:
        try:
            async with self.pool.acquire(timeout=budget_s) as conn:
                yield conn
        except Exception as exc:
            if is_unavailable(exc):
                raise StoreUnavailableError(f"PostgreSQL unavailable: {exc}") from exc
            raise

    async def ping(self) -> bool:
        async with self._conn(budget_s=2.0) as conn:
            return bool(await conn.fetchval("SELECT true", timeout=2.0))

    async def account_for_key(self, key: str) -> str | None:
        async with self._conn() as conn:
            value = await conn.fetchval(
                "SELECT k.account_id FROM api_keys k WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
                hash_api_key(key),
            )
        return None if value is None else str(value)

    async def instruments(self) -> dict[str, Instrument]:
        async with self._conn() as conn:
            rows = await conn.fetch("SELECT * FROM instruments ORDER BY symbol")
        return {r["symbol"]: instrument_from_row(r) for r in rows}

    async def account(self, account_id: str) -> AccountRow | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT a.account_id, a.state, a.maker_fee_rate, a.taker_fee_rate, a.cancel_working_orders,"
                " r.max_order_notional, r.max_position_notional, r.max_open_orders,"
                " r.rate_per_s, r.rate_burst, r.price_band_bps"
                " FROM accounts a LEFT JOIN risk_limits r USING (account_id) WHERE a.account_id = $1",
                account_id,
            )
            if row is None:
                return None
            caps = await conn.fetch(
                "SELECT symbol, max_quantity FROM position_limits WHERE account_id = $1", account_id
            )
        fees = ("maker_fee_rate", "taker_fee_rate")
        own = ("account_id", "state", "cancel_working_orders", *fees)
        limits = {k: v for k, v in row.items() if k not in own and v is not None}
        return AccountRow(
            account_id,
            AccountState(row["state"]),
            limits,
            {r["symbol"]: r["max_quantity"] for r in caps},
            fee_rates=(row["maker_fee_rate"], row["taker_fee_rate"]),
            cancel_working=row["cancel_working_orders"],
        )

    async def account_ledger(self, account_id: str) -> AccountLedger:
        """The account's balances and reservations (store.ledger.account_ledger)."""
        async with self._conn() as conn:
            return await ledger.account_ledger(conn, account_id)

    async def open_orders(
        self, account_id: str | None = None, *, venues: Sequence[str] | None = None
    ) -> list[Order]:
        """Working orders of one account (or of all accounts, optionally of some venues only)."""
        async with self._conn() as conn:
            if account_id is None and venues is not None:
                rows = await conn.fetch(
                    f"SELECT {ORDER_COLUMNS} FROM orders WHERE status = ANY($1::text[])"
                    " AND venue = ANY($2::text[])",
                    OPEN_STATUS_VALUES,
                    list(venues),
                )
            elif account_id is None:
                rows = await conn.fetch(
                    f"SELECT {ORDER_COLUMNS} FROM orders WHERE status = ANY($1::text[])", OPEN_STATUS_VALUES
                )
            else:
                rows = await conn.fetch(
                    f"SELECT {ORDER_COLUMNS} FROM orders WHERE account_id = $1 AND status = ANY($2::text[])",
                    account_id,
                    OPEN_STATUS_VALUES,
                )
        return [order_from_row(r) for r in rows]

    async def positions(self, account_id: str, symbols: Sequence[str] = ()) -> list[Position]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT * FROM positions WHERE account_id = $1 AND (cardinality($2::text[]) = 0"
                " OR symbol = ANY($2::text[])) ORDER BY symbol",
                account_id,
                list(symbols),
            )
        return [position_from_row(r) for r in rows]

    async def order(
        self, account_id: str, *, order_id: str = "", client_order_id: str = "", budget_s: float | None = None
    ) -> Order | None:
        """An order of the account by id or client id (None: no such order for this account)."""
        async with self._conn(budget_s) as conn:
            if order_id:
                row = await conn.fetchrow(
                    f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1 AND account_id = $2",
                    order_id,
                    account_id,
                    timeout=budget_s,
                )
            else:
                row = await conn.fetchrow(
                    f"SELECT {ORDER_COLUMNS} FROM orders WHERE account_id = $1 AND client_order_id = $2",
                    account_id,
                    client_order_id,
                    timeout=budget_s,
                )
        return None if row is None else order_from_row(row)

    async def fill_exists(self, fill_id: str) -> bool:
        async with self._conn() as conn:
            return bool(
                await conn.fetchval("SELECT EXISTS (SELECT 1 FROM fills WHERE fill_id = $1)", fill_id)
            )

    async def last_log_sequence(self) -> int:
        """The newest event's log sequence (0 for an empty log)."""
        async with self._conn() as conn:
            value = await conn.fetchval("SELECT coalesce(max(log_sequence), 0) FROM order_events")
        return int(value)

    async def recent_events(self, after_log_sequence: int, limit: int) -> list[EventHead]:
        """Type, order and time of the events after a log sequence, in commit order (no payloads)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT log_sequence, type, order_id, event_time_ns FROM order_events"
                " WHERE log_sequence > $1 ORDER BY log_sequence LIMIT $2",
                after_log_sequence,
                limit,
            )
        return [EventHead(r[0], r[1], r[2], r[3]) for r in rows]

    async def orders_to_venue(self, order_ids: Sequence[str]) -> list[Order]:
        """Those of the orders that still need their venue: accepted without a venue acknowledgement (no
        venue_order_id), or a cancel requested and not confirmed."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ANY($1::text[])"
                " AND ((status = 'ACCEPTED' AND venue_order_id = '') OR status = 'PENDING_CANCEL')",
                list(order_ids),
            )
        return [order_from_row(r) for r in rows]

    async def order_by_id(self, order_id: str) -> Order | None:
        """Any account's order (for venue reports, which know only our order id)."""
        async with self._conn() as conn:
            row = await conn.fetchrow(f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1", order_id)
        return None if row is None else order_from_row(row)

    async def list_orders(
        self,
        account_id: str,
        flt: OrderFilter,
        page_size: int,
        page_token: str = "",
        budget_s: float | None = None,
    ) -> tuple[list[Order], str]:
        """Newest first, keyset-paginated; returns the page and the next token ('' on the last page)."""
        clauses = ["account_id = $1"]
        args: list[Any] = [account_id]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if len(flt.symbols) == 1:  # equality: the planner walks orders_account_symbol_created in page order
            clauses.append(f"symbol = {arg(flt.symbols[0])}")
        elif flt.symbols:
            clauses.append(f"symbol = ANY({arg(list(flt.symbols))}::text[])")
        statuses = [s.value for s in flt.statuses]
        if flt.open_only:
            statuses = [s for s in (statuses or OPEN_STATUS_VALUES) if s in OPEN_STATUS_VALUES] or ["-"]
        if statuses:
            clauses.append(f"status = ANY({arg(statuses)}::text[])")
        if flt.created_after_ns:
            clauses.append(f"created_time_ns >= {arg(flt.created_after_ns)}")
        if flt.created_before_ns:
            clauses.append(f"created_time_ns <= {arg(flt.created_before_ns)}")
        if page_token:
            created, last_id = decode_page_token(page_token)
            clauses.append(f"(created_time_ns, order_id) < ({arg(created)}, {arg(last_id)})")
        sql = (
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE {' AND '.join(clauses)}"
            f" ORDER BY created_time_ns DESC, order_id DESC LIMIT {arg(page_size + 1)}"
        )
        async with self._conn(budget_s) as conn:
            rows = await conn.fetch(sql, *args, timeout=budget_s)
        orders = [order_from_row(r) for r in rows[:page_size]]
        token = encode_page_token(orders[-1]) if len(rows) > page_size else ""
        return orders, token

    async def events_after(
        self,
        account_id: str,
        after_log_sequence: int,
        limit: int,
        *,
        symbols: Sequence[str] = (),
        order_id: str = "",
    ) -> list[StoredEvent]:
        """The account's logged events after a log sequence, in log order."""
        # One statement per filter shape, so that each is planned for its index (migration 005): a single
        # symbol by equality walks order_events_account_symbol in log order from the offset.
        args: list[Any] = [account_id, after_log_sequence, limit]
        where = "account_id = $1 AND log_sequence > $2"
        if len(symbols) == 1:
            where += " AND symbol = $4"
            args.append(symbols[0])
        elif symbols:
            where += " AND symbol = ANY($4::text[])"
            args.append(list(symbols))
        if order_id:
            where += f" AND order_id = ${len(args) + 1}"
            args.append(order_id)
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT log_sequence, account_id, event_id::text AS event_id, event_time_ns, payload"
                f" FROM order_events WHERE {where} ORDER BY log_sequence LIMIT $3",
                *args,
            )
        return [StoredEvent(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def request_key(self, account_id: str, key: str) -> RequestKeyRow | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT account_id, idempotency_key, kind, order_id, outcome, reason, message, fingerprint"
                " FROM request_keys WHERE account_id = $1 AND idempotency_key = $2",
                account_id,
                key,
            )
        return None if row is None else RequestKeyRow(*row.values())

    async def prune_published(self, older_than_s: float, limit: int = 10_000) -> int:
        async with self._conn() as conn:
            return await prune_published(conn, older_than_s, limit)

    async def outbox_lag(self) -> tuple[int, float]:
        """(unpublished events, age in seconds of the oldest one)."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age"
                " FROM outbox WHERE published_at IS NULL"
            )
        assert row is not None
        return int(row["n"]), float(row["age"])
