"""Venue outcome unknown, against the Binance stub with fault injection: a submit that times out or answers
5xx leaves the order open and is resolved by asking the venue (by origClientOrderId = our order id) with
backoff; REJECTED only when the venue says it never got the order; nothing is ever sent twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from aipx.clients.oms import OmsClient
from aipx.v1 import common_pb2, orders_pb2
from aipx_oms.sending import NEVER_RECEIVED
from prometheus_client import REGISTRY

from tests.oms.binance_stub import BinanceStub, Fault
from tests.oms.conftest import OmsEnv, eventually
from tests.oms.test_paper_venue import wait_status

pytestmark = pytest.mark.integration

BUY = common_pb2.SIDE_BUY
S = orders_pb2
API_KEY, SECRET = "stub-api-key", "stub-secret"
NEW_ORDER = ("POST", "/api/v3/order")
QUERY = ("GET", "/api/v3/order")


@pytest.fixture
async def venue(oms_env: OmsEnv) -> AsyncIterator[BinanceStub]:
    """The Binance stub and an OMS routed to it, with short timeouts so faults resolve quickly."""
    server = BinanceStub(API_KEY, SECRET)
    await server.start()
    await oms_env.start(**venue_settings(server))
    await eventually(_ready(server), what="the user-data stream connected")
    try:
        yield server
    finally:
        await oms_env.stop()
        await server.stop()


def venue_settings(server: BinanceStub) -> dict[str, Any]:
    url = f"127.0.0.1:{server.port}"
    return {
        "venues": ("paper", "binance"),
        "binance_base_url": f"http://{url}",
        "binance_ws_url": f"ws://{url}",
        "binance_api_key": API_KEY,
        "binance_api_secret": SECRET,
        "binance_request_timeout_s": 1.0,
        "binance_recv_window_ms": 3000,  # "does not exist" is an answer 3.5 s after the request was sent
        "binance_clock_skew_margin_ms": 500,
        "venue_query_delay_s": 0.2,
        "venue_retry_max_s": 0.5,
    }


def _ready(server: BinanceStub) -> Any:
    async def check() -> bool:
        return server.connected > 0

    return check


async def _submit(client: OmsClient, coid: str, price: str = "1500") -> orders_pb2.Order:
    response = await client.submit("ETH-USDT", BUY, "2", price=price, venue="binance", client_order_id=coid)
    assert response.order.status == S.ORDER_STATUS_ACCEPTED
    return response.order


async def test_accepted_then_timeout_resolves_to_the_venues_fills(
    oms_env: OmsEnv, venue: BinanceStub
) -> None:
    venue.submit_faults = [Fault.ACCEPT_THEN_TIMEOUT]
    venue.silent_fill_price = Decimal("1499")  # filled at the venue; the stream event is lost
    async with oms_env.client() as c:
        order = await _submit(c, "t1")
        done = await wait_status(c, order.order_id, S.ORDER_STATUS_FILLED, "the venue's fill found by query")
        assert (done.filled_quantity.value, done.average_fill_price.value) == ("2", "1499")
        assert done.venue_order_id == str(venue.orders[order.order_id]["orderId"])
        [position] = await c.positions(["ETH-USDT"])
        assert Decimal(position.quantity.value) == Decimal(2)
    assert venue.requests_for(*NEW_ORDER, order.order_id) == 1, "resolved by asking, never by re-sending"
    assert venue.requests_for(*QUERY, order.order_id) >= 1
    [trade] = venue.trades[venue.orders[order.order_id]["orderId"]]
    assert await _fills(oms_env, order.order_id) == [
        (Decimal(2), Decimal(1499), Decimal("2.998"), "USDT", "TAKER", str(trade["id"]))
    ], "the venue's trade: its fee, fee asset, liquidity and id"


async def test_accepted_then_5xx_stays_open_through_failed_queries_then_resolves(
    oms_env: OmsEnv, venue: BinanceStub
) -> None:
    venue.submit_faults = [Fault.ACCEPT_THEN_5XX]
    venue.query_faults = 1_000_000  # the venue does not answer queries either, for now
    async with oms_env.client() as c:
        order = await _submit(c, "f1")

        async def queried_repeatedly() -> bool:
            return venue.requests_for(*QUERY, order.order_id) >= 3

        await eventually(queried_repeatedly, what="several queries with backoff")
        pending = await c.get(order_id=order.order_id)
        assert pending.status == S.ORDER_STATUS_ACCEPTED, "outcome unknown is not REJECTED"
        assert pending.venue_order_id == ""
        venue.query_faults = 0
        acked = await _wait(c, order.order_id, "the venue's order id from the query")
        assert acked.status == S.ORDER_STATUS_ACCEPTED
        assert acked.venue_order_id == str(venue.orders[order.order_id]["orderId"])
        await venue.fill(order.order_id, Decimal("2"), Decimal("1500"))
        await wait_status(c, order.order_id, S.ORDER_STATUS_FILLED, "a later fill on the stream")
    assert venue.requests_for(*NEW_ORDER, order.order_id) == 1


@pytest.mark.parametrize("fault", [Fault.DROP_THEN_TIMEOUT, Fault.DROP_THEN_5XX])
async def test_never_received_is_rejected_only_after_the_venue_says_so(
    oms_env: OmsEnv, venue: BinanceStub, fault: Fault
) -> None:
    venue.submit_faults = [fault]
    venue.query_faults = 2  # the first answers are 503s: not a "does not exist"
    async with oms_env.client() as c:
        order = await _submit(c, "d1")
        rejected = await wait_status(
            c, order.order_id, S.ORDER_STATUS_REJECTED, "the venue's 'unknown order'"
        )
        assert rejected.reject_reason == S.REJECT_REASON_VENUE_REJECTED
        assert rejected.reject_message == NEVER_RECEIVED
    assert order.order_id not in venue.orders
    assert venue.requests_for(*NEW_ORDER, order.order_id) == 1
    assert venue.requests_for(*QUERY, order.order_id) >= 3, "two 503s, then the answer"


async def test_repeated_timeouts_create_no_duplicates(oms_env: OmsEnv, venue: BinanceStub) -> None:
    venue.submit_faults = [Fault.ACCEPT_THEN_TIMEOUT] * 4 + [Fault.ACCEPT_THEN_5XX] * 4
    venue.query_faults = 6
    async with oms_env.client() as c:
        orders = [await _submit(c, f"r{i}", price=str(1400 + i)) for i in range(10)]
        for order in orders:
            acked = await _wait(c, order.order_id, "every order acknowledged")
            assert acked.status == S.ORDER_STATUS_ACCEPTED
    assert sorted(venue.orders) == sorted(o.order_id for o in orders), "one venue order per OMS order"
    assert all(venue.requests_for(*NEW_ORDER, o.order_id) == 1 for o in orders)
    # The durable send path and the periodic reconciliation leave resolved orders alone.
    assert await oms_env.app.service.sender.sweep() == 0  # type: ignore[union-attr]
    assert all(venue.requests_for(*NEW_ORDER, o.order_id) == 1 for o in orders)


async def _wait(client: OmsClient, order_id: str, what: str) -> orders_pb2.Order:
    holder: list[orders_pb2.Order] = []

    async def acked() -> bool:
        order = await client.get(order_id=order_id)
        holder[:] = [order]
        return order.venue_order_id != ""

    await eventually(acked, timeout_s=30.0, what=what)
    return holder[0]


@pytest.mark.parametrize("fault", [Fault.ACCEPT_THEN_5XX, Fault.DROP_THEN_5XX])
async def test_a_cancel_without_an_answer_is_retried_until_the_venue_answers(
    oms_env: OmsEnv, venue: BinanceStub, fault: Fault
) -> None:
    async with oms_env.client() as c:
        order = await _submit(c, "c1")
        await _wait(c, order.order_id, "acknowledged")
        venue.cancel_faults = [fault]  # ACCEPT: canceled at the venue, its answer and event lost
        pending = await c.cancel(order_id=order.order_id)
        assert pending.status in (S.ORDER_STATUS_PENDING_CANCEL, S.ORDER_STATUS_CANCELED)
        canceled = await wait_status(c, order.order_id, S.ORDER_STATUS_CANCELED, "the cancel resolved")
        assert canceled.filled_quantity.value == "0"
    assert venue.orders[order.order_id]["status"] == "CANCELED"
    assert venue.requests_for("DELETE", "/api/v3/order", order.order_id) == 2, (
        "sent again once, then answered"
    )


async def test_an_unreadable_stream_frame_is_skipped_and_the_stream_stays_up(
    oms_env: OmsEnv, venue: BinanceStub
) -> None:
    async with oms_env.client() as c:
        order = await _submit(c, "u1")
        await _wait(c, order.order_id, "acknowledged")
        await venue.push_raw("{not json")
        bad_quantity = {"e": "executionReport", "x": "TRADE", "c": order.order_id, "l": "x"}
        await venue.push_raw(json.dumps(bad_quantity))
        await venue.fill(order.order_id, Decimal("2"), Decimal("1500"))
        await wait_status(c, order.order_id, S.ORDER_STATUS_FILLED, "a fill after the bad frames")
    assert venue.connections_total == 1, "the same connection all along"


async def test_a_resend_of_an_order_the_venue_has_is_that_order_not_a_rejection(
    oms_env: OmsEnv, venue: BinanceStub
) -> None:
    async with oms_env.client() as c:
        order = await _submit(c, "dup")
        await _wait(c, order.order_id, "acknowledged")
        app = oms_env.app
        assert app is not None
        stored = await app.service.books.current(order.order_id)  # type: ignore[union-attr]
        assert stored is not None
        await app.venues["binance"].submit(stored)  # as a recovery after a lost answer would
        assert venue.requests_for(*NEW_ORDER, order.order_id) == 2

        async def reports_stored() -> bool:
            return app.service.reports.pending == 0  # type: ignore[union-attr]

        await eventually(reports_stored, what="the venue's reports stored")
        still = await c.get(order_id=order.order_id)
        assert still.status == S.ORDER_STATUS_ACCEPTED, "the venue's 'duplicate order' is not a rejection"
    assert len(venue.orders) == 1


async def test_periodic_reconciliation_finds_a_fill_the_stream_missed_while_running(
    oms_env: OmsEnv, venue: BinanceStub
) -> None:
    await oms_env.stop()
    await oms_env.start(**{**venue_settings(venue), "reconcile_interval_s": 0.5})
    await eventually(_ready(venue), what="the user-data stream connected")
    async with oms_env.client() as c:
        order = await _submit(c, "m1")
        await _wait(c, order.order_id, "acknowledged")
        # On the stream (a maker fill, its fee in BNB), then two trades whose events are lost.
        await venue.fill(order.order_id, Decimal("0.25"), Decimal("1500"), maker=True,
                         fee=(Decimal("0.0003"), "BNB"))  # fmt: skip
        await wait_status(c, order.order_id, S.ORDER_STATUS_PARTIALLY_FILLED, "the stream's fill")
        await venue.fill(order.order_id, Decimal("0.5"), Decimal("1499"), push=False, maker=True,
                         fee=(Decimal("0.0006"), "BNB"))  # fmt: skip
        await venue.fill(order.order_id, Decimal("0.25"), Decimal("1501"), push=False)

        async def reconciled() -> bool:
            return Decimal((await c.get(order_id=order.order_id)).filled_quantity.value) == 1

        await eventually(reconciled, what="the lost trades found by reconciliation")
        partial = await c.get(order_id=order.order_id)
        assert Decimal(partial.average_fill_price.value) == Decimal("1499.75")
        await venue.fill(order.order_id, Decimal("1"), Decimal("1498"))  # on the stream, cumulative 2
        done = await wait_status(c, order.order_id, S.ORDER_STATUS_FILLED, "the next fill")
        assert Decimal(done.filled_quantity.value) == Decimal(2)
    ids = [str(t["id"]) for t in venue.trades[venue.orders[order.order_id]["orderId"]]]
    assert sorted(await _fills(oms_env, order.order_id), key=lambda f: int(f[5])) == [
        (Decimal("0.25"), Decimal(1500), Decimal("0.0003"), "BNB", "MAKER", ids[0]),
        (Decimal("0.5"), Decimal(1499), Decimal("0.0006"), "BNB", "MAKER", ids[1]),
        (Decimal("0.25"), Decimal(1501), Decimal("0.37525"), "USDT", "TAKER", ids[2]),
        (Decimal(1), Decimal(1498), Decimal("1.498"), "USDT", "TAKER", ids[3]),
    ], "each trade once, with its own price, fee, fee asset and liquidity"
    fees = await oms_env.sql(
        "SELECT asset, sum(amount) AS total FROM ledger_entries WHERE order_id = $1 AND type = 'FEE'"
        " GROUP BY asset ORDER BY asset",
        order.order_id,
    )
    assert [(r["asset"], r["total"]) for r in fees] == [
        ("BNB", Decimal("-0.0009")),
        ("USDT", Decimal("-1.87325")),
    ]


async def _events(oms_env: OmsEnv, order_id: str) -> list[str]:
    rows = await oms_env.sql("SELECT type FROM order_events WHERE order_id = $1 ORDER BY sequence", order_id)
    return [r["type"] for r in rows]


async def _fills(oms_env: OmsEnv, order_id: str) -> list[tuple[Any, ...]]:
    rows = await oms_env.sql(
        "SELECT quantity, price, fee, fee_currency, liquidity, venue_fill_id FROM fills WHERE order_id = $1"
        " ORDER BY fill_time_ns, venue_fill_id",
        order_id,
    )
    return [tuple(r.values()) for r in rows]


def _live_rejected() -> float:
    labels = {"venue": "binance", "what": "rejected_order_live"}
    return REGISTRY.get_sample_value("aipx_oms_venue_errors_total", labels) or 0.0


async def test_an_order_the_venue_gets_after_answering_it_does_not_exist_is_not_rejected(
    oms_env: OmsEnv, venue: BinanceStub
) -> None:
    # The request reaches Binance 2.5 s after it was sent: after the client gave up (1 s) and after the first
    # query (answered -2013), within its recvWindow (5 s). Until then "does not exist" is no answer.
    venue.submit_faults = [Fault.LATE]
    venue.late_accept_s = 2.5
    venue.late_fill = (Decimal("2"), Decimal("1499"))
    async with oms_env.client() as c:
        order = await _submit(c, "late1")
        done = await wait_status(c, order.order_id, S.ORDER_STATUS_FILLED, "the late order's fill")
        assert (done.filled_quantity.value, done.average_fill_price.value) == ("2", "1499")
        [position] = await c.positions(["ETH-USDT"])
        assert Decimal(position.quantity.value) == Decimal(2)
    assert venue.not_found_answers >= 1, "the venue answered 'does not exist' before it got the order"
    assert venue.requests_for(*NEW_ORDER, order.order_id) == 1
    assert "REJECTED" not in await _events(oms_env, order.order_id)
    [trade] = venue.trades[venue.orders[order.order_id]["orderId"]]
    assert await _fills(oms_env, order.order_id) == [
        (Decimal(2), Decimal(1499), Decimal("2.998"), "USDT", "TAKER", str(trade["id"]))
    ]


async def test_not_found_after_the_recv_window_is_rejected(oms_env: OmsEnv, venue: BinanceStub) -> None:
    # The request reaches the stub after its timestamp + recvWindow: refused there too; the OMS rejects the
    # order once that deadline (plus the margin) has passed, and not before.
    await oms_env.stop()
    await oms_env.start(
        **{**venue_settings(venue), "binance_recv_window_ms": 1500, "binance_clock_skew_margin_ms": 500}
    )
    await eventually(_ready(venue), what="the user-data stream connected")
    venue.submit_faults = [Fault.LATE]
    venue.late_accept_s = 2.5
    async with oms_env.client() as c:
        order = await _submit(c, "late2")
        rejected = await wait_status(
            c, order.order_id, S.ORDER_STATUS_REJECTED, "the venue's 'unknown order'"
        )
        assert rejected.reject_message == NEVER_RECEIVED
        assert venue.not_found_answers >= 2, "asked again while the request could still arrive"
        rows = await oms_env.sql(
            "SELECT max(event_time_ns) - min(event_time_ns) AS took FROM order_events WHERE order_id = $1",
            order.order_id,
        )
        assert rows[0]["took"] >= 1_500_000_000, "not rejected before recvWindow + margin"
    await asyncio.sleep(1.5)  # past the late arrival: the stub refused it (outside its recvWindow)
    assert order.order_id not in venue.orders


@pytest.mark.parametrize("route", ["stream", "reconciliation"])
async def test_a_rejected_order_found_live_at_the_venue_is_canceled_and_its_fills_recorded(
    oms_env: OmsEnv, venue: BinanceStub, route: str
) -> None:
    # A venue clock far behind ours (beyond the margin): the request is accepted after the OMS concluded the
    # venue never got it. The fill then reaches the OMS on the stream, or (its event lost) by reconciliation.
    await oms_env.stop()
    settings = {**venue_settings(venue), "binance_recv_window_ms": 200, "binance_clock_skew_margin_ms": 0}
    if route == "reconciliation":
        settings["reconcile_interval_s"] = 0.5
    await oms_env.start(**settings)
    await eventually(_ready(venue), what="the user-data stream connected")
    venue.ignore_recv_window = True
    venue.submit_faults = [Fault.LATE]
    venue.late_accept_s = 2.5
    venue.late_fill = (Decimal("0.5"), Decimal("1499"))
    venue.late_fill_push = route == "stream"
    live_before = _live_rejected()
    async with oms_env.client() as c:
        order = await _submit(c, f"live-{route}")
        await wait_status(c, order.order_id, S.ORDER_STATUS_REJECTED, "the wrong conclusion")
        canceled = await wait_status(
            c, order.order_id, S.ORDER_STATUS_CANCELED, "the live order canceled at the venue"
        )
        assert (canceled.filled_quantity.value, canceled.average_fill_price.value) == ("0.5", "1499")
        assert canceled.venue_order_id == str(venue.orders[order.order_id]["orderId"])
        [position] = await c.positions(["ETH-USDT"])
        assert Decimal(position.quantity.value) == Decimal("0.5")
    assert venue.orders[order.order_id]["status"] == "CANCELED"
    assert _live_rejected() > live_before
    events = await _events(oms_env, order.order_id)
    assert events[events.index("REJECTED") :] == [
        "REJECTED",
        "PENDING_CANCEL",
        "PARTIALLY_FILLED",
        "CANCELED",
    ]
    [trade] = venue.trades[venue.orders[order.order_id]["orderId"]]
    assert await _fills(oms_env, order.order_id) == [
        (Decimal("0.5"), Decimal(1499), Decimal("0.7495"), "USDT", "TAKER", str(trade["id"]))
    ]
    ledger = await oms_env.sql(
        "SELECT asset, type, amount FROM ledger_entries WHERE order_id = $1 ORDER BY asset, type",
        order.order_id,
    )
    assert [(r["asset"], r["type"], r["amount"]) for r in ledger] == [
        ("ETH", "TRADE", Decimal("0.5")),
        ("USDT", "FEE", Decimal("-0.7495")),
        ("USDT", "TRADE", Decimal("-749.5")),
    ]
