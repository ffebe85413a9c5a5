"""Numbers in trading signals at the cognitive function: real broker and Redis, the real handler.

A signal whose price, stop loss or take profit the strict parser refuses ('1e-999999999', '1e400', full-width
digits, ...), or whose reference price is not positive, is dead-lettered with the field in the error and
decides nothing; a well-formed one is decided and its decision published.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aipx.money import parse_decimal
from aipx.msk import build_event
from aipx.serde import HEADER_DLQ_ERROR, decode
from aipx.topics import TRADING_SIGNALS
from aipx.v1.decisions_pb2 import Decision
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.lambdas.cognitive.test_cognitive_handler import (  # the autouse fixture closes the service
    SignalFactory,
    _closed_service,  # noqa: F401
    configure,
    invoke,
    signal_records,
)
from tests.lambdas.numbers import FUZZ, LISTED, TEXTS, dead_letters, refused, run_on

pytestmark = pytest.mark.integration

FIELDS = ["price", "stop_loss", "take_profit"]


def dead_lettered(field: str, text: str) -> bool:
    """The strict parser refuses the text, or it is a price the domain refuses (a signal's reference price
    must be positive: '0' or '-3' parse but are dead-lettered too)."""
    return refused(text) or (field == "price" and parse_decimal(text, field=field) <= 0)


async def test_bad_decimals_in_signals_are_dead_lettered_naming_the_field(
    *,
    kafka_io: Any, builders: Any, lambda_runtime: Any, new_topic: Any, signal_factory: SignalFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    decisions = await new_topic()
    configure(
        monkeypatch, decisions_topic=decisions, state_key_prefix=f"test:cognitive:{uuid.uuid4().hex[:8]}"
    )
    loop = asyncio.get_running_loop()
    decided: set[str] = set()

    async def batch(items: list[tuple[str, str]]) -> None:
        signals = []
        for field, text in items:
            signal = signal_factory(signal_id=str(uuid.uuid4()), symbol=f"N{uuid.uuid4().hex[:6]}-USDT")
            getattr(signal, field).value = text
            signals.append(signal)
        good = signal_factory(signal_id=str(uuid.uuid4()))  # after the bad ones: the batch goes on
        records = await signal_records(kafka_io, builders, *signals, good)
        assert (await invoke(build_event(records)))["batchItemFailures"] == []
        bad = {
            (records[i].partition, records[i].offset): items[i][0]
            for i in range(len(items))
            if dead_lettered(*items[i])
        }
        by_offset = await dead_letters(
            kafka_io, TRADING_SIGNALS, {r.key for r in records}, min_count=len(bad)
        )
        assert set(by_offset) == set(bad), items
        for offset, field in bad.items():
            assert field in (by_offset[offset].header(HEADER_DLQ_ERROR) or ""), items
        wanted = {s.signal_id for s, item in zip(signals, items, strict=True) if not dead_lettered(*item)}
        wanted.add(good.signal_id)
        deadline = loop.time() + 30
        while not wanted <= decided and loop.time() < deadline:
            for record in await kafka_io.read(decisions, min_count=0, idle_s=0.3):
                decided.add(decode(record.value, record.headers, Decision).signal_id)
        assert good.signal_id in decided, "the good signal after the bad ones was decided"

    @settings(FUZZ, max_examples=5)
    @given(items=st.lists(st.tuples(st.sampled_from(FIELDS), TEXTS), min_size=1, max_size=8))
    @example(items=[(field, text) for field in FIELDS for text in LISTED])
    @example(items=[("price", "0"), ("price", "-3"), ("stop_loss", "0")])
    def fuzz(items: list[tuple[str, str]]) -> None:
        run_on(loop, batch(items), 180)

    await asyncio.to_thread(fuzz)
