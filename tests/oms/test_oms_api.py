"""The OMS over a real gRPC socket with real PostgreSQL/Redis/Kafka: submit, idempotency, auth, validation,
risk denials, cancel/replace, pagination, positions, instruments, health, reflection."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest
from aipx.clients.oms import OmsClient
from aipx.v1 import common_pb2, oms_pb2, oms_pb2_grpc, orders_pb2
from aipx_oms.venues.paper import PaperVenue
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from tests.oms.conftest import KEY_A, KEY_B, OmsEnv

pytestmark = pytest.mark.integration

BUY, SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL


def violations(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, "INVALID_ARGUMENT must carry a google.rpc.Status"
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


async def test_submit_get_and_200_concurrent_duplicates_make_one_order(oms: OmsEnv) -> None:
    async with oms.client() as client:
        coid = f"dup-{uuid.uuid4().hex[:8]}"
        responses = await asyncio.gather(
            *(client.submit("BTC-USDT", BUY, "0.01", price="20000", client_order_id=coid) for _ in range(200))
        )
        ids = {r.order.order_id for r in responses}
        assert len(ids) == 1, "every duplicate returns the one original order"
        assert sum(r.created for r in responses) == 1, "exactly one call created it"
        assert all(r.order.status == orders_pb2.ORDER_STATUS_ACCEPTED for r in responses)
        rows = await oms.sql("SELECT count(*) AS n FROM orders WHERE client_order_id = $1", coid)
        assert rows[0]["n"] == 1
        events = await oms.sql("SELECT type FROM order_events WHERE order_id = $1", ids.pop())
        assert [e["type"] for e in events] == ["ACCEPTED"], "one ACCEPTED event, nothing for the repeats"
        # A later repeat (not concurrent) is answered from PostgreSQL's unique constraint.
        again = await client.submit("BTC-USDT", BUY, "0.01", price="20000", client_order_id=coid)
        assert not again.created and again.order.order_id == responses[0].order.order_id
        got = await client.get(client_order_id=coid)
        assert got.order_id == again.order.order_id and got.leaves_quantity.value == "0.01"


async def test_authentication_and_cross_account_isolation(oms: OmsEnv) -> None:
    async with oms.client(KEY_A) as a, oms.client(KEY_B) as b, OmsClient(oms.target, "wrong-key") as anon:
        placed = await a.submit("ETH-USDT", BUY, "0.1", price="1000")
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await anon.get(order_id=placed.order.order_id)
        assert exc.value.code() is grpc.StatusCode.UNAUTHENTICATED
        stub = oms_pb2_grpc.OmsServiceStub(a.channel)
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stub.ListInstruments(oms_pb2.ListInstrumentsRequest())  # no metadata at all
        assert exc.value.code() is grpc.StatusCode.UNAUTHENTICATED
        for call in (
            b.get(order_id=placed.order.order_id),
            b.cancel(order_id=placed.order.order_id),
            b.replace(order_id=placed.order.order_id, price="1001"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await call
            assert exc.value.code() is grpc.StatusCode.NOT_FOUND
        assert [o.order_id async for o in b.all_orders()] == []
        assert placed.order.account_id == "acct-a"
        still = await a.get(order_id=placed.order.order_id)
        assert still.status == orders_pb2.ORDER_STATUS_ACCEPTED


def limit(coid: str, symbol: str, quantity: str, price: str, **extra: object) -> orders_pb2.OrderRequest:
    return orders_pb2.OrderRequest(
        client_order_id=coid,
        symbol=symbol,
        side=BUY,
        type=orders_pb2.ORDER_TYPE_LIMIT,
        time_in_force=orders_pb2.TIME_IN_FORCE_GTC,
        quantity=common_pb2.Decimal(value=quantity),
        price=common_pb2.Decimal(value=price),
        **extra,  # type: ignore[arg-type]
    )


async def test_invalid_requests_name_their_fields(oms: OmsEnv) -> None:
    async with oms.client() as client:
        cases = [
            (limit("", "BTC-USDT", "1", "1"), "order.client_order_id", "required"),
            (limit("x1", "NOPE-USDT", "1", ""), "order.symbol", "UNKNOWN_INSTRUMENT"),
            (limit("x2", "BTC-USDT", "0.1", "100.001"), "order.price", "INVALID_PRICE_INCREMENT"),
            (limit("x3", "BTC-USDT", "0.000001", "100"), "order.quantity", "INVALID_QUANTITY_INCREMENT"),
            (limit("x4", "BTC-USDT", "-1", "100"), "order.quantity", "must be positive"),
            (limit("x5", "BTC-USDT", "abc", "1"), "order.quantity", "not a decimal"),
            (
                limit("x6", "BTC-USDT", "1", "1", tags={f"k{i}": "v" * 300 for i in range(3)}),
                "order.tags",
                "values",
            ),
        ]
        for request, field, text in cases:
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await client.submit_request(request)
            assert exc.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            found = violations(exc.value)
            assert field in found and text in found[field], (field, found)
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.stub.CancelOrder(oms_pb2.CancelOrderRequest(), metadata=(("x-api-key", KEY_A),))
        assert set(violations(exc.value)) >= {"order_id", "idempotency_key"}
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.list_orders(page_size=501)
        assert "page_size" in violations(exc.value)
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.list_orders(page_token="%%%garbage")
        assert "page_token" in violations(exc.value)
        # Oversized requests (above AIPX_OMS_MAX_REQUEST_BYTES, 64 KiB) name their largest field.
        big = orders_pb2.OrderRequest(client_order_id="big", symbol="BTC-USDT", tags={"k": "v" * 300_000})
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.submit_request(big)
        assert exc.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        found = violations(exc.value)
        assert "exceeds the limit of 65536 bytes" in found["order.tags"], found
        # Beyond the transport's limit (AIPX_OMS_MAX_MESSAGE_BYTES, 1 MiB) gRPC refuses them unread.
        huge = orders_pb2.OrderRequest(client_order_id="huge", tags={"k": "v" * 2_000_000})
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.submit_request(huge)
        assert exc.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    rows = await oms.sql("SELECT count(*) AS n FROM orders")
    assert rows[0]["n"] == 0, "invalid requests create nothing"


async def test_pagination_and_filters(oms: OmsEnv) -> None:
    async with oms.client() as client:
        placed = []
        for i in range(7):
            symbol = "BTC-USDT" if i % 2 == 0 else "ETH-USDT"
            placed.append(
                (await client.submit(symbol, BUY, "0.01", price="1000", client_order_id=f"p{i}")).order
            )
        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            page = await client.list_orders(page_size=3, page_token=token)
            seen += [o.client_order_id for o in page.orders]
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert pages == 3
        assert seen == [f"p{i}" for i in reversed(range(7))], "newest first, each exactly once"
        btc = await client.list_orders(symbols=["BTC-USDT"])
        assert {o.client_order_id for o in btc.orders} == {"p0", "p2", "p4", "p6"}
        await client.cancel(client_order_id="p0")
        open_ = await client.list_orders(open_only=True)
        assert "p0" not in {o.client_order_id for o in open_.orders} and len(open_.orders) == 6
        canceled = await client.list_orders(statuses=[orders_pb2.ORDER_STATUS_CANCELED])
        assert [o.client_order_id for o in canceled.orders] == ["p0"]
        window = await client.stub.ListOrders(
            oms_pb2.ListOrdersRequest(
                created_after_ns=placed[2].created_time_ns, created_before_ns=placed[4].created_time_ns
            ),
            metadata=(("x-api-key", KEY_A),),
        )
        assert [o.client_order_id for o in window.orders] == ["p4", "p3", "p2"]


async def test_cancel_and_replace_are_idempotent_and_checked(oms: OmsEnv) -> None:
    async with oms.client() as client:
        order = (await client.submit("SOL-USDT", BUY, "2", price="100", client_order_id="cr-1")).order
        replaced = await client.replace(
            order_id=order.order_id, price="101.5", quantity="3", idempotency_key="r1"
        )
        assert (replaced.price.value, replaced.quantity.value) == ("101.5", "3")
        again = await client.replace(order_id=order.order_id, price="99", idempotency_key="r1")
        assert again.price.value == "101.5", (
            "a repeated replace key returns the first outcome, changes nothing"
        )
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.replace(order_id=order.order_id, price="101.505", idempotency_key="r2")
        assert exc.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "price" in violations(exc.value)
        results = await asyncio.gather(
            *(client.cancel(order_id=order.order_id, idempotency_key="c1") for _ in range(20))
        )
        assert {r.status for r in results} == {orders_pb2.ORDER_STATUS_CANCELED}
        types = [r["type"] for r in await oms.sql(
            "SELECT type FROM order_events WHERE order_id = $1 ORDER BY sequence", order.order_id
        )]  # fmt: skip
        assert types == ["ACCEPTED", "REPLACED", "PENDING_CANCEL", "CANCELED"]
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.cancel(order_id=order.order_id, idempotency_key="c2")
        assert exc.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "REJECT_REASON_ORDER_NOT_OPEN" in str(rpc_status.from_call(exc.value))  # type: ignore[arg-type]
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.replace(order_id=order.order_id, price="100", idempotency_key="r3")
        assert exc.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.cancel(order_id="no-such-order", idempotency_key="c3")
        assert exc.value.code() is grpc.StatusCode.NOT_FOUND


async def test_each_risk_denial_is_an_order_with_its_reason(oms: OmsEnv) -> None:
    await oms.sql(
        "UPDATE risk_limits SET max_order_notional = 10000, max_position_notional = 20000,"
        " max_open_orders = 3,"
        " price_band_bps = 500 WHERE account_id = 'acct-a'"
    )
    await oms.sql("INSERT INTO position_limits VALUES ('acct-a', 'SOL-USDT', 5)")
    await oms.sql("UPDATE instruments SET trading = false WHERE symbol = 'XRP-USDT'")
    assert oms.app is not None and oms.app.service is not None
    await oms.app.service.refresh()
    from aipx.v1.market_data_pb2 import MarketDataEnvelope, Trade

    oms.app.market.apply(
        MarketDataEnvelope(
            venue="binance", symbol="ETH-USDT", trade=Trade(price=common_pb2.Decimal(value="2000"))
        )
    )

    async def denied(client: OmsClient, *args: object, **kwargs: object) -> str:
        response = await client.submit(*args, **kwargs)  # type: ignore[arg-type]
        assert response.order.status == orders_pb2.ORDER_STATUS_DENIED, response
        return orders_pb2.RejectReason.Name(response.order.reject_reason).removeprefix("REJECT_REASON_")

    async with oms.client() as c:
        assert await denied(c, "BTC-USDT", BUY, "1", price="20000") == "MAX_NOTIONAL_EXCEEDED"
        assert await denied(c, "ETH-USDT", BUY, "1", price="2200") == "PRICE_BAND_EXCEEDED"
        assert await denied(c, "SOL-USDT", BUY, "6", price="100") == "MAX_POSITION_EXCEEDED"
        assert await denied(c, "XRP-USDT", BUY, "10", price="1") == "INSTRUMENT_NOT_TRADING"
        assert await denied(c, "BTC-USDT", BUY, "0.00001", price="1000") == "MIN_NOTIONAL_NOT_MET"
        assert (
            await denied(c, "SOL-USDT", SELL, "1", price="100", reduce_only=True) == "REDUCE_ONLY_VIOLATION"
        )
        assert (
            await denied(c, "BNB-USDT", BUY, "1", order_type=orders_pb2.ORDER_TYPE_MARKET) == "NO_MARKET_DATA"
        )
        for i in range(3):
            ok = await c.submit("ETH-USDT", BUY, "0.01", price="2000", client_order_id=f"open-{i}")
            assert ok.order.status == orders_pb2.ORDER_STATUS_ACCEPTED
        assert await denied(c, "ETH-USDT", BUY, "0.01", price="2000") == "MAX_OPEN_ORDERS_EXCEEDED"
        await oms.sql("UPDATE accounts SET state = 'REDUCING' WHERE account_id = 'acct-a'")
        await oms.app.service.refresh()
        assert await denied(c, "ETH-USDT", SELL, "0.01", price="2000") == "ACCOUNT_REDUCING"
        await oms.sql("UPDATE accounts SET state = 'HALTED' WHERE account_id = 'acct-a'")
        await oms.app.service.refresh()
        assert await denied(c, "ETH-USDT", BUY, "0.01", price="2000") == "ACCOUNT_HALTED"
        canceled = await c.cancel(client_order_id="open-0")
        assert canceled.status == orders_pb2.ORDER_STATUS_CANCELED, "cancels are allowed while HALTED"
        # the rate limit: a tiny bucket for account B
        await oms.sql("UPDATE risk_limits SET rate_per_s = 1, rate_burst = 2 WHERE account_id = 'acct-b'")
        await oms.app.service.refresh()
    async with oms.client(KEY_B) as b:
        results = await asyncio.gather(*(b.submit("ETH-USDT", BUY, "0.01", price="2000") for _ in range(5)))
        reasons = sorted(orders_pb2.RejectReason.Name(r.order.reject_reason) for r in results)
        assert (
            reasons.count("REJECT_REASON_RATE_LIMITED") == 3
            and reasons.count("REJECT_REASON_UNSPECIFIED") == 2
        )
    counts = {
        r["type"]: r["n"] for r in await oms.sql("SELECT type, count(*) AS n FROM order_events GROUP BY type")
    }
    assert counts["DENIED"] == 13, "every denial is logged as a DENIED event"


async def test_instruments_health_and_reflection(oms: OmsEnv) -> None:
    async with oms.client() as client:
        symbols = [i.symbol for i in await client.instruments()]
        assert symbols == sorted(["BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT", "XRP-USDT"])
        health: Any = health_pb2_grpc.HealthStub(client.channel)
        for service in ("", "aipx.v1.OmsService"):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        channel: Any = client.channel
        reflect: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = [s.name async for r in responses for s in r.list_services_response.service]
        assert "aipx.v1.OmsService" in names and "grpc.health.v1.Health" in names


async def test_deadline_is_honoured(oms: OmsEnv) -> None:
    async with oms.client() as client:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.submit(
                "BTC-USDT", BUY, "0.01", price="1000", client_order_id="late", timeout_s=0.000001
            )
        assert exc.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.sleep(0.3)
        # whatever happened, a retry with the same id gives one order
        retry = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="late")
        assert retry.order.client_order_id == "late"
        # Calls cut off by their deadline while their commit is in flight: whatever got committed is known
        # to the OMS (in the account book and at the venue), never committed-but-forgotten.
        outcomes = await asyncio.gather(
            *(
                client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id=f"d{i}", timeout_s=0.004)
                for i in range(60)
            ),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                assert isinstance(outcome, grpc.aio.AioRpcError)
                assert outcome.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.sleep(0.5)
    assert (await oms.sql("SELECT count(*) AS n FROM orders WHERE client_order_id = 'late'"))[0]["n"] == 1
    assert oms.app is not None and oms.app.service is not None
    accepted = {r["order_id"] for r in await oms.sql("SELECT order_id FROM orders WHERE status = 'ACCEPTED'")}
    book = oms.app.service._books["acct-a"]
    paper = oms.app.venues["paper"]
    assert isinstance(paper, PaperVenue)
    assert accepted == set(book.orders), "the book holds exactly the committed working orders"
    assert accepted == set(paper.working), "every committed order reached the venue"
