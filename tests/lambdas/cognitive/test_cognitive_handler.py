"""The cognitive handler against the real broker, Redis, the real OMS (subprocess) and a stub LLM server that
speaks the OpenAI and Anthropic HTTP APIs: decisions published, one order per signal however often it is
replayed, the analysis endpoint, LLM failures and OMS outages."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from aipx.lambda_kit import FakeLambdaContext, MskRecord, default_runtime
from aipx.money import to_pb
from aipx.msk import build_event
from aipx.serde import decode
from aipx.topics import TRADING_SIGNALS, catalogue
from aipx.v1 import oms_pb2, oms_pb2_grpc
from aipx.v1.common_pb2 import Side
from aipx.v1.decisions_pb2 import Decision, Verdict, Vote
from aipx.v1.market_data_pb2 import MarketDataEnvelope, Quote
from aipx.v1.orders_pb2 import OrderType
from aipx.v1.signals_pb2 import TradingSignal
from aipx_cognitive import handler
from aipx_cognitive.domain.decisions import client_order_id
from google.protobuf import json_format

pytestmark = pytest.mark.integration


def reset_service() -> None:
    """Close the cached service's connections and drop it (the next invocation rebuilds it from the env)."""
    if handler.service.cache_info().currsize:
        default_runtime().run(handler.service().close())
    handler.service.cache_clear()


@pytest.fixture(autouse=True)
def _closed_service(lambda_runtime: Any) -> Iterator[None]:
    yield
    reset_service()


SignalFactory = Callable[..., TradingSignal]


