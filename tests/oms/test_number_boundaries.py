"""Numbers entering the OMS over gRPC, fuzzed against a real OMS (real PostgreSQL, Redis, Kafka, gRPC socket).

Whatever text a decimal field carries, the OMS answers at once with OK or INVALID_ARGUMENT; a text that the
strict parser (aipx.money.parse_decimal) refuses is INVALID_ARGUMENT with a google.rpc.BadRequest naming the
field, never INTERNAL, never a stall. Integer fields out of the range PostgreSQL can hold (uint64 >= 2^63, a
page token's timestamp) are INVALID_ARGUMENT too. After the fuzzing the same OMS still takes orders.

Hypothesis drives a synchronous gRPC client from a worker thread while the OMS serves on the test's loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import grpc
import pytest
from aipx.money import InvalidDecimalError, parse_decimal
from aipx.numbers import INT64_MAX
from aipx.v1 import common_pb2, oms_pb2, oms_pb2_grpc, orders_pb2
from aipx_oms.domain.model import Instrument
from aipx_oms.store.admin import upsert_instrument
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.oms.conftest import KEY_A, OmsEnv, eventually
from tests.oms.helpers import publish_market, quote

pytestmark = pytest.mark.integration

FULLWIDTH_12 = "\uff11\uff12"  # full-width digits: not ASCII
# Every input issue #12 lists for decimals, and their neighbours.
LISTED_DECIMALS = (
    "1e-999999999",
    "1e400",
    "1e30",
    FULLWIDTH_12,
    "1e999999999",
    "1e-9999999",
    "NaN",
    "-Infinity",
    "0x10",
    " 1",
    "1_000",
    "1e-19",
    "123456789012345678901",
    "0.0000000000000000001",
    "99999999999999999999.999999999999999999",
)
# A request must be answered within this (a stall shows as a longer call or DEADLINE_EXCEEDED).
ANSWER_WITHIN_S = 5.0
FIELD = "order.quantity"

_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80)
_NUMBERISH = st.from_regex(r"\A[+-]?[0-9]{0,25}(\.[0-9]{0,25})?([eE][+-]?[0-9]{1,10})?\Z")
DECIMAL_TEXTS = st.one_of(_NUMBERISH, _TEXT, st.decimals(allow_nan=True).map(str))

TINY = Decimal("1e-18")
FINE = Instrument("FINE-USDT", "FINE", "USDT", TINY, TINY, TINY, Decimal(0))
"""Tick and lot at decimal128's finest scale: a 20-digit quantity's quotient by the lot has 38 digits."""


def _violations(exc: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, "INVALID_ARGUMENT must carry a google.rpc.Status"
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def _refused(text: str) -> bool:
    try:
        parse_decimal(text, field="x")
    except InvalidDecimalError:
        return True
    return False


class _Caller:
    """A synchronous client of the running OMS (used from hypothesis's worker thread)."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = oms_pb2_grpc.OmsServiceStub(self.channel)
        self.metadata = (("x-api-key", KEY_A),)

    def submit(self, symbol: str, quantity: str, price: str) -> tuple[grpc.StatusCode, dict[str, str], float]:
        request = oms_pb2.SubmitOrderRequest(
            order=orders_pb2.OrderRequest(
                client_order_id=uuid.uuid4().hex,
                symbol=symbol,
                side=common_pb2.SIDE_BUY,
                type=orders_pb2.ORDER_TYPE_LIMIT,
                time_in_force=orders_pb2.TIME_IN_FORCE_GTC,
                quantity=common_pb2.Decimal(value=quantity),
                price=common_pb2.Decimal(value=price),
            )
        )
        return self._unary(self.stub.SubmitOrder, request)

    def _unary(self, method: object, request: object) -> tuple[grpc.StatusCode, dict[str, str], float]:
        started = time.monotonic()
        try:
            method(request, metadata=self.metadata, timeout=ANSWER_WITHIN_S * 2)  # type: ignore[operator]
        except grpc.RpcError as exc:
            code = exc.code()
            found = _violations(exc) if code is grpc.StatusCode.INVALID_ARGUMENT else {}
            return code, found, time.monotonic() - started
        return grpc.StatusCode.OK, {}, time.monotonic() - started

    def close(self) -> None:
        self.channel.close()


def _check_answer(text: str, field: str, answer: tuple[grpc.StatusCode, dict[str, str], float]) -> None:
    code, violations, elapsed = answer
    assert elapsed < ANSWER_WITHIN_S, f"{text!r} in {field} took {elapsed:.1f}s (a stall)"
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), f"{text!r} in {field}: {code}"
    if _refused(text):
        assert code is grpc.StatusCode.INVALID_ARGUMENT, f"{text!r} accepted in {field}"
        assert field in violations, f"{text!r}: the BadRequest names {sorted(violations)}, not {field}"


