"""Numbers in order events at the notification function: real broker and Redis, the real handler, a local
HTTP server standing in for the channels.

An order event whose quantity, price, fill or fee the strict parser refuses is dead-lettered with the field
in the error and notifies nobody; a well-formed one is delivered with its decimals in positional text.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aipx.money import format_decimal, parse_decimal
from aipx.serde import HEADER_DLQ_ERROR
from aipx.topics import ORDER_EVENTS
from aipx.v1.orders_pb2 import OrderEvent
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.lambdas.notification.conftest import Recorder
from tests.lambdas.notification.test_notification_handler import (  # the autouse fixture closes the service
    _closed_service,  # noqa: F401
    configure,
    filled,
    invoke,
    publish,
)
from tests.lambdas.numbers import FULLWIDTH_12, FUZZ, TEXTS, dead_letters, refused, run_on

pytestmark = pytest.mark.integration

FIELDS = ["order.quantity", "order.price", "fill.quantity", "fill.price", "fill.fee"]


async def test_bad_decimals_in_order_events_are_dead_lettered_naming_the_field(
    *, kafka_io: Any, builders: Any, lambda_runtime: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, recorder)
    loop = asyncio.get_running_loop()

    async def one(field: str, text: str) -> None:
        event_id = str(uuid.uuid4())
        event: OrderEvent = filled(event_id)
        message, name = field.split(".")
        getattr(getattr(event, message), name).value = text
        key = f"num-{event_id}".encode()
        record = await publish(kafka_io, builders, ORDER_EVENTS, key=key, message=event, event_id=event_id)
        assert await invoke(record) == {"batchItemFailures": []}
        if refused(text):
            parked = await dead_letters(kafka_io, ORDER_EVENTS, {key}, min_count=1)
            assert list(parked) == [(record.partition, record.offset)]
            assert field in (parked[(record.partition, record.offset)].header(HEADER_DLQ_ERROR) or ""), text
            assert not [t for t in recorder.texts("/sendMessage", event_id)]
        elif field == "fill.quantity":  # the template shows it: positional text, never an exponent
            shown = f"Filled BUY {format_decimal(parse_decimal(text))} BTC-USDT".encode()
            assert any(shown in r.body for r in recorder.received), (text, "not delivered as", shown)

    @settings(FUZZ, max_examples=15)
    @given(field=st.sampled_from(FIELDS), text=TEXTS)
    @example(field="order.quantity", text="1e-999999999")
    @example(field="order.price", text="1e400")
    @example(field="fill.price", text="1e-9999999")
    @example(field="fill.quantity", text=FULLWIDTH_12)
    @example(field="fill.fee", text="1e999999999")
    @example(field="fill.quantity", text="1E-5")
    @example(field="fill.quantity", text="0")
    @example(field="fill.quantity", text="-1")
    @example(field="fill.price", text="-0")
    def fuzz(field: str, text: str) -> None:
        run_on(loop, one(field, text), 120)

    await asyncio.to_thread(fuzz)
