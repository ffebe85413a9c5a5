"""The notification function through the local event-source runner (lambdas/runner) on the real topics: an
order event published to order-events reaches the recording server; a channel failure fails the record, the
runner retries it, and the channels already served are not sent to again."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aipx.lambda_kit import default_runtime
from aipx.money import to_pb
from aipx.topics import ORDER_EVENTS, catalogue
from aipx.v1.common_pb2 import Side
from aipx.v1.orders_pb2 import Fill, Order, OrderEvent, OrderEventType, OrderStatus
from aipx_notification import handler
from aipx_runner import Backoff, Runner, RunnerConfig

from tests.lambdas.notification.conftest import Recorder

pytestmark = pytest.mark.integration

TOKEN = "987654:RUNNER-secret-token"
SLACK_PATH = "/slack/services/T9/B9/RUNNERslackSECRET"


@pytest.fixture(autouse=True)
def _closed_service(lambda_runtime: Any) -> Iterator[None]:
    """Closes the service on the test's runtime before that runtime is closed."""
    handler.service.cache_clear()
    yield
    if handler.service.cache_info().currsize:
        default_runtime().run(handler.service().close())
    handler.service.cache_clear()


async def eventually(check: Any, within_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not check():
        if loop.time() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.1)


async def test_order_event_through_the_runner_with_a_retried_channel(
    *,
    kafka_bootstrap: str,
    kafka_io: Any,
    builders: Any,
    lambda_runtime: Any,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_CHAT_ID": "7",
        "TELEGRAM_BASE_URL": recorder.url,
        "SLACK_WEBHOOK_URL": recorder.url + SLACK_PATH,
        "ROUTES": json.dumps({"order.filled": ["*"]}),
        "DEDUPE_KEY_PREFIX": f"test:notification:{uuid.uuid4().hex[:8]}",
        "MAX_ATTEMPTS": "2",
        "BACKOFF_BASE_S": "0.01",
    }.items():
        monkeypatch.setenv(f"AIPX_NOTIFICATION_{name}", value)
    group = f"test-notification-runner-{uuid.uuid4().hex[:8]}"
    config = RunnerConfig.from_manifest(
        ["notification"],
        bootstrap_servers=kafka_bootstrap,
        group_ids={"aipx-notification-orders": group, "aipx-notification-decisions": group + "-decisions"},
        backoff=Backoff(base_s=0.05, max_s=0.2),
        starting_position="LATEST",
        batching_window_s=0.05,
    )
    runner = Runner(config)
    task = asyncio.create_task(runner.run())
    try:
        await runner.wait_ready(within_s=30)
        # Slack fails three times: two attempts in the first invocation, one more in the retry.
        recorder.script[SLACK_PATH] = [(503, {}, "unavailable")] * 3
        order_id = f"o-{uuid.uuid4().hex[:8]}"
        event = OrderEvent(
            event_id=str(uuid.uuid4()),
            type=OrderEventType.ORDER_EVENT_TYPE_FILLED,
            account_id="demo",
            order_id=order_id,
            order=Order(order_id=order_id, symbol="BTC-USDT", side=Side.SIDE_SELL, quantity=to_pb("0.5"),
                        status=OrderStatus.ORDER_STATUS_FILLED, filled_quantity=to_pb("0.5")),
            fill=Fill(quantity=to_pb("0.5"), price=to_pb("31000")),
        )  # fmt: skip
        key = catalogue().get(ORDER_EVENTS).key_for(account_id="demo")
        await kafka_io.produce(
            ORDER_EVENTS, [builders.outgoing(key, event, event_id=event.event_id, event_time_ns=1)]
        )
        await eventually(lambda: len(recorder.texts(SLACK_PATH, order_id)) == 4)
        await asyncio.sleep(0.5)  # nothing more may arrive
        assert len(recorder.texts(SLACK_PATH, order_id)) == 4  # 3 failures, then the success
        (telegram,) = recorder.texts(
            "/sendMessage", order_id
        )  # once, although the record was processed twice
        assert telegram.startswith(f"[FILLED] SELL 0.5 BTC-USDT @ 31000 — order {order_id}")
    finally:
        runner.stop()
        await asyncio.wait_for(task, timeout=30)
