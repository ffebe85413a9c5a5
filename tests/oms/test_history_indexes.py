"""ListOrders and StreamOrderEvents from deep offsets are served by indexes (issue #16, migration 005).

A real PostgreSQL database is loaded with a large synthetic history (tests/oms/history.py), then the OMS's
own read queries (OmsStore.list_orders / events_after, the SQL the servicer runs) are captured on the wire
and run under EXPLAIN (ANALYZE). Each must be an index scan in the page's order, with no sequential scan and
no sort, that starts at the page's key: it reads no more rows than the page (plus one to know there is a
next one), however deep the offset.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from aipx_oms.store.admin import upsert_account
from aipx_oms.store.postgres import OmsStore, OrderFilter, encode_page_token
from aipx_oms.store.rows import init_connection

from tests.oms.conftest import prepare_database
from tests.oms.history import load_history

pytestmark = pytest.mark.integration

ACCOUNTS = ["acct-a", "acct-b", *(f"acct-h{i}" for i in range(6))]
SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT", "XRP-USDT"]
ORDERS = 120_000
EVENTS_PER_ORDER = 4
PAGE = 100
# One order in three open: an account with a deep book (thousands of resting orders) as well as history.
OPEN_EVERY = 3


class ExplainingConnection(asyncpg.Connection):
    """Runs EXPLAIN (ANALYZE, FORMAT JSON) of every SELECT it fetches, with the same arguments, first."""

    plans: list[tuple[str, dict[str, Any]]]

    async def fetch(self, query: str, *args: Any, **kw: Any) -> Any:
        if query.lstrip().upper().startswith("SELECT"):
            rows = await super().fetch(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", *args)
            plan = rows[0][0]
            type(self).plans.append((query, (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]))
        return await super().fetch(query, *args, **kw)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


@pytest.fixture
async def history(new_database: Callable[[], Any]) -> AsyncIterator[tuple[str, OmsStore]]:
    dsn = await new_database()
    await prepare_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        for account in ACCOUNTS:
            await upsert_account(conn, account)
        started = time.monotonic()
        await load_history(
            conn,
            accounts=ACCOUNTS,
            symbols=SYMBOLS,
            orders=ORDERS,
            events_per_order=EVENTS_PER_ORDER,
            open_every=OPEN_EVERY,
        )
        took = time.monotonic() - started
        print(f"loaded {ORDERS} orders, {ORDERS * EVENTS_PER_ORDER} events in {took:.1f}s")
    finally:
        await conn.close()
    ExplainingConnection.plans = []
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=2, init=init_connection, connection_class=ExplainingConnection
    )
    try:
        yield dsn, OmsStore(pool)
    finally:
        await pool.close()


def check_served_by_index(index: str, *, at_most: int) -> dict[str, Any]:
    """The last captured plan: `index` scanned in order, nothing sequential, no sort, <= at_most rows read."""
    query, plan = ExplainingConnection.plans[-1]
    every = list(nodes(plan))
    kinds = [n["Node Type"] for n in every]
    assert "Seq Scan" not in kinds and "Sort" not in kinds, (
        [(n["Node Type"], n.get("Index Name"), n.get("Plan Rows"), n.get("Actual Rows")) for n in every],
        query,
    )
    scans = [n for n in every if n.get("Index Name") == index]
    assert scans, f"{index} not used: {[(n['Node Type'], n.get('Index Name')) for n in every]}\n{query}"
    read = sum(n["Actual Rows"] + n.get("Rows Removed by Filter", 0) for n in scans)
    assert read <= at_most, f"{index} read {read} rows for a page of {at_most} (it did not start at the key)"
    return plan


async def test_list_orders_pages_from_deep_tokens_are_index_range_scans(
    history: tuple[str, OmsStore],
) -> None:
    _, store = history
    # The token of an order deep in acct-a's history (about half way back).
    deep = await store.order_by_id(f"hist-{ORDERS // 2 - (ORDERS // 2) % len(ACCOUNTS)}")
    assert deep is not None and deep.account_id == "acct-a"
    token = encode_page_token(deep)

    page, next_token = await store.list_orders("acct-a", OrderFilter(), PAGE, token)
    check_served_by_index("orders_account_created", at_most=PAGE + 1)
    assert len(page) == PAGE and next_token
    assert all(o.created_time_ns < deep.created_time_ns for o in page)
    assert [o.created_time_ns for o in page] == sorted((o.created_time_ns for o in page), reverse=True)

    page, _ = await store.list_orders("acct-a", OrderFilter(symbols=["ETH-USDT"]), PAGE, token)
    check_served_by_index("orders_account_symbol_created", at_most=PAGE + 1)
    assert len(page) == PAGE and {o.symbol for o in page} == {"ETH-USDT"}

    page, _ = await store.list_orders("acct-a", OrderFilter(open_only=True), PAGE, token)
    check_served_by_index("orders_open_created", at_most=PAGE + 1)
    assert page and all(o.status.value == "ACCEPTED" for o in page)


async def test_stream_catch_up_from_a_deep_log_sequence_is_an_index_range_scan(
    history: tuple[str, OmsStore],
) -> None:
    _, store = history
    deep = ORDERS * EVENTS_PER_ORDER // 2
    limit = 500

    events = await store.events_after("acct-a", deep, limit)
    check_served_by_index("order_events_account", at_most=limit)
    assert len(events) == limit and all(e.log_sequence > deep for e in events)
    assert [e.log_sequence for e in events] == sorted(e.log_sequence for e in events)

    events = await store.events_after("acct-a", deep, limit, symbols=["SOL-USDT"])
    check_served_by_index("order_events_account_symbol", at_most=limit)
    assert len(events) == limit and all(e.log_sequence > deep for e in events)

    order_id = f"hist-{ORDERS - len(ACCOUNTS)}"  # one of acct-a's newest orders
    events = await store.events_after("acct-a", deep, limit, order_id=order_id)
    plan = ExplainingConnection.plans[-1][1]
    assert "Seq Scan" not in [n["Node Type"] for n in nodes(plan)]
    assert len(events) == EVENTS_PER_ORDER