async def _serving(env: OmsEnv) -> None:
    """The OMS still answers health checks and takes a well-formed order."""
    async with grpc.aio.insecure_channel(env.target) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        health = await stub.Check(health_pb2.HealthCheckRequest(service="aipx.v1.OmsService"), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    async with env.client() as client:
        placed = await client.submit("BTC-USDT", common_pb2.SIDE_BUY, "0.01", price="20000")
        assert placed.created and placed.order.status == orders_pb2.ORDER_STATUS_ACCEPTED


@pytest.fixture
async def fine_oms(oms_env: OmsEnv) -> OmsEnv:
    conn = await asyncpg.connect(oms_env.dsn)
    try:
        await upsert_instrument(conn, FINE)
    finally:
        await conn.close()
    await oms_env.start()
    return oms_env


async def test_submit_order_decimals_are_refused_by_field_never_internal_or_stalled(fine_oms: OmsEnv) -> None:
    caller = _Caller(fine_oms.target)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(text=DECIMAL_TEXTS, symbol=st.sampled_from(["BTC-USDT", "FINE-USDT"]))
    def fuzz(text: str, symbol: str) -> None:
        _check_answer(text, "order.quantity", caller.submit(symbol, text, "20000"))
        _check_answer(text, "order.price", caller.submit(symbol, "0.01", text))

    for listed in LISTED_DECIMALS:
        fuzz = example(text=listed, symbol="BTC-USDT")(fuzz)
    # Bounded but extreme: exact remainders on the finest instrument (the default context raised here).
    fuzz = example(text="12345678901234567890", symbol="FINE-USDT")(fuzz)
    fuzz = example(text="0.000000000000000001", symbol="FINE-USDT")(fuzz)
    try:
        await asyncio.to_thread(fuzz)
        # The listed inputs, spelled out: each refused with the field named.
        for text in ("1e-999999999", "1e400", "1e30", FULLWIDTH_12, "1e999999999"):
            code, violations, _ = await asyncio.to_thread(caller.submit, "BTC-USDT", text, "20000")
            assert code is grpc.StatusCode.INVALID_ARGUMENT and "order.quantity" in violations, text
        code, _, _ = await asyncio.to_thread(caller.submit, "FINE-USDT", "12345678901234567890", "1")
        assert code is grpc.StatusCode.OK, "a 38-digit quotient by the lot is computed, not INTERNAL"
    finally:
        caller.close()
    await _serving(fine_oms)


async def test_replace_decimals_are_refused_by_field(oms: OmsEnv) -> None:
    async with oms.client() as client:
        placed = await client.submit("BTC-USDT", common_pb2.SIDE_BUY, "0.01", price="20000")
    caller = _Caller(oms.target)

    def replace(field: str, text: str) -> tuple[grpc.StatusCode, dict[str, str], float]:
        values: dict[str, Any] = {
            "quantity": common_pb2.Decimal(value="0.01"),
            "price": common_pb2.Decimal(value="20000"),
        }
        values[field] = common_pb2.Decimal(value=text)
        request = oms_pb2.ReplaceOrderRequest(
            order_id=placed.order.order_id, idempotency_key=uuid.uuid4().hex, **values
        )
        return caller._unary(caller.stub.ReplaceOrder, request)

    # An empty text is "unchanged" in a ReplaceOrder, not a number.
    refused = DECIMAL_TEXTS.filter(lambda t: t != "" and _refused(t))

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(text=refused, field=st.sampled_from(["quantity", "price"]))
    def fuzz(text: str, field: str) -> None:
        code, violations, elapsed = replace(field, text)
        assert elapsed < ANSWER_WITHIN_S, f"{text!r} took {elapsed:.1f}s"
        assert code is grpc.StatusCode.INVALID_ARGUMENT and field in violations, (text, code, violations)

    for listed in LISTED_DECIMALS[:5]:
        fuzz = example(text=listed, field="quantity")(fuzz)
        fuzz = example(text=listed, field="price")(fuzz)
    try:
        await asyncio.to_thread(fuzz)
    finally:
        caller.close()
    await _serving(oms)


async def test_list_orders_integers_out_of_range_are_invalid_argument(oms: OmsEnv) -> None:
    caller = _Caller(oms.target)

    def token(created: str) -> str:
        return base64.urlsafe_b64encode(f"{created}:order-x".encode()).decode()

    def list_orders(**fields: object) -> tuple[grpc.StatusCode, dict[str, str], float]:
        return caller._unary(caller.stub.ListOrders, oms_pb2.ListOrdersRequest(**fields))  # type: ignore[arg-type]

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(
        page_size=st.integers(-(2**31), 2**31 - 1),
        created=st.one_of(st.integers(-(10**30), 10**30).map(str), _TEXT),
        after_ns=st.integers(-(2**63), 2**63 - 1),
    )
    @example(page_size=501, created=str(2**63), after_ns=-1)
    @example(page_size=-1, created=FULLWIDTH_12, after_ns=0)
    @example(page_size=0, created=str(10**30), after_ns=2**63 - 1)
    @example(page_size=500, created="1_000", after_ns=0)
    def fuzz(page_size: int, created: str, after_ns: int) -> None:
        code, violations, elapsed = list_orders(page_size=page_size, page_token=token(created))
        assert elapsed < ANSWER_WITHIN_S
        size_ok = page_size == 0 or 1 <= page_size <= 500
        token_ok = created.isascii() and created.isdigit() and int(created) <= INT64_MAX
        assert (code is grpc.StatusCode.OK) == (size_ok and token_ok), (page_size, created, code, violations)
        if not size_ok:
            assert "page_size" in violations
        if not token_ok:
            assert "page_token" in violations
        code, violations, _ = list_orders(created_after_ns=after_ns)
        assert (code is grpc.StatusCode.OK) == (after_ns >= 0), (after_ns, code)
        if after_ns < 0:
            assert "created_after_ns" in violations

    try:
        await asyncio.to_thread(fuzz)
    finally:
        caller.close()
    await _serving(oms)


async def test_stream_from_log_sequence_beyond_bigint_is_invalid_argument(oms: OmsEnv) -> None:
    async with oms.client() as client:
        await client.submit("BTC-USDT", common_pb2.SIDE_BUY, "0.01", price="20000")
    caller = _Caller(oms.target)

    def stream(after: int) -> grpc.StatusCode:
        call = caller.stub.StreamOrderEvents(
            oms_pb2.StreamOrderEventsRequest(from_log_sequence=after), metadata=caller.metadata, timeout=1.0
        )
        try:
            for _ in call:
                pass
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            if code is grpc.StatusCode.INVALID_ARGUMENT:
                assert "from_log_sequence" in _violations(exc)
            return code
        return grpc.StatusCode.OK

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(after=st.integers(0, 2**64 - 1))
    @example(after=2**63)
    @example(after=2**64 - 1)
    @example(after=2**63 - 1)
    @example(after=0)
    def fuzz(after: int) -> None:
        code = stream(after)
        # A valid offset opens the stream (it stays open until the 1 s deadline); beyond bigint: refused.
        if after > INT64_MAX:
            assert code is grpc.StatusCode.INVALID_ARGUMENT, (after, code)
        else:
            assert code is grpc.StatusCode.DEADLINE_EXCEEDED, (after, code)

    try:
        await asyncio.to_thread(fuzz)
    finally:
        caller.close()
    await _serving(oms)


def _quote_malformed(texts: tuple[str, str, str, str]) -> bool:
    """Whether the paper venue's market-data cache must skip a quote (bid, bid size, ask, ask size)."""
    for index, text in enumerate(texts):
        if not text:
            continue
        if _refused(text):
            return True
        value = parse_decimal(text)
        if (index in (0, 2) and value <= 0) or value < 0:
            return True
    return False


async def test_market_data_numbers_are_skipped_whole_and_never_fill_an_order(oms: OmsEnv) -> None:
    """Quotes from Kafka with malformed numbers are counted and skipped by the paper venue; a resting order is
    never filled by one; the consumer keeps consuming (a well-formed quote after them is applied)."""
    assert oms.app is not None
    market = oms.app.market
    loop = asyncio.get_running_loop()
    async with oms.client() as client:
        resting = await client.submit("BTC-USDT", common_pb2.SIDE_BUY, "0.01", price="20000")
    sentinel = iter(range(1, 1_000_000))

    async def one_batch(quotes: list[tuple[str, str, str, str]]) -> None:
        before = market.malformed
        mark = f"{50000 + next(sentinel)}"
        await publish_market(
            oms.kafka,
            oms.market_topic,
            [quote("BTC-USDT", *q) for q in quotes] + [quote("BTC-USDT", "49990", "1", mark, "1")],
        )

        async def applied() -> bool:
            touch = market.touch("BTC-USDT")
            return touch is not None and touch.ask == Decimal(mark)

        await eventually(applied, what=f"the well-formed quote {mark} after {len(quotes)} others")
        assert market.malformed - before == sum(_quote_malformed(q) for q in quotes), quotes

    bad_asks = [(text, "1", "50000", "1") for text in LISTED_DECIMALS] + [
        ("19000", "1", text, "1") for text in (*LISTED_DECIMALS, "-1", "0")
    ]

    await one_batch(bad_asks)
    async with oms.client() as client:
        order = await client.get(order_id=resting.order.order_id)
    assert order.status == orders_pb2.ORDER_STATUS_ACCEPTED, "a malformed ask (1e-9999999, -1, ...) filled it"

    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        quotes=st.lists(st.tuples(DECIMAL_TEXTS, DECIMAL_TEXTS, DECIMAL_TEXTS, DECIMAL_TEXTS), max_size=10)
    )
    @example(quotes=[("19000", text, "20000", "1") for text in (*LISTED_DECIMALS, "-1")])
    def fuzz(quotes: list[tuple[str, str, str, str]]) -> None:
        asyncio.run_coroutine_threadsafe(one_batch(quotes), loop).result(120)

    await asyncio.to_thread(fuzz)
    await _serving(oms)


