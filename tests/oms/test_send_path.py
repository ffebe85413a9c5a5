"""The durable send path: the OMS's connection to PostgreSQL is cut while orders, then cancels, are committed
under load, so that commits happen but their answers are lost (a real TCP proxy that forwards the request,
drops the answer and cuts the link), and with pg_terminate_backend. Orders (and cancels) whose commit outcome
the client never learned, but which did commit, reach their venue without a restart (found from the event log
by the send sweep); the client gets UNAVAILABLE (retry), never INTERNAL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from aipx.settings import PostgresSettings
from aipx.v1 import common_pb2
from aipx_oms.venues.paper import PaperVenue

from tests.oms.conftest import OmsEnv, eventually
from tests.oms.helpers import CuttableProxy

pytestmark = pytest.mark.integration

BUY = common_pb2.SIDE_BUY
CLIENTS = 8


async def _terminate_backends(dsn: str) -> int:
    """Cut every other session of the test database (the OMS writer's included), as a failover would."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return sum(1 for r in rows if r["cut"])


def _via(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


async def test_orders_whose_commit_outcome_was_unknown_reach_the_venue(oms_env: OmsEnv) -> None:
    paper, proxy = await _behind_proxy(oms_env)
    failed: list[str] = []  # client order ids whose submit answered an error (outcome unknown to the client)
    ok: list[str] = []
    stop = asyncio.Event()

    async def client_loop(n: int) -> None:
        async with oms_env.client() as c:
            i = 0
            while not stop.is_set():
                coid = f"load-{n}-{i}"
                i += 1
                try:
                    await c.submit("BTC-USDT", BUY, "0.01", price="20000", client_order_id=coid, timeout_s=5)
                    ok.append(coid)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), exc
                    failed.append(coid)

    loops = [asyncio.create_task(client_loop(n)) for n in range(CLIENTS)]
    committed_unknown: list[str] = []
    try:
        await _until(_progress(ok, 100), "load running")
        for attempt in range(20):  # until a commit's answer was lost (usually the first time)
            await _lose_an_answer(oms_env, proxy, attempt)
            await _until(_progress(ok, 20), "the OMS writing again", 30)
            rows = await oms_env.sql(
                "SELECT client_order_id FROM orders WHERE client_order_id = ANY($1::text[])", failed
            )
            committed_unknown = [r["client_order_id"] for r in rows]
            if committed_unknown:
                break
        assert committed_unknown, "no commit outcome was lost: the test proved nothing"
    finally:
        stop.set()
        await asyncio.gather(*loops)
    print(f"{len(ok)} acknowledged, {len(failed)} failed, {len(committed_unknown)} of those committed")

    async def all_at_venue() -> bool:
        rows = await oms_env.sql("SELECT order_id FROM orders WHERE status = 'ACCEPTED'")
        return len(rows) >= len(ok) and all(r["order_id"] in paper.working for r in rows)

    await eventually(all_at_venue, timeout_s=30, what="every committed order at the venue, without a restart")
    for coid in committed_unknown:
        [row] = await oms_env.sql("SELECT order_id FROM orders WHERE client_order_id = $1", coid)
        assert row["order_id"] in paper.working, coid
    total = await oms_env.sql("SELECT count(*) AS n FROM orders")
    assert total[0]["n"] == len(paper.working), "exactly the committed orders rest at the venue"
    await oms_env.stop()
    await proxy.stop()


async def _behind_proxy(oms_env: OmsEnv) -> tuple[PaperVenue, CuttableProxy]:
    """The OMS with its PostgreSQL behind a cuttable proxy, and its paper venue; the send sweep alone finds
    what the fast path missed (reconciliation, which would find it too, later, is off)."""
    upstream = urlsplit(oms_env.dsn)
    proxy = CuttableProxy(upstream.hostname or "127.0.0.1", upstream.port or 5432)
    port = await proxy.start()
    app = await oms_env.start(
        postgres=PostgresSettings(dsn=_via(oms_env.dsn, port), min_pool_size=1, max_pool_size=8),
        send_sweep_interval_s=0.2,
        send_sweep_grace_s=0.5,
        reconcile_interval_s=0,
    )
    paper = app.venues["paper"]
    assert isinstance(paper, PaperVenue)
    return paper, proxy


async def _lose_an_answer(oms_env: OmsEnv, proxy: CuttableProxy, attempt: int) -> None:
    """Cut the OMS's sessions under load: pg_terminate_backend on odd attempts, else the proxy's link right
    after it forwarded a request (the statement may commit; its answer is lost)."""
    if attempt % 2:
        await _terminate_backends(oms_env.dsn)
        return
    cuts = proxy.cuts_after_request
    proxy.cut_after_next_request()
    await _until(lambda: proxy.cuts_after_request > cuts, "the link cut after a request")


def _progress(ok: list[str], more: int) -> Callable[[], bool]:
    mark = len(ok)
    return lambda: len(ok) >= mark + more


async def _until(check: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    async def ready() -> bool:
        return check()

    await eventually(ready, timeout_s=timeout_s, what=what)


async def test_cancels_whose_commit_outcome_was_unknown_reach_the_venue(oms_env: OmsEnv) -> None:
    """The same cut while cancels commit: a cancel whose PENDING_CANCEL committed but whose answer the client
    never got is still sent to the venue (by the send sweep, without a restart); every order whose cancel
    committed ends CANCELED and no longer rests at the venue; the others still rest there."""
    paper, proxy = await _behind_proxy(oms_env)
    resting: list[str] = []
    async with oms_env.client() as c:
        for i in range(400):
            placed = await c.submit("BTC-USDT", BUY, "0.01", price="20000", client_order_id=f"rest-{i}")
            resting.append(placed.order.order_id)
    await eventually(
        _rests(paper, resting), timeout_s=30, what="the orders resting at the venue"
    )  # fmt: skip
    queue = list(resting)
    failed: list[str] = []  # order ids whose cancel answered an error (outcome unknown to the client)
    ok: list[str] = []
    stop = asyncio.Event()

    async def client_loop() -> None:
        async with oms_env.client() as c:
            while not stop.is_set() and queue:
                order_id = queue.pop()
                try:
                    await c.cancel(order_id=order_id, timeout_s=5)
                    ok.append(order_id)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), exc
                    failed.append(order_id)

    loops = [asyncio.create_task(client_loop()) for _ in range(CLIENTS)]
    committed_unknown: list[str] = []
    try:
        await _until(_progress(ok, 20), "cancels running")
        for attempt in range(12):
            if not queue:
                break
            await _lose_an_answer(oms_env, proxy, attempt)
            await _until(lambda: bool(not queue or (ok and len(ok) > 0)), "cancelling again", 30)
            await asyncio.sleep(0.2)
            rows = await oms_env.sql(
                "SELECT order_id FROM orders WHERE order_id = ANY($1::text[])"
                " AND status IN ('PENDING_CANCEL', 'CANCELED')",
                failed,
            )
            committed_unknown = [r["order_id"] for r in rows]
            if committed_unknown:
                break
        assert committed_unknown, "no cancel's commit outcome was lost: the test proved nothing"
    finally:
        stop.set()
        await asyncio.gather(*loops)
    print(
        f"{len(ok)} cancels acknowledged, {len(failed)} failed, {len(committed_unknown)} of those committed"
    )

    async def settled() -> bool:
        rows = await oms_env.sql(
            "SELECT order_id, status FROM orders WHERE order_id = ANY($1::text[])", resting
        )
        cancelled = {r["order_id"] for r in rows if r["status"] in ("PENDING_CANCEL", "CANCELED")}
        done = {r["order_id"] for r in rows if r["status"] == "CANCELED"}
        return cancelled == done and not (cancelled & set(paper.working))

    await eventually(
        settled, timeout_s=30, what="every committed cancel done at the venue, without a restart"
    )
    rows = await oms_env.sql("SELECT order_id, status FROM orders WHERE order_id = ANY($1::text[])", resting)
    status = {r["order_id"]: r["status"] for r in rows}
    for order_id in committed_unknown + ok:
        assert status[order_id] == "CANCELED" and order_id not in paper.working, order_id
    untouched = [o for o in resting if status[o] == "ACCEPTED"]
    assert all(o in paper.working for o in untouched), "orders never cancelled still rest at the venue"
    await oms_env.stop()
    await proxy.stop()


def _rests(paper: PaperVenue, order_ids: list[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return all(o in paper.working for o in order_ids)

    return check
