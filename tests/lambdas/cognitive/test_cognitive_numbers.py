"""Numbers in trading signals at the cognitive function: real broker and Redis, the real handler.

A signal whose price, stop loss or take profit the strict parser refuses ('1e-999999999', '1e400', full-width
digits, ...) is dead-lettered with the field in the error and decides nothing; a well-formed one is decided
and its decision published.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aipx.money import InvalidDecimalError, parse_decimal
from aipx.msk import build_event
from aipx.serde import HEADER_DLQ_ERROR, HEADER_DLQ_OFFSET, HEADER_DLQ_PARTITION, decode
from aipx.topics import TRADING_SIGNALS, catalogue
from aipx.v1.decisions_pb2 import Decision
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.lambdas.cognitive.test_cognitive_handler import (  # the autouse fixture closes the service
    SignalFactory,
    _closed_service,  # noqa: F401
    configure,
    invoke,
    signal_records,
)

pytestmark = pytest.mark.integration

FULLWIDTH_12 = "\uff11\uff12"
LISTED = ["1e-999999999", "1e400", "1e30", FULLWIDTH_12, "1e999999999", "1e-9999999", "NaN"]
FIELDS = ["price", "stop_loss", "take_profit"]
TEXTS = st.one_of(
    st.sampled_from(LISTED),
    st.from_regex(r"\A[+-]?[0-9]{1,22}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,10})?\Z"),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30),
)


def refused(text: str) -> bool:
    try:
        parse_decimal(text, field="x")
    except InvalidDecimalError:
        return True
    return False


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
    dlq = catalogue().dlq_for(TRADING_SIGNALS).name
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
            if refused(items[i][1])
        }
        keys = {r.key for r in records}
        parked = [r for r in await kafka_io.read(dlq, min_count=len(bad)) if r.key in keys]
        by_offset = {
            (int(r.header(HEADER_DLQ_PARTITION) or -1), int(r.header(HEADER_DLQ_OFFSET) or -1)): r
            for r in parked
        }
        assert set(by_offset) == set(bad), items
        for offset, field in bad.items():
            assert field in (by_offset[offset].header(HEADER_DLQ_ERROR) or ""), items
        wanted = {s.signal_id for s, (_, text) in zip(signals, items, strict=True) if not refused(text)}
        wanted.add(good.signal_id)
        deadline = loop.time() + 30
        while not wanted <= decided and loop.time() < deadline:
            for record in await kafka_io.read(decisions, min_count=0, idle_s=0.3):
                decided.add(decode(record.value, record.headers, Decision).signal_id)
        assert good.signal_id in decided, "the good signal after the bad ones was decided"

    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(items=st.lists(st.tuples(st.sampled_from(FIELDS), TEXTS), min_size=1, max_size=8))
    @example(items=[(field, text) for field in FIELDS for text in LISTED])
    def fuzz(items: list[tuple[str, str]]) -> None:
        asyncio.run_coroutine_threadsafe(batch(items), loop).result(180)

    await asyncio.to_thread(fuzz)
