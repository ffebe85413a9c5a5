"""Idempotency that refuses a mismatch, over gRPC: a reused client_order_id / cancel-replace key with other
parameters answers ALREADY_EXISTS naming the existing order and the differing fields; a true repeat still
returns the original."""

from __future__ import annotations

from decimal import Decimal

import grpc
import pytest
from aipx.v1 import common_pb2, orders_pb2
from aipx_oms.domain.idempotency import fingerprint_differences, order_differences, replace_fingerprint
from aipx_oms.domain.model import Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.oms.conftest import OmsEnv

BUY, SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL


def conflict(exc: grpc.aio.AioRpcError) -> tuple[dict[str, str], list[str]]:
    """(ErrorInfo metadata, BadRequest fields) of an ALREADY_EXISTS answer."""
    assert exc.code() is grpc.StatusCode.ALREADY_EXISTS, exc
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, "ALREADY_EXISTS must carry a google.rpc.Status"
    info: dict[str, str] = {}
    fields: list[str] = []
    for detail in status.details:
        error_info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(error_info):
            assert error_info.reason == "IDEMPOTENCY_KEY_REUSED"
            info = dict(error_info.metadata)
        elif detail.Unpack(bad):
            fields = [v.field for v in bad.field_violations]
    return info, fields


def _order(**changes: object) -> Order:
    base: dict[str, object] = {
        "order_id": "o-1", "account_id": "a", "client_order_id": "c-1", "symbol": "BTC-USDT",
        "side": Side.BUY, "type": OrderType.LIMIT, "time_in_force": TimeInForce.GTC,
        "quantity": Decimal("1.5"), "price": Decimal("100"),
        "stop_price": None, "reduce_only": False, "post_only": False, "venue": "paper",
        "status": OrderStatus.ACCEPTED, "created_time_ns": 1, "updated_time_ns": 1,
    }  # fmt: skip
    base.update(changes)
    return Order(**base)  # type: ignore[arg-type]


def test_order_differences_compare_values_not_spelling() -> None:
    existing = _order()
    same = OrderRequest(
        "c-1", "BTC-USDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, Decimal("1.50"), Decimal("100.0")
    )
    assert order_differences(existing, same, "paper") == []
    other = OrderRequest(
        "c-1", "BTC-USDT", Side.SELL, OrderType.LIMIT, TimeInForce.GTC, Decimal("2"), Decimal("100"),
        venue="binance", tags={"k": "v"},
    )  # fmt: skip
    assert order_differences(existing, other, "paper") == [
        "order.side", "order.quantity", "order.venue", "order.tags",
    ]  # fmt: skip


def test_replace_fingerprints_name_the_changed_values() -> None:
    first = replace_fingerprint(Decimal("3"), Decimal("101.5"))
    assert first == replace_fingerprint(Decimal("3.00"), Decimal("101.50"))
    assert fingerprint_differences(first, replace_fingerprint(Decimal("3"), Decimal("99"))) == ["price"]
    assert fingerprint_differences(first, replace_fingerprint(None, Decimal("101.5"))) == ["quantity"]


