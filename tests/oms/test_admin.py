"""The admin service against a real OMS (PostgreSQL, Redis, Kafka): every action with its audit row and its
`admin-events` record, the operator credential scope, revocation within a second in another process's cache,
HALTED with cancel-all, the platform halt, the ledger through PostLedgerEntry and GetAccount/StreamAccount."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from aiokafka.errors import KafkaConnectionError
from aipx.clients.admin import AdminClient
from aipx.clients.oms import OmsClient
from aipx.kafka import create_consumer
from aipx.serde import decode
from aipx.settings import KafkaSettings
from aipx.v1 import admin_pb2, admin_pb2_grpc, common_pb2, orders_pb2
from aipx_oms.admin.notify import AdminNotifier
from aipx_oms.admin.relay import AdminEventRelay
from aipx_oms.auth import ApiKeyAuthenticator
from aipx_oms.store.admin import (
    ApiKeyConflictError,
    add_api_key,
    add_operator_token,
    append_audit,
    not_local_stack,
)
from aipx_oms.store.postgres import OmsStore
from prometheus_client import REGISTRY

from .binance_stub import BinanceStub
from .conftest import KEY_A, KEY_B, OmsEnv, eventually
from .helpers import CuttableProxy, publish_market, trade
from .test_venue_outcome import API_KEY, SECRET, venue_settings

OPERATOR = "alice"
TOKEN = "operator-token-alice"
BUY = common_pb2.SIDE_BUY
HALTED = admin_pb2.TRADING_STATE_HALTED
ACTIVE = admin_pb2.TRADING_STATE_ACTIVE


@dataclass
class AdminEnv:
    oms: OmsEnv
    events_topic: str

    def client(self, token: str = TOKEN) -> AdminClient:
        return AdminClient(self.oms.target, token, timeout_s=20.0)


async def _add_operator(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await add_operator_token(conn, OPERATOR, TOKEN)
    finally:
        await conn.close()


@pytest.fixture
async def admin(oms_env: OmsEnv, new_topic: Callable[..., Awaitable[str]]) -> AsyncIterator[AdminEnv]:
    await _add_operator(oms_env.dsn)
    topic = await new_topic(3)
    await oms_env.start(admin_events_topic=topic, auth_failures_per_minute=5)
    yield AdminEnv(oms_env, topic)


async def read_admin_events(
    bootstrap: str, topic: str, expect: int, timeout_s: float = 30.0
) -> list[tuple[bytes, admin_pb2.AdminEvent]]:
    consumer = create_consumer(
        topic, settings=KafkaSettings(bootstrap_servers=bootstrap), client_id="admin-test", group_id=None
    )
    await consumer.start()
    out: list[tuple[bytes, admin_pb2.AdminEvent]] = []
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while len(out) < expect and loop.time() < until:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend((r.key or b"", decode(r.value, r.headers, admin_pb2.AdminEvent)) for r in records)
    finally:
        await consumer.stop()
    return out


async def rpc_error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    return exc.value


async def test_every_action_is_audited_and_published(admin: AdminEnv) -> None:
    oms = admin.oms
    async with admin.client() as ops, oms.client(KEY_A) as a:
        account = await ops.create_account(
            "acct-new", "New", risk_limits=admin_pb2.RiskLimits(max_open_orders=7)
        )
        assert account.trading_state == ACTIVE and account.risk_limits.max_open_orders == 7
        assert (await rpc_error(ops.create_account("acct-new"))).code() is grpc.StatusCode.ALREADY_EXISTS
        limited = await ops.set_risk_limits(
            "acct-new", admin_pb2.RiskLimits(max_order_notional=common_pb2.Decimal(value="5000"))
        )
        assert (
            limited.risk_limits.max_order_notional.value == "5000"
            and limited.risk_limits.max_open_orders == 0
        )
        issued = await ops.issue_api_key("acct-new", "bot")
        assert issued.api_key.startswith("aipx-") and issued.key.key_id.startswith("k-")
        rotated = await ops.rotate_api_key(issued.key.key_id, "scheduled")
        assert rotated.revoked.revoked_time_ns > 0 and rotated.api_key != issued.api_key
        revoked = await ops.revoke_api_key(rotated.key.key_id, "leaked")
        assert revoked.revoked_time_ns > 0
        instrument = orders_pb2.Instrument(
            symbol="DOGE-USDT", base_asset="DOGE", quote_asset="USDT",
            tick_size=common_pb2.Decimal(value="0.0001"), lot_size=common_pb2.Decimal(value="1"),
            trading=True,
        )  # fmt: skip
        assert (await ops.upsert_instrument(instrument)).created
        instrument.trading = False
        assert not (await ops.upsert_instrument(instrument)).created
        await ops.set_trading_state("acct-new", admin_pb2.TRADING_STATE_REDUCING, "margin call")
        await ops.set_platform_halt(True, "exchange incident")
        await ops.set_platform_halt(False, "resolved")
        placed = await a.submit("ETH-USDT", BUY, "0.1", price="1000")
        cancelled = await ops.cancel_order("acct-a", placed.order.order_id, "fat finger")
        assert cancelled.status in (orders_pb2.ORDER_STATUS_CANCELED, orders_pb2.ORDER_STATUS_PENDING_CANCEL)
        posted = await ops.post_ledger_entry(
            "acct-new", "USDT", admin_pb2.LEDGER_ENTRY_TYPE_DEPOSIT, "250.5", "wire 42", idempotency_key="w42"
        )
        assert posted.created and posted.balance.value == "250.5"
        records = list(reversed(await ops.audit_log(limit=100)))
    actions = [r.action for r in records]
    assert actions == [
        "CreateAccount", "SetRiskLimits", "IssueApiKey", "RotateApiKey", "RevokeApiKey", "UpsertInstrument",
        "UpsertInstrument", "SetTradingState", "SetPlatformHalt", "SetPlatformHalt", "CancelOrder",
        "PostLedgerEntry",
    ]  # fmt: skip
    assert all(r.actor == OPERATOR and r.time_ns > 0 for r in records)
    state = records[7]
    assert json.loads(state.before_json)["state"] == "ACTIVE"
    assert json.loads(state.after_json)["state"] == "REDUCING" and state.reason == "margin call"
    assert json.loads(records[6].before_json)["trading"] is True
    assert json.loads(records[6].after_json)["trading"] is False
    assert json.loads(records[4].after_json)["revoke_reason"] == "leaked"
    assert json.loads(records[11].after_json)["amount"] == "250.5"
    # Published: one AdminEvent per audit record, keyed by account, with the audit record's event id.
    events = await read_admin_events(oms.kafka, admin.events_topic, expect=len(records))
    by_audit = {e.record.audit_id: (key, e) for key, e in events}
    assert set(by_audit) == {r.audit_id for r in records}
    for record in records:
        key, event = by_audit[record.audit_id]
        assert key == record.account_id.encode() and event.record == record
    rows = await oms.sql("SELECT count(*) AS n FROM admin_outbox WHERE published_at IS NULL")
    assert rows[0]["n"] == 0
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await oms.sql("DELETE FROM admin_audit")


async def test_account_keys_cannot_call_the_admin_service(admin: AdminEnv) -> None:
    async with admin.client(KEY_A) as as_token, OmsClient(admin.oms.target, TOKEN) as operator_as_account:
        error = await rpc_error(as_token.list_accounts())
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
        stub = admin_pb2_grpc.AdminServiceStub(as_token.channel)
        error = await rpc_error(
            stub.ListAccounts(admin_pb2.ListAccountsRequest(), metadata=(("x-api-key", KEY_A),), timeout=10)
        )
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "account API key cannot call the admin service" in (error.details() or "")
        # ...and an operator token is no API key either.
        error = await rpc_error(operator_as_account.positions())
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_failed_authentication_is_limited_per_source(admin: AdminEnv) -> None:
    async with admin.client() as right, admin.client("wrong-1") as wrong:
        assert {a.account_id for a in await right.list_accounts()} >= {"acct-a", "acct-b"}  # now cached
        codes = [(await rpc_error(wrong.list_accounts())).code() for _ in range(5)]
        assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 5
        error = await rpc_error(wrong.list_accounts())
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many failed authentications from ipv4:127.0.0.1" in (error.details() or "")
        # The host's budget is spent: uncached credentials from it wait; a cached one still works.
        assert len(await right.list_accounts()) >= 2


async def test_unknown_keys_are_remembered_and_failures_budgeted() -> None:
    lookups: list[str] = []

    async def lookup(key: str) -> str | None:
        lookups.append(key)
        return "acct" if key == "good" else None

    auth = ApiKeyAuthenticator(lookup, failures_per_minute=3)
    auth.live = True
    for _ in range(3):
        assert await auth.account_for("bad", "peer-1") is None
    assert lookups == ["bad"]  # the negative cache: one round trip for a repeated unknown key
    assert await auth.account_for("bad-2", "peer-1") is None  # the budget of peer-1 is spent now...
    assert await auth.account_for("bad-3", "peer-1") is None
    assert lookups == ["bad"]
    assert await auth.account_for("good", "peer-2") == "acct"  # ...other sources are not affected
    assert lookups == ["bad", "good"]


async def test_revocation_is_effective_within_a_second_in_every_process(admin: AdminEnv) -> None:
    oms = admin.oms
    # "Another OMS process": its own store, authenticator (30 s cache) and LISTEN connection, same database.
    other_store = await OmsStore.connect(oms.dsn, min_size=1, max_size=2)
    other_auth = ApiKeyAuthenticator(other_store.account_for_key, ttl_s=30.0)
    notifier = AdminNotifier(oms.dsn)
    notifier.feed(other_auth)
    await notifier.start()
    try:
        assert other_auth.live
        async with admin.client() as ops:
            issued = await ops.issue_api_key("acct-b", "short-lived")
            async with OmsClient(oms.target, issued.api_key, timeout_s=10) as holder:
                assert len(await holder.instruments()) >= 5  # cached in the OMS now
                assert await other_auth.account_for(issued.api_key) == "acct-b"  # cached in the other one
                await ops.revoke_api_key(issued.key.key_id, "test")
                revoked_at = time.monotonic()  # committed: from here on, a second at most

                async def refused_everywhere() -> bool:
                    if await other_auth.account_for(issued.api_key) is not None:
                        return False
                    try:
                        await holder.instruments()
                    except grpc.aio.AioRpcError as exc:
                        return exc.code() is grpc.StatusCode.UNAUTHENTICATED
                    return False

                await eventually(refused_everywhere, timeout_s=5, what="the revoked key refused")
                assert time.monotonic() - revoked_at < 1.0
    finally:
        await notifier.stop()
        await other_store.close()


async def test_reregistering_a_key_never_moves_or_unrevokes_it(admin: AdminEnv) -> None:
    conn = await asyncpg.connect(admin.oms.dsn)
    try:
        assert await add_api_key(conn, "acct-a", KEY_A) == KEY_A  # same account: a no-op
        with pytest.raises(ApiKeyConflictError, match="another account"):
            await add_api_key(conn, "acct-b", KEY_A)
        await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE account_id = 'acct-b'")
        with pytest.raises(ApiKeyConflictError, match="revoked"):
            await add_api_key(conn, "acct-b", KEY_B)
        rows = await conn.fetch("SELECT account_id, revoked_at FROM api_keys ORDER BY account_id")
        assert [(r["account_id"], r["revoked_at"] is None) for r in rows] == [
            ("acct-a", True),
            ("acct-b", False),
        ]
    finally:
        await conn.close()


async def test_halted_with_cancel_all(admin: AdminEnv) -> None:
    async with admin.client() as ops, admin.oms.client(KEY_A) as a, admin.oms.client(KEY_B) as b:
        placed = [await a.submit("ETH-USDT", BUY, "0.1", price=str(1000 + i)) for i in range(3)]
        other = await b.submit("ETH-USDT", BUY, "0.1", price="1000")
        response = await ops.set_trading_state("acct-a", HALTED, "risk breach", cancel_working_orders=True)
        assert (
            response.account.trading_state == HALTED
            and response.account.trading_state_reason == "risk breach"
        )
        assert sorted(response.cancelled_order_ids) == sorted(p.order.order_id for p in placed)

        async def all_canceled() -> bool:
            orders = [await a.get(order_id=p.order.order_id) for p in placed]
            return all(o.status == orders_pb2.ORDER_STATUS_CANCELED for o in orders)

        await eventually(all_canceled, what="the working orders canceled")
        assert (await b.get(order_id=other.order.order_id)).status == orders_pb2.ORDER_STATUS_ACCEPTED
        denied = await a.submit("ETH-USDT", BUY, "0.1", price="1000")
        assert denied.order.status == orders_pb2.ORDER_STATUS_DENIED
        assert denied.order.reject_reason == orders_pb2.REJECT_REASON_ACCOUNT_HALTED
        account = await a.account()
        assert account.trading_state == HALTED and account.trading_state_reason == "risk breach"
        actions = [r.action for r in await ops.audit_log("acct-a")]
        assert actions[:2] == ["CancelWorkingOrders", "SetTradingState"]
        await ops.set_trading_state("acct-a", ACTIVE, "cleared")
        again = await a.submit("ETH-USDT", BUY, "0.1", price="1000")
        assert again.order.status == orders_pb2.ORDER_STATUS_ACCEPTED
        bad = await rpc_error(ops.set_trading_state("acct-a", ACTIVE, "", cancel_working_orders=True))
        assert bad.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_halted_with_cancel_all_cancels_orders_still_on_their_way_to_the_venue(
    oms_env: OmsEnv, new_topic: Callable[..., Awaitable[str]]
) -> None:
    """Orders the venue has not acknowledged at the halt (the first on its way, the others queued behind it)
    are cancelled once they reach the venue, not refused there as unknown and left live afterwards."""
    await _add_operator(oms_env.dsn)
    stub = BinanceStub(API_KEY, SECRET)
    await stub.start()
    try:
        await oms_env.start(
            admin_events_topic=await new_topic(3),
            **{**venue_settings(stub), "binance_request_timeout_s": 30.0},  # held, not timed out
        )
        await eventually(_stub_connected(stub), what="the user-data stream connected")
        stub.hold_new_orders()
        async with AdminEnv(oms_env, "").client() as ops, oms_env.client(KEY_A) as a:
            placed = [
                (await a.submit("ETH-USDT", BUY, "2", price=str(1500 + i), venue="binance")).order
                for i in range(3)
            ]
            assert {p.status for p in placed} == {orders_pb2.ORDER_STATUS_ACCEPTED}
            ids = sorted(p.order_id for p in placed)

            async def held() -> bool:
                return stub.held == 1

            await eventually(held, what="the first order held on its way to the venue")
            assert not stub.orders, "the venue knows none of them yet"
            response = await ops.set_trading_state("acct-a", HALTED, "incident", cancel_working_orders=True)
            assert sorted(response.cancelled_order_ids) == ids
            stub.release_new_orders()

            async def all_canceled() -> bool:
                orders = [await a.get(order_id=i) for i in ids]
                return all(o.status == orders_pb2.ORDER_STATUS_CANCELED for o in orders)

            await eventually(all_canceled, timeout_s=30, what="every order canceled at the venue")
            assert [stub.orders[i]["status"] for i in ids] == ["CANCELED"] * 3, "none stays live at the venue"
            denied = await a.submit("ETH-USDT", BUY, "2", price="1500", venue="binance")
            assert denied.order.reject_reason == orders_pb2.REJECT_REASON_ACCOUNT_HALTED
            [halt] = [r for r in await ops.audit_log("acct-a") if r.action == "SetTradingState"]
            assert json.loads(halt.after_json)["cancel_working_orders"] is True
            resumed = await ops.set_trading_state("acct-a", ACTIVE, "venue back")
            assert resumed.account.trading_state == ACTIVE
    finally:
        await oms_env.stop()
        await stub.stop()


def _stub_connected(stub: BinanceStub) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return stub.connected > 0

    return check


async def test_halted_with_cancel_all_cancels_orders_committed_while_it_is_applied(admin: AdminEnv) -> None:
    """Orders submitted concurrently with the halt: each one is DENIED (checked after the halt) or, accepted
    (checked before it, possibly committed after its list of working orders was read), ends CANCELED."""
    oms = admin.oms
    stop = asyncio.Event()
    accepted: list[str] = []

    async def submitting(n: int) -> None:
        async with oms.client(KEY_A) as a:
            i = 0
            while not stop.is_set():
                i += 1
                response = await a.submit("ETH-USDT", BUY, "0.1", price="1000", client_order_id=f"r{n}-{i}")
                if response.order.status == orders_pb2.ORDER_STATUS_ACCEPTED:
                    accepted.append(response.order.order_id)
                elif response.order.reject_reason == orders_pb2.REJECT_REASON_ACCOUNT_HALTED:
                    return

    async with admin.client() as ops, oms.client(KEY_A) as a:
        loops = [asyncio.create_task(submitting(n)) for n in range(4)]
        try:
            await eventually(_count_at_least(accepted, 20), what="orders flowing")
            response = await ops.set_trading_state("acct-a", HALTED, "drill", cancel_working_orders=True)
            async with asyncio.timeout(30):
                await asyncio.gather(*loops)  # each loop ends at its first ACCOUNT_HALTED denial
        finally:
            stop.set()
            await asyncio.gather(*loops, return_exceptions=True)
        late = set(accepted) - set(response.cancelled_order_ids)
        print(f"{len(accepted)} accepted, {len(late)} not in the halt's list (cancelled as they went live)")

        async def none_working() -> bool:
            rows = await oms.sql(
                "SELECT status, count(*) AS n FROM orders WHERE account_id = 'acct-a' GROUP BY status"
            )
            return {r["status"] for r in rows} <= {"CANCELED", "DENIED"}

        await eventually(none_working, timeout_s=30, what="every accepted order canceled")
        assert len((await a.list_orders(open_only=True)).orders) == 0


def _count_at_least(items: list[str], n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(items) >= n

    return check


async def test_platform_halt_denies_new_orders_for_every_account(admin: AdminEnv) -> None:
    async with admin.client() as ops, admin.oms.client(KEY_A) as a, admin.oms.client(KEY_B) as b:
        resting = await a.submit("ETH-USDT", BUY, "0.1", price="1000")
        await ops.set_platform_halt(True, "incident")
        for client in (a, b):
            denied = await client.submit("ETH-USDT", BUY, "0.1", price="1000")
            assert denied.order.reject_reason == orders_pb2.REJECT_REASON_ACCOUNT_HALTED
            assert "platform is halted" in denied.order.reject_message
        assert (await a.account()).platform_halted
        canceled = await a.cancel(order_id=resting.order.order_id)  # cancels still work
        assert canceled.status in (orders_pb2.ORDER_STATUS_CANCELED, orders_pb2.ORDER_STATUS_PENDING_CANCEL)
        await ops.set_platform_halt(False, "over")
        ok = await b.submit("ETH-USDT", BUY, "0.1", price="1000")
        assert ok.order.status == orders_pb2.ORDER_STATUS_ACCEPTED


async def test_ledger_entries_and_account_view(admin: AdminEnv) -> None:
    oms = admin.oms
    # A cash account (the harness makes acct-a a margin account for the order-path tests).
    await oms.sql("UPDATE accounts SET allow_negative_balances = false WHERE account_id = 'acct-a'")
    async with admin.client() as ops, oms.client(KEY_A) as a:
        stream = a.account_updates(min_interval_ms=50)
        first = await anext(stream)
        assert first.account_id == "acct-a" and list(first.balances) == []
        deposit = await ops.post_ledger_entry(
            "acct-a", "USDT", admin_pb2.LEDGER_ENTRY_TYPE_DEPOSIT, "1000", "funding", idempotency_key="f1"
        )
        repeat = await ops.post_ledger_entry(
            "acct-a", "USDT", admin_pb2.LEDGER_ENTRY_TYPE_DEPOSIT, "1000", "funding", idempotency_key="f1"
        )
        assert deposit.created and not repeat.created and repeat.entry_id == deposit.entry_id
        update = await asyncio.wait_for(anext(stream), 10)  # the stream follows the ledger
        assert [(x.asset, x.total.value) for x in update.balances] == [("USDT", "1000")]
        await ops.post_ledger_entry(
            "acct-a", "BTC", admin_pb2.LEDGER_ENTRY_TYPE_DEPOSIT, "0.5", "transfer in"
        )
        await ops.post_ledger_entry(
            "acct-a", "USDT", admin_pb2.LEDGER_ENTRY_TYPE_ADJUSTMENT, "-0.25", "fee fix"
        )
        error = await rpc_error(
            ops.post_ledger_entry(
                "acct-a", "USDT", admin_pb2.LEDGER_ENTRY_TYPE_WITHDRAWAL, "5000", "too much"
            )
        )
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and "insufficient USDT" in (
            error.details() or ""
        )
        for bad_type, amount in (
            (admin_pb2.LEDGER_ENTRY_TYPE_FEE, "1"),
            (admin_pb2.LEDGER_ENTRY_TYPE_DEPOSIT, "-1"),
        ):
            error = await rpc_error(ops.post_ledger_entry("acct-a", "USDT", bad_type, amount, "x"))
            assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        error = await rpc_error(
            ops.post_ledger_entry("nobody", "USDT", admin_pb2.LEDGER_ENTRY_TYPE_DEPOSIT, "1", "x")
        )
        assert error.code() is grpc.StatusCode.NOT_FOUND
        await publish_market(oms.kafka, oms.market_topic, [trade("BTC-USDT", "60000")])

        async def priced() -> bool:
            return not (await a.account()).unpriced_assets

        await eventually(priced, what="a BTC mark")
        account = await a.account()
        balances = {x.asset: x for x in account.balances}
        assert balances["USDT"].total.value == "999.75" and balances["USDT"].free.value == "999.75"
        assert balances["USDT"].locked.value == "0"
        assert balances["BTC"].mark_price.value == "60000" and balances["BTC"].value.value == "30000.0"
        assert Decimal(account.equity.value) == Decimal("30999.75") and account.valuation_asset == "USDT"
        assert account.trading_state == ACTIVE and not account.platform_halted
        await stream.aclose()


def test_seed_recognizes_the_local_stack() -> None:
    env = {"AIPX_STACK_POSTGRES_PORT": "28432"}
    assert not_local_stack("postgresql://u:p@127.0.0.1:28432/aipx", env) is None
    assert not_local_stack("postgresql://u:p@localhost:28432/aipx", env) is None
    assert "loopback" in (not_local_stack("postgresql://u:p@db.prod.internal:28432/aipx", env) or "")
    assert "port 5432" in (not_local_stack("postgresql://u:p@127.0.0.1/aipx", env) or "")
    assert not_local_stack("postgresql://u:p@127.0.0.1:15432/aipx", {}) is None


async def test_a_cut_notification_link_falls_back_to_one_second_caches(admin: AdminEnv) -> None:
    dsn = urlsplit(admin.oms.dsn)
    proxy = CuttableProxy(dsn.hostname or "127.0.0.1", dsn.port or 5432)
    port = await proxy.start()
    proxied = urlunsplit(dsn._replace(netloc=f"{dsn.username}:{dsn.password}@127.0.0.1:{port}"))
    store = await OmsStore.connect(admin.oms.dsn, min_size=1, max_size=2)
    auth = ApiKeyAuthenticator(store.account_for_key, ttl_s=30.0)
    notifier = AdminNotifier(proxied)
    notifier.feed(auth)
    await notifier.start()
    try:
        assert auth.live and await auth.account_for(KEY_B) == "acct-b"
        proxy.cut()

        async def degraded() -> bool:
            return not auth.live

        await eventually(degraded, timeout_s=10, what="the lost LISTEN link noticed")
        # A revocation this process is not told about still bites within a second.
        assert await auth.account_for(KEY_B) == "acct-b"
        await admin.oms.sql("UPDATE api_keys SET revoked_at = now() WHERE account_id = 'acct-b'")
        revoked_at = time.monotonic()

        async def refused() -> bool:
            return await auth.account_for(KEY_B) is None

        await eventually(refused, timeout_s=5, what="the revoked key refused")
        assert time.monotonic() - revoked_at < 1.2
        proxy.restore()

        async def live_again() -> bool:
            return auth.live

        await eventually(live_again, timeout_s=15, what="the LISTEN link back")
    finally:
        await notifier.stop()
        await proxy.stop()
        await store.close()


async def test_admin_events_wait_while_kafka_is_unreachable(
    oms_env: OmsEnv, new_topic: Callable[..., Awaitable[str]]
) -> None:
    topic = await new_topic(1)
    store = await OmsStore.connect(oms_env.dsn, min_size=1, max_size=2)
    with socket.socket() as s:  # a port nothing listens on: a stopped broker
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    try:
        async with store.pool.acquire() as conn, conn.transaction():
            record = await append_audit(conn, actor="ops", action="Test", account_id="acct-a", after={"x": 1})
        down = AdminEventRelay(
            store.pool,
            KafkaSettings(bootstrap_servers=f"127.0.0.1:{dead}", request_timeout_ms=2000),
            topic=topic,
        )
        with pytest.raises(KafkaConnectionError):
            await down.publish_once()
        await down.stop()
        rows = await oms_env.sql("SELECT published_at FROM admin_outbox WHERE audit_id = $1", record.audit_id)
        assert rows[0]["published_at"] is None  # waiting, not lost
        up = AdminEventRelay(store.pool, KafkaSettings(bootstrap_servers=oms_env.kafka), topic=topic)
        try:
            assert await up.publish_once() == 1
            assert await up.publish_once() == 0
        finally:
            await up.stop()
        [(key, event)] = await read_admin_events(oms_env.kafka, topic, expect=1)
        assert key == b"acct-a" and event.event_id == record.event_id and event.record.action == "Test"
    finally:
        await store.close()


async def test_admin_calls_have_their_own_metric_labels(admin: AdminEnv) -> None:
    labels = {"method": "AdminListAccounts", "code": "OK"}
    before = REGISTRY.get_sample_value("aipx_oms_requests_total", labels) or 0.0
    async with admin.client() as ops:
        await ops.list_accounts()
    assert REGISTRY.get_sample_value("aipx_oms_requests_total", labels) == before + 1


async def test_account_fee_overrides_are_set_audited_and_cleared(admin: AdminEnv) -> None:
    """SetAccountFees writes the account's rate overrides (the columns the order path charges: see
    test_money_path's account fee test), audits them, refuses out-of-range rates and clears them with ''."""
    async with admin.client() as ops:
        summary = await ops.set_account_fees("acct-b", "0.0002", "0.0007")
        assert (summary.maker_fee_rate.value, summary.taker_fee_rate.value) == ("0.0002", "0.0007")
        rows = await admin.oms.sql(
            "SELECT maker_fee_rate, taker_fee_rate FROM accounts WHERE account_id = 'acct-b'"
        )
        assert (rows[0]["maker_fee_rate"], rows[0]["taker_fee_rate"]) == (
            Decimal("0.0002"),
            Decimal("0.0007"),
        )
        for bad in ("1", "-0.001", "1e400"):
            error = await rpc_error(ops.set_account_fees("acct-b", bad, ""))
            assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        cleared = await ops.set_account_fees("acct-b")
        assert (cleared.maker_fee_rate.value, cleared.taker_fee_rate.value) == ("", "")
        error = await rpc_error(ops.set_account_fees("no-such-account", "0.001", "0.001"))
        assert error.code() is grpc.StatusCode.NOT_FOUND
        records = [
            r for r in await ops.audit_log(account_id="acct-b", limit=10) if r.action == "SetAccountFees"
        ]
    assert len(records) == 2  # the refused calls changed nothing and wrote nothing
    latest, first = records
    assert json.loads(first.before_json)["fee_rates"] == {"maker": None, "taker": None}
    assert json.loads(first.after_json)["fee_rates"] == {"maker": "0.0002", "taker": "0.0007"}
    assert json.loads(latest.after_json)["fee_rates"] == {"maker": None, "taker": None}
    # Both changes are published as AdminEvents keyed by the account, each its audit record.
    events = await read_admin_events(admin.oms.kafka, admin.events_topic, expect=2)
    published = {e.record.audit_id: (k, e.record) for k, e in events if e.record.action == "SetAccountFees"}
    assert published == {r.audit_id: (b"acct-b", r) for r in records}