def configure(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(f"AIPX_COGNITIVE_{name.upper()}", value)
    reset_service()


async def invoke(event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await asyncio.to_thread(handler.handler, event, FakeLambdaContext("cognitive"))
    return result


def url_event(method: str, path: str, body: object | None = None) -> dict[str, Any]:
    """A Lambda function URL (payload 2.0) request."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "fn.lambda-url.local"},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "fn.lambda-url.local",
            "domainPrefix": "fn",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "test"},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 0,
        },
        "body": None if body is None else (body if isinstance(body, str) else json.dumps(body)),
        "isBase64Encoded": False,
    }  # fmt: skip


async def signal_records(kafka_io: Any, builders: Any, *signals: TradingSignal) -> list[MskRecord]:
    spec = catalogue().get(TRADING_SIGNALS)
    items = [
        builders.outgoing(
            spec.key_for(symbol=s.symbol), s, event_id=s.signal_id, event_time_ns=1_767_225_660 * 10**9
        )
        for s in signals
    ]
    records: list[MskRecord] = await kafka_io.produce(TRADING_SIGNALS, items)
    return records


async def test_approved_signal_orders_once_through_the_real_oms(
    *,
    kafka_io: Any,
    builders: Any,
    lambda_runtime: Any,
    new_topic: Any,
    llm_stub: Any,
    real_oms: Any,
    signal_factory: SignalFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decisions = await new_topic()
    configure(
        monkeypatch,
        decisions_topic=decisions,
        state_key_prefix=f"test:cognitive:{uuid.uuid4().hex[:8]}",
        openai_api_key="sk-test-openai-0123",
        openai_base_url=f"{llm_stub.url}/v1",
        anthropic_api_key="sk-ant-test-4567",
        anthropic_base_url=llm_stub.url,
        llm_max_retries="0",
        auto_trading_enabled="true",
        auto_trading_strategies='["ema_cross"]',
        account="demo",
        order_quantities='{"BTC-USDT": "0.001"}',
        oms_target=real_oms.target,
        oms_api_key=real_oms.api_key,
    )
    # A quote for the paper venue to fill the market order against.
    quote = MarketDataEnvelope(
        venue="binance", symbol="BTC-USDT", exchange_time_ns=1, event_id="q1",
        quote=Quote(bid_price=to_pb("29999"), bid_size=to_pb("5"),
                    ask_price=to_pb("30001"), ask_size=to_pb("5")),
    )  # fmt: skip
    await kafka_io.produce(
        real_oms.market_topic, [builders.outgoing(b"binance:BTC-USDT", quote, event_id="q1", event_time_ns=1)]
    )
    await asyncio.sleep(1.0)  # the OMS consumes its market data topic from the start

    signal = signal_factory(signal_id=str(uuid.uuid4()))
    (record,) = await signal_records(kafka_io, builders, signal)
    assert await invoke(build_event([record])) == {"batchItemFailures": []}

    published = await kafka_io.read(decisions, min_count=1)
    assert len(published) == 1
    decision = decode(published[0].value, published[0].headers, Decision)
    coid = client_order_id(signal.signal_id, "demo")
    assert decision.verdict == Verdict.VERDICT_APPROVE, decision.rationale
    assert decision.client_order_id == coid and "order " in decision.rationale
    assert {v.analyst: v.vote for v in decision.votes} == {
        "technical_confluence": Vote.VOTE_LONG,
        "risk_reward": Vote.VOTE_LONG,
        "llm_openai": Vote.VOTE_LONG,
        "llm_anthropic": Vote.VOTE_LONG,
    }
    assert published[0].header("aipx-event-id") == decision.decision_id
    assert published[0].header("aipx-trace-id") == signal.signal_id

    # The LLMs were asked through their real HTTP APIs, each with its own key.
    by_provider = {r["provider"]: r for r in llm_stub.requests}
    assert by_provider["openai"]["headers"]["authorization"] == "Bearer sk-test-openai-0123"
    anthropic_headers = by_provider["anthropic"]["headers"]
    # The SDK sends the key as x-api-key or (newer versions) as a bearer token.
    assert "sk-ant-test-4567" in (anthropic_headers.get("x-api-key") or anthropic_headers["authorization"])
    assert signal.signal_id not in json.dumps(by_provider["openai"]["body"])  # the summary, not internals
    assert '\\"symbol\\": \\"BTC-USDT\\"' in json.dumps(by_provider["anthropic"]["body"])

    async with grpc.aio.insecure_channel(real_oms.target) as channel:
        oms = oms_pb2_grpc.OmsServiceStub(channel)
        meta = (("x-api-key", real_oms.api_key),)
        order = (await oms.GetOrder(oms_pb2.GetOrderRequest(client_order_id=coid), metadata=meta)).order
        assert order.side == Side.SIDE_BUY and order.type == OrderType.ORDER_TYPE_MARKET
        assert order.quantity.value == "0.001" and order.tags["signal_id"] == signal.signal_id

        # Replays: the same record again (idempotency cache), the same signal re-published (same event id),
        # and the service called directly (no cache): never a second order.
        assert await invoke(build_event([record])) == {"batchItemFailures": []}
        (again,) = await signal_records(kafka_io, builders, signal)
        assert await invoke(build_event([again])) == {"batchItemFailures": []}
        outcome = await asyncio.to_thread(handler.service().handle_signal, signal)
        assert outcome.order_created is False and outcome.decision.client_order_id == coid
        listed = await oms.ListOrders(oms_pb2.ListOrdersRequest(symbols=["BTC-USDT"]), metadata=meta)
        assert [o.client_order_id for o in listed.orders].count(coid) == 1

    # The analysis endpoint: the latest signal of the instrument, analysed now.
    response = await invoke(url_event("GET", "/analysis/binance/BTC-USDT"))
    assert response["statusCode"] == 200, response
    body = json.loads(response["body"])
    assert body["signal_id"] == signal.signal_id and body["verdict"] == "APPROVE"
    assert [v["analyst"] for v in body["votes"]] == [
        "technical_confluence",
        "risk_reward",
        "llm_openai",
        "llm_anthropic",
    ]
    assert body["rationale"].startswith("approved") and {c["name"] for c in body["checks"]} >= {
        "quorum",
        "trend",
    }
    reset_service()


async def test_analysis_endpoint_and_llm_failures(
    *, lambda_runtime: Any, llm_stub: Any, signal_factory: SignalFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        monkeypatch,
        state_key_prefix=f"test:cognitive:{uuid.uuid4().hex[:8]}",
        openai_api_key="sk-test",
        openai_base_url=f"{llm_stub.url}/v1",
        anthropic_api_key="sk-ant",
        anthropic_base_url=llm_stub.url,
        llm_max_retries="0",
    )
    llm_stub.replies = {"openai": 500, "anthropic": "I would rather not say."}
    signal = signal_factory(signal_id="adhoc", symbol="ETH-USDT")
    response = await invoke(url_event("POST", "/analysis", json_format.MessageToDict(signal)))
    assert response["statusCode"] == 200, response
    votes = {v["analyst"]: v for v in json.loads(response["body"])["votes"]}
    assert votes["llm_openai"]["vote"] == "ABSTAIN" and "HTTP 500" in votes["llm_openai"]["rationale"]
    assert (
        votes["llm_anthropic"]["vote"] == "ABSTAIN"
        and "unusable reply" in votes["llm_anthropic"]["rationale"]
    )
    assert json.loads(response["body"])["verdict"] == "APPROVE"  # two deterministic analysts still agree

    assert (await invoke(url_event("GET", "/analysis/binance/NOPE-USDT")))["statusCode"] == 404
    assert (await invoke(url_event("POST", "/analysis", "[1, 2]")))["statusCode"] == 400
    assert (await invoke(url_event("POST", "/analysis", {"symbol": "X", "bogus": 1})))["statusCode"] == 400
    no_price = json_format.MessageToDict(signal_factory(price="0"))
    assert (await invoke(url_event("POST", "/analysis", no_price)))["statusCode"] == 400

    # Without keys the LLM analysts abstain and nothing is called.
    monkeypatch.delenv("AIPX_COGNITIVE_OPENAI_API_KEY")
    monkeypatch.delenv("AIPX_COGNITIVE_ANTHROPIC_API_KEY")
    reset_service()
    calls = len(llm_stub.requests)
    body = json.loads(
        (await invoke(url_event("POST", "/analysis", json_format.MessageToDict(signal))))["body"]
    )
    assert {v["analyst"]: v["rationale"] for v in body["votes"] if v["vote"] == "ABSTAIN"} == {
        "llm_openai": "no API key configured",
        "llm_anthropic": "no API key configured",
    }
    assert len(llm_stub.requests) == calls
    reset_service()


async def test_oms_outage_fails_the_record_and_publishes_nothing(
    *,
    kafka_io: Any,
    builders: Any,
    lambda_runtime: Any,
    new_topic: Any,
    signal_factory: SignalFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from socket import socket

    with socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    decisions = await new_topic()
    configure(
        monkeypatch,
        decisions_topic=decisions,
        state_key_prefix=f"test:cognitive:{uuid.uuid4().hex[:8]}",
        auto_trading_enabled="true",
        auto_trading_strategies='["*"]',
        order_quantities='{"BTC-USDT": "0.001"}',
        oms_target=dead,
        oms_api_key="k",
        oms_timeout_s="1",
    )
    signal = signal_factory(signal_id=str(uuid.uuid4()))
    rejected = signal_factory(signal_id=str(uuid.uuid4()), trend=-1.0)  # rejected: no order needed
    records = await signal_records(kafka_io, builders, signal, rejected)
    response = await invoke(build_event(records))
    assert response["batchItemFailures"] == [
        {"itemIdentifier": {"partition": records[0].topic_partition, "offset": records[0].offset}}
    ]
    published = [decode(r.value, r.headers, Decision) for r in await kafka_io.read(decisions, min_count=1)]
    assert [d.signal_id for d in published] == [rejected.signal_id]
    assert published[0].verdict == Verdict.VERDICT_REJECT and "trend" in published[0].rationale
    reset_service()