def test_the_cli_refuses_bad_numbers_before_calling(capsys: pytest.CaptureFixture[str]) -> None:
    """aipx-oms-cli parses its number arguments with the same parsers (usage error, exit 2, no call)."""
    from aipx_oms.cli import main

    for argv in (
        ["--api-key", "k", "place", "buy", FULLWIDTH_12, "BTC-USDT"],
        ["--api-key", "k", "place", "buy", "1", "BTC-USDT", "--price", "1e999999999"],
        ["--api-key", "k", "follow", "--from", str(2**63)],
        ["--api-key", "k", "orders", "--limit", "0"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "invalid" in capsys.readouterr().err, argv


@given(
    quantity=DECIMAL_TEXTS,
    price=DECIMAL_TEXTS,
    at=st.one_of(st.integers(-(2**70), 2**70), _TEXT, st.floats()),
)
@example(quantity="1e-999999999", price="1500", at=1)
@example(quantity="1", price="1e400", at=1)
@example(quantity=FULLWIDTH_12, price="1500", at=1)
@example(quantity="1", price="1500", at=2**53)
@example(quantity="1", price="1500", at=2**63)
@settings(max_examples=300, deadline=None)
def test_binance_execution_report_numbers_parse_strictly_or_raise_naming_them(
    quantity: str, price: str, at: object
) -> None:
    from aipx.numbers import MAX_EPOCH_MS, InvalidNumberError
    from aipx_oms.venues.binance.user_stream import parse_execution_report

    message = {"e": "executionReport", "x": "TRADE", "c": "o-1", "i": 1, "t": 7, "l": quantity, "L": price}
    message["T"] = at
    try:
        report = parse_execution_report(message)
    except InvalidNumberError as exc:
        assert exc.field.startswith("executionReport.")
        return
    assert report is not None and report.quantity == parse_decimal(quantity)
    assert report.price == parse_decimal(price)
    assert isinstance(at, int | str) and not isinstance(at, bool) and 0 <= int(at) <= MAX_EPOCH_MS


async def test_malformed_binance_reports_are_counted_and_the_user_stream_stays_up(oms_env: OmsEnv) -> None:
    from aipx_oms.venues.binance.execution import BinanceSpotVenue
    from prometheus_client import REGISTRY

    from tests.oms.binance_stub import BinanceStub

    server = BinanceStub("stub-api-key", "stub-secret")
    rest_url, ws_url = await server.start()
    try:
        app = await oms_env.start(
            venues=("paper", "binance"),
            binance_base_url=rest_url,
            binance_ws_url=ws_url,
            binance_api_key="stub-api-key",
            binance_api_secret="stub-secret",
        )
        venue = app.venues["binance"]
        assert isinstance(venue, BinanceSpotVenue)

        async def connected() -> bool:
            return server.connected > 0

        await eventually(connected, what="the user-data stream connected")

        def malformed() -> float:
            labels = {"venue": "binance", "what": "malformed_report"}
            return REGISTRY.get_sample_value("aipx_oms_venue_errors_total", labels) or 0.0

        before = malformed()
        async with oms_env.client() as client:
            order = (
                await client.submit("ETH-USDT", common_pb2.SIDE_BUY, "2", price="1500", venue="binance")
            ).order

            async def acknowledged() -> bool:
                return (await client.get(order_id=order.order_id)).venue_order_id != ""

            await eventually(acknowledged, what="the venue's acknowledgement")
            base = {"e": "executionReport", "x": "TRADE", "c": order.order_id, "i": 1, "t": 99, "T": 1}
            frames = [
                "{not json",
                json.dumps({**base, "l": "1e-999999999", "L": "1500"}),
                json.dumps({**base, "l": "1", "L": "1e400"}),
                json.dumps({**base, "l": FULLWIDTH_12, "L": "1500"}),
                json.dumps({**base, "l": "1", "L": "1500", "T": 2**63}),
                json.dumps({**base, "l": 0.5, "L": "1500"}),  # a JSON number: binary float, refused
            ]
            for frame in frames:
                await server.push_raw(frame)

            async def counted() -> bool:
                return malformed() - before >= len(frames)

            await eventually(counted, what="every malformed frame counted")
            connections = server.connected
            await server.fill(order.order_id, Decimal("0.5"), Decimal("1499.5"))  # on the same connection

            async def partially_filled() -> bool:
                got = await client.get(order_id=order.order_id)
                return got.status == orders_pb2.ORDER_STATUS_PARTIALLY_FILLED

            await eventually(partially_filled, what="the good fill after the malformed frames")
            got = await client.get(order_id=order.order_id)
            assert (got.filled_quantity.value, got.average_fill_price.value) == ("0.5", "1499.5")
            assert server.connected == connections, "the user stream was not reconnected"
    finally:
        await oms_env.stop()
        await server.stop()
