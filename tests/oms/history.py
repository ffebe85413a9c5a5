"""Synthetic OMS history loaded in bulk with generate_series (the EXPLAIN test, bench/oms_history_bench.py).

Orders are spread over accounts and symbols, newest last; each has `events_per_order` events in the log, in
log order. All but one order in `open_every` are FILLED (what a long-lived account looks like: a large closed
history, a small open book). Payloads are empty (a valid, empty aipx.v1.OrderEvent): only the indexes and the
table sizes matter here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

HISTORY_BASE_NS = 1_600_000_000_000_000_000
"""Created time of the first synthetic order (2020-09-13): before anything a test or bench submits."""


async def load_history(
    conn: Any,
    *,
    accounts: Sequence[str],
    symbols: Sequence[str],
    orders: int,
    events_per_order: int,
    open_every: int = 100,
    chunk: int = 200_000,
) -> None:
    """Insert `orders` orders and `orders * events_per_order` events after whatever the tables hold, then
    ANALYZE. Accounts must exist. Loaded in chunks so that each statement stays bounded in memory."""
    await conn.execute("SET synchronous_commit = off")
    first_sequence = int(await conn.fetchval("SELECT coalesce(max(log_sequence), 0) FROM order_events")) + 1
    for start in range(0, orders, chunk):
        end = min(orders, start + chunk)
        await conn.execute(
            """
            INSERT INTO orders (order_id, account_id, client_order_id, symbol, side, type, time_in_force,
                quantity, price, venue, status, filled_quantity, average_fill_price, sequence,
                created_time_ns, updated_time_ns)
            SELECT 'hist-' || g, ($1::text[])[1 + g % cardinality($1::text[])], 'hist-c-' || g,
                ($2::text[])[1 + (g / cardinality($1::text[])) % cardinality($2::text[])],
                CASE WHEN g % 2 = 0 THEN 'BUY' ELSE 'SELL' END, 'LIMIT', 'GTC', 0.01, 20000, 'paper',
                CASE WHEN g % $5 = 0 THEN 'ACCEPTED' ELSE 'FILLED' END,
                CASE WHEN g % $5 = 0 THEN 0 ELSE 0.01 END,
                CASE WHEN g % $5 = 0 THEN NULL ELSE 20000 END,
                $6, $7 + g * 1000, $7 + g * 1000
            FROM generate_series($3::bigint, $4::bigint) AS g
            """,
            list(accounts),
            list(symbols),
            start,
            end - 1,
            open_every,
            events_per_order,
            HISTORY_BASE_NS,
        )
        await conn.execute(
            """
            INSERT INTO order_events (log_sequence, event_id, account_id, order_id, sequence, type, symbol,
                event_time_ns, payload)
            SELECT $5 + g * $4 + s - 1, gen_random_uuid(), o.account_id, o.order_id, s,
                CASE WHEN s = 1 THEN 'ACCEPTED' ELSE 'FILLED' END, o.symbol, o.created_time_ns + s, ''::bytea
            FROM generate_series($1::bigint, $2::bigint) AS g
            JOIN orders o ON o.order_id = 'hist-' || g
            CROSS JOIN generate_series(1, $3::int) AS s
            """,
            start,
            end - 1,
            events_per_order,
            events_per_order,
            first_sequence,
        )
    await conn.execute("ANALYZE orders")
    await conn.execute("ANALYZE order_events")
