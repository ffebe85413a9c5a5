"""The notification handler against the real broker and Redis, delivering to a local HTTP server that records
what it receives (standing in for Telegram, Slack and a webhook receiver): routing, templates, retries that
honour 429 Retry-After, HMAC signatures, no event sent twice per channel, secrets never logged."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aipx.lambda_kit import FakeLambdaContext, MskRecord, default_runtime
from aipx.money import to_pb
from aipx.msk import build_event
from aipx.topics import ORDER_EVENTS, TRADING_DECISIONS, catalogue
from aipx.v1.common_pb2 import Side
from aipx.v1.decisions_pb2 import Decision, Verdict
from aipx.v1.orders_pb2 import Fill, Order, OrderEvent, OrderEventType, OrderStatus
from aipx_notification import handler
from aipx_notification.channels.webhook import SIGNATURE_HEADER, verify_signature

from tests.lambdas.notification.conftest import Recorder

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


TOKEN = "123456:SECRET-token-AbC"
SLACK_PATH = "/slack/services/T0/B0/SLACKsecretXYZ"
HOOK_SECRET = "whsec-s3cr3t-value"


def configure(monkeypatch: pytest.MonkeyPatch, rec: Recorder, **extra: str) -> None:
    values = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_CHAT_ID": "-1001",
        "TELEGRAM_BASE_URL": rec.url,
        "SLACK_WEBHOOK_URL": rec.url + SLACK_PATH,
        "WEBHOOKS": json.dumps([{"name": "ops", "url": rec.url + "/hook", "secret": HOOK_SECRET}]),
        "ROUTES": json.dumps({"order.filled": ["*"], "decision.approve": ["slack", "webhook:ops"]}),
        "TEMPLATES": json.dumps({"order.filled": "Filled {side} {fill_quantity} {symbol} @ {fill_price}"}),
        "DEDUPE_KEY_PREFIX": f"test:notification:{uuid.uuid4().hex[:8]}",
        "BACKOFF_BASE_S": "0.05",
        **extra,
    }
    for name, value in values.items():
        monkeypatch.setenv(f"AIPX_NOTIFICATION_{name}", value)
    reset_service()


def filled(event_id: str) -> OrderEvent:
    return OrderEvent(
        event_id=event_id,
        type=OrderEventType.ORDER_EVENT_TYPE_FILLED,
        account_id="demo",
        order_id="o-1",
        order=Order(order_id="o-1", symbol="BTC-USDT", side=Side.SIDE_BUY, quantity=to_pb("0.001"),
                    status=OrderStatus.ORDER_STATUS_FILLED, filled_quantity=to_pb("0.001")),
        fill=Fill(quantity=to_pb("0.001"), price=to_pb("30001")),
    )  # fmt: skip


async def publish(
    kafka_io: Any, builders: Any, topic: str, *, key: bytes, message: Any, event_id: str
) -> MskRecord:
    (record,) = await kafka_io.produce(
        topic, [builders.outgoing(key, message, event_id=event_id, event_time_ns=1)]
    )
    return record  # type: ignore[no-any-return]


async def invoke(*records: MskRecord) -> dict[str, Any]:
    result: dict[str, Any] = await asyncio.to_thread(
        handler.handler, build_event(records), FakeLambdaContext("notification")
    )
    return result


async def test_deliveries_retries_dedupe_and_no_secrets_in_logs(
    *,
    kafka_io: Any,
    builders: Any,
    lambda_runtime: Any,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    handler.logger.setLevel("DEBUG")
    configure(monkeypatch, recorder)
    tg_path = f"/bot{TOKEN}/sendMessage"
    recorder.script = {
        tg_path: [(429, {}, {"ok": False, "error_code": 429, "parameters": {"retry_after": 1}})],
        SLACK_PATH: [(500, {}, {"error": "boom"}), (429, {"Retry-After": "0"}, {"error": "slow down"})],
    }
    event_id = str(uuid.uuid4())
    order_key = catalogue().get(ORDER_EVENTS).key_for(account_id="demo")
    record = await publish(
        kafka_io, builders, ORDER_EVENTS, key=order_key, message=filled(event_id), event_id=event_id
    )
    assert await invoke(record) == {"batchItemFailures": []}

    telegram, slack, hook = recorder.at(tg_path), recorder.at(SLACK_PATH), recorder.at("/hook")
    assert len(telegram) == 2 and telegram[1].at - telegram[0].at >= 0.95  # waited the 1 s asked for
    assert json.loads(telegram[1].body) == {
        "chat_id": "-1001", "text": "Filled BUY 0.001 BTC-USDT @ 30001", "disable_web_page_preview": True,
    }  # fmt: skip
    assert len(slack) == 3 and json.loads(slack[-1].body) == {"text": "Filled BUY 0.001 BTC-USDT @ 30001"}
    assert len(hook) == 1
    assert verify_signature(HOOK_SECRET, hook[0].body, hook[0].headers[SIGNATURE_HEADER.lower()])
    assert hook[0].headers["x-aipx-event-id"] == event_id
    assert json.loads(hook[0].body)["event_type"] == "order.filled"

    # Never twice: the same record again, the same event re-published, the service called directly.
    before = len(recorder.received)
    assert await invoke(record) == {"batchItemFailures": []}
    again = await publish(
        kafka_io, builders, ORDER_EVENTS, key=order_key, message=filled(event_id), event_id=event_id
    )
    assert await invoke(again) == {"batchItemFailures": []}
    from aipx_notification.domain.events import from_order_event

    report = await asyncio.to_thread(handler.service().notify, from_order_event(filled(event_id)))
    assert report.sent == [] and report.already_sent == ["telegram", "slack", "webhook:ops"]
    assert len(recorder.received) == before

    # A channel that keeps failing fails the record; the others are not re-sent when it is retried.
    decision_id = str(uuid.uuid4())
    decision = Decision(decision_id=decision_id, verdict=Verdict.VERDICT_APPROVE, symbol="BTC-USDT",
                        strategy_id="ema_cross", confidence=0.8, rationale="approved")  # fmt: skip
    recorder.script["/hook"] = [(400, {}, {"error": "bad request"})]
    key = catalogue().get(TRADING_DECISIONS).key_for(symbol="BTC-USDT")
    drec = await publish(
        kafka_io, builders, TRADING_DECISIONS, key=key, message=decision, event_id=decision_id
    )
    failed = await invoke(drec)
    assert failed == {
        "batchItemFailures": [{"itemIdentifier": {"partition": drec.topic_partition, "offset": drec.offset}}]
    }
    assert len(recorder.at(SLACK_PATH)) == 4 and len(recorder.at("/hook")) == 2  # 400: no retry
    assert await invoke(drec) == {"batchItemFailures": []}
    assert len(recorder.at(SLACK_PATH)) == 4 and len(recorder.at("/hook")) == 3
    assert "[APPROVE]" in json.loads(recorder.at("/hook")[-1].body)["text"]

    # Unrouted event types send nothing.
    accepted = filled(str(uuid.uuid4()))
    accepted.type = OrderEventType.ORDER_EVENT_TYPE_ACCEPTED
    count = len(recorder.received)
    assert await invoke(
        await publish(
            kafka_io, builders, ORDER_EVENTS, key=order_key, message=accepted, event_id=accepted.event_id
        )
    ) == {"batchItemFailures": []}
    assert len(recorder.received) == count

    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "delivery failed" in logged  # the retries were logged ...
    for secret in (TOKEN, "SLACKsecretXYZ", HOOK_SECRET):
        assert secret not in logged  # ... without any secret
    reset_service()


async def test_unreachable_channel_fails_with_a_redacted_error(
    *,
    lambda_runtime: Any,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from socket import socket

    with socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    configure(monkeypatch, recorder, SLACK_WEBHOOK_URL=dead + SLACK_PATH, MAX_ATTEMPTS="2")
    from aipx_notification.domain.events import from_order_event
    from aipx_notification.service import NotificationFailedError

    caplog.set_level(logging.DEBUG)
    with pytest.raises(NotificationFailedError) as info:
        await asyncio.to_thread(handler.service().notify, from_order_event(filled(str(uuid.uuid4()))))
    assert "slack: ClientConnectorError" in str(info.value)
    assert "SLACKsecretXYZ" not in str(info.value) and "SLACKsecretXYZ" not in caplog.text
    assert len(recorder.at(f"/bot{TOKEN}/sendMessage")) == 1  # the other channels were still delivered
    reset_service()
