"""Order events and durability: stream resume, relay exactly-once after de-dup, PostgreSQL down -> UNAVAILABLE
with nothing half-written, Kafka down -> orders accepted and events delivered later, SIGKILL mid-burst."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from aipx.clients.oms import OmsClient
from aipx.settings import PostgresSettings
from aipx.v1 import common_pb2, orders_pb2
from aipx_oms.store.postgres import prune_published
from aipx_stack.ports import free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.oms.conftest import KEY_A, KEY_B, OmsEnv, eventually
from tests.oms.helpers import CuttableProxy, read_events

pytestmark = pytest.mark.integration
BUY = common_pb2.SIDE_BUY


async def take(stream: object, n: int, timeout_s: float = 10.0) -> list[orders_pb2.OrderEvent]:
    out: list[orders_pb2.OrderEvent] = []
    iterator = stream.__aiter__()  # type: ignore[attr-defined]
    for _ in range(n):
        out.append(await asyncio.wait_for(iterator.__anext__(), timeout_s))
    return out


async def db_event_ids(env: OmsEnv) -> set[str]:
    return {str(r["event_id"]) for r in await env.sql("SELECT event_id FROM order_events")}


async def test_stream_resumes_from_a_log_sequence_then_goes_live(oms: OmsEnv) -> None:
    async with oms.client() as a, oms.client(KEY_B) as b:
        for i in range(5):
            await a.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id=f"s{i}")
        await b.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="other-account")
        await a.cancel(client_order_id="s0")
        first = await take(a.events(), 7)
        assert [e.type for e in first[:5]] == [orders_pb2.ORDER_EVENT_TYPE_ACCEPTED] * 5
        assert [e.type for e in first[5:]] == [
            orders_pb2.ORDER_EVENT_TYPE_PENDING_CANCEL, orders_pb2.ORDER_EVENT_TYPE_CANCELED,
        ]  # fmt: skip
        sequences = [e.log_sequence for e in first]
        assert sequences == sorted(sequences) and len(set(sequences)) == 7
        assert all(e.account_id == "acct-a" for e in first), "another account's events never appear"
        resumed = a.events(from_log_sequence=first[3].log_sequence)
        again = await take(resumed, 3)
        assert [e.event_id for e in again] == [e.event_id for e in first[4:]]
        await a.submit("ETH-USDT", BUY, "0.01", price="1000", client_order_id="live-1")
        live = await take(resumed, 1)
        assert live[0].order.client_order_id == "live-1" and live[0].log_sequence > first[-1].log_sequence
        only_eth = await take(a.events(symbols=["ETH-USDT"]), 1)
        assert only_eth[0].order.symbol == "ETH-USDT"
    published = await read_events(oms.kafka, oms.events_topic, expect=9)
    ids = {e.event_id for e in published}
    assert ids == await db_event_ids(oms), "the relay published every logged event"
    accounts = {e.account_id for e in published}
    assert accounts == {"acct-a", "acct-b"}
    await eventually(lambda: _unpublished_is(oms, 0), what="outbox rows marked published")


async def _unpublished_is(env: OmsEnv, n: int) -> bool:
    rows = await env.sql("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
    return bool(rows[0]["n"] == n)


async def test_postgres_down_gives_unavailable_and_nothing_half_written(oms_env: OmsEnv) -> None:
    parts = urlsplit(oms_env.dsn)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await proxy.start()
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{port}"
    proxied = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    await oms_env.start(postgres=PostgresSettings(dsn=proxied, min_pool_size=1, max_pool_size=4))
    try:
        async with oms_env.client() as client:
            ok = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="before")
            assert ok.created
            proxy.cut()
            codes = []
            for i in range(5):
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id=f"down-{i}")
                codes.append(exc.value.code())
            assert set(codes) == {grpc.StatusCode.UNAVAILABLE}
            proxy.restore()

            async def accepted() -> bool:
                try:
                    r = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="after")
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() is grpc.StatusCode.UNAVAILABLE
                    return False
                return r.order.status == orders_pb2.ORDER_STATUS_ACCEPTED

            await eventually(accepted, what="the OMS to accept orders again after PostgreSQL came back")
            # Retrying a refused order is safe: at most one order per client id, each with its event.
            retried = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="down-0")
            assert retried.order.client_order_id == "down-0"
    finally:
        await oms_env.stop()
        await proxy.stop()
    rows = await oms_env.sql(
        "SELECT o.client_order_id, count(e.*) AS events, count(x.*) AS outbox FROM orders o"
        " LEFT JOIN order_events e USING (order_id) LEFT JOIN outbox x USING (log_sequence)"
        " GROUP BY o.client_order_id"
    )
    by_id = {r["client_order_id"]: (r["events"], r["outbox"]) for r in rows}
    assert by_id["before"] == (1, 1) and by_id["after"] == (1, 1) and by_id["down-0"] == (1, 1)
    assert all(v == (1, 1) for v in by_id.values()), "every order has exactly its event and outbox row"


@pytest.mark.disruptive
async def test_kafka_down_orders_accepted_events_delivered_after_restart(oms: OmsEnv, stack: object) -> None:
    async with oms.client() as client:
        await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="k-before")
        await eventually(lambda: _unpublished_is(oms, 0), what="the first event published")
        await asyncio.to_thread(stack.stop, "kafka")  # type: ignore[attr-defined]
        try:
            for i in range(10):
                r = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id=f"k-{i}")
                assert r.created and r.order.status == orders_pb2.ORDER_STATUS_ACCEPTED
            assert await _unpublished_is(oms, 10), "the events wait in the outbox"
        finally:
            await asyncio.to_thread(stack.start, "kafka")  # type: ignore[attr-defined]
    await eventually(
        lambda: _unpublished_is(oms, 0), timeout_s=90, what="the outbox to drain after Kafka returned"
    )
    published = await read_events(oms.kafka, oms.events_topic, expect=11, timeout_s=30)
    assert {e.event_id for e in published} == await db_event_ids(oms)


def _spawn(env: OmsEnv, port: int) -> subprocess.Popen[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIPX_OMS_")}
    environ.update(
        {
            "AIPX_POSTGRES_DSN": env.dsn,
            "AIPX_REDIS_URL": env.redis_url,
            "AIPX_KAFKA_BOOTSTRAP_SERVERS": env.kafka,
            "AIPX_METRICS_PORT": "0",
            "AIPX_LOG_LEVEL": "WARNING",
            "AIPX_OMS_GRPC_HOST": "127.0.0.1",
            "AIPX_OMS_GRPC_PORT": str(port),
            "AIPX_OMS_ORDER_EVENTS_TOPIC": env.events_topic,
            "AIPX_OMS_MARKET_DATA_TOPIC": env.market_topic,
            "AIPX_OMS_REDIS_KEY_PREFIX": f"test-kill:{uuid.uuid4().hex}",
        }
    )
    return subprocess.Popen([sys.executable, "-m", "aipx_oms"], env=environ)


async def _wait_serving(target: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while loop.time() < until:
            assert proc.poll() is None, f"OMS process exited with {proc.returncode}"
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"OMS at {target} not serving after {timeout_s}s")


async def test_sigkill_during_a_burst_loses_no_acknowledged_order_or_event(oms_env: OmsEnv) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    proc = _spawn(oms_env, port)
    acknowledged: set[str] = set()
    try:
        await _wait_serving(target, proc)
        async with OmsClient(target, KEY_A, timeout_s=5) as client:
            stop = asyncio.Event()

            async def worker(w: int) -> None:
                i = 0
                while not stop.is_set():
                    coid = f"burst-{w}-{i}"
                    i += 1
                    try:
                        r = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id=coid)
                    except grpc.aio.AioRpcError:
                        return  # the process died under this call: not acknowledged
                    assert r.order.status == orders_pb2.ORDER_STATUS_ACCEPTED
                    acknowledged.add(coid)

            workers = [asyncio.create_task(worker(w)) for w in range(24)]
            await eventually(lambda: _acked(acknowledged, 150), what="a burst under way")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            stop.set()
            await asyncio.gather(*workers)
        assert len(acknowledged) >= 150
        proc = _spawn(oms_env, port)
        await _wait_serving(target, proc)
        async with OmsClient(target, KEY_A, timeout_s=10) as client:
            stored = {o.client_order_id async for o in client.all_orders()}
            missing = acknowledged - stored
            assert not missing, f"{len(missing)} acknowledged orders lost: {sorted(missing)[:5]}"
            event_ids = await db_event_ids(oms_env)
            assert len(event_ids) == len(stored), "one ACCEPTED event per stored order"
            published = await read_events(
                oms_env.kafka, oms_env.events_topic, expect=len(event_ids), timeout_s=30
            )
            assert {e.event_id for e in published} == event_ids, "after de-dup: every event exactly once"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


async def _acked(acknowledged: set[str], n: int) -> bool:
    return len(acknowledged) >= n


async def test_published_outbox_rows_are_pruned_and_unpublished_ones_kept(oms_env: OmsEnv) -> None:
    await oms_env.start(relay_prune_after_s=0.5, relay_prune_every_s=0.2)
    async with oms_env.client() as a:
        for i in range(4):
            await a.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id=f"p{i}")
    published = await read_events(oms_env.kafka, oms_env.events_topic, expect=4)
    assert len(published) == 4

    async def outbox_empty() -> bool:
        return bool((await oms_env.sql("SELECT count(*) AS n FROM outbox"))[0]["n"] == 0)

    await eventually(outbox_empty, what="published outbox rows pruned")
    assert len(await db_event_ids(oms_env)) == 4, "the events themselves stay in order_events"
    assert oms_env.app is not None and oms_env.app.relay is not None and oms_env.app.relay.pruned == 4

    # A row not yet published is never pruned, however old.
    await oms_env.stop()
    await oms_env.sql(
        "INSERT INTO order_events (log_sequence, event_id, account_id, order_id, sequence, type, symbol,"
        " event_time_ns, payload) SELECT 1000, gen_random_uuid(), account_id, order_id, 99, 'ACCEPTED',"
        " symbol, 1, ''::bytea FROM orders LIMIT 1"
    )
    await oms_env.sql("INSERT INTO outbox (log_sequence, created_at) VALUES (1000, now() - interval '1 day')")
    store_conn = await asyncpg.connect(oms_env.dsn)
    try:
        assert await prune_published(store_conn, 0.0) == 0
    finally:
        await store_conn.close()
    assert (await oms_env.sql("SELECT count(*) AS n FROM outbox"))[0]["n"] == 1