@pytest.mark.integration
async def test_reused_client_order_id_with_other_parameters_is_refused(oms: OmsEnv) -> None:
    async with oms.client() as client:
        first = (await client.submit("BTC-USDT", BUY, "0.01", price="20000", client_order_id="k1")).order
        again = await client.submit("BTC-USDT", BUY, "0.010", price="20000.0", client_order_id="k1")
        assert again.order.order_id == first.order_id, "a true repeat returns the original"
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.submit("BTC-USDT", SELL, "0.02", price="20000", client_order_id="k1")
        info, fields = conflict(exc.value)
        assert info["order_id"] == first.order_id and info["key_field"] == "client_order_id"
        assert fields == ["order.side", "order.quantity"]
        assert info["differing_fields"] == "order.side,order.quantity"
        assert first.order_id in (exc.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.submit(
                "BTC-USDT", BUY, "0.01", order_type=orders_pb2.ORDER_TYPE_MARKET, client_order_id="k1"
            )
        assert conflict(exc.value)[1] == ["order.type", "order.price"]
        rows = await oms.sql("SELECT count(*) AS n FROM orders WHERE client_order_id = 'k1'")
        assert rows[0]["n"] == 1, "a refused reuse stores nothing"


@pytest.mark.integration
async def test_a_true_repeat_of_a_replaced_orders_submit_returns_the_order(oms: OmsEnv) -> None:
    """A client whose SubmitOrder answer was lost retries it after the order was replaced: the repeat matches
    the order as submitted, so it returns the order (now replaced); a reuse with other values is still
    refused, naming the fields that differ from the submitted ones."""
    async with oms.client() as client:
        first = (await client.submit("ETH-USDT", BUY, "1", price="1000", client_order_id="kr")).order
        replaced = await client.replace(order_id=first.order_id, quantity="2", price="1001")
        assert (replaced.quantity.value, replaced.price.value) == ("2", "1001")
        again = await client.submit("ETH-USDT", BUY, "1.0", price="1000.00", client_order_id="kr")
        assert again.created is False
        assert again.order.order_id == first.order_id
        assert (again.order.quantity.value, again.order.price.value) == ("2", "1001"), "the order as it is"
        with pytest.raises(grpc.aio.AioRpcError) as exc:  # neither the submitted nor the current values
            await client.submit("ETH-USDT", BUY, "3", price="1001", client_order_id="kr")
        assert conflict(exc.value)[1] == ["order.quantity", "order.price"]
        rows = await oms.sql("SELECT count(*) AS n FROM orders WHERE client_order_id = 'kr'")
        assert rows[0]["n"] == 1


@pytest.mark.integration
async def test_reused_cancel_and_replace_keys_are_refused(oms: OmsEnv) -> None:
    async with oms.client() as client:
        a = (await client.submit("SOL-USDT", BUY, "2", price="100", client_order_id="ka")).order
        b = (await client.submit("SOL-USDT", BUY, "2", price="100", client_order_id="kb")).order
        replaced = await client.replace(order_id=a.order_id, price="101", idempotency_key="rk")
        repeat = await client.replace(order_id=a.order_id, price="101.0", idempotency_key="rk")
        assert repeat.price.value == "101" and repeat.sequence == replaced.sequence
        with pytest.raises(grpc.aio.AioRpcError) as exc:  # same key, other value
            await client.replace(order_id=a.order_id, price="102", idempotency_key="rk")
        info, fields = conflict(exc.value)
        assert info["order_id"] == a.order_id and fields == ["price"]
        with pytest.raises(grpc.aio.AioRpcError) as exc:  # same key, another order
            await client.replace(order_id=b.order_id, price="101", idempotency_key="rk")
        info, fields = conflict(exc.value)
        assert info["order_id"] == a.order_id and fields == ["order_id"]
        canceled = await client.cancel(order_id=b.order_id, idempotency_key="ck")
        assert (await client.cancel(order_id=b.order_id, idempotency_key="ck")).order_id == canceled.order_id
        with pytest.raises(grpc.aio.AioRpcError) as exc:  # a cancel key reused for another order
            await client.cancel(order_id=a.order_id, idempotency_key="ck")
        info, fields = conflict(exc.value)
        assert info["order_id"] == b.order_id and fields == ["order_id"]
        with pytest.raises(grpc.aio.AioRpcError) as exc:  # a replace key reused for a cancel
            await client.cancel(order_id=a.order_id, idempotency_key="rk")
        info, fields = conflict(exc.value)
        assert info["key_field"] == "idempotency_key" and fields[0].startswith("request")
        still = await client.get(order_id=a.order_id)
        assert still.status == orders_pb2.ORDER_STATUS_ACCEPTED, "a refused reuse changes nothing"
