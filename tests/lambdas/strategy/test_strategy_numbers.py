"""Numbers in market-data records at the strategy function: real broker and Redis, the real handler.

Trades whose price or quantity the strict parser refuses (aipx.money.parse_decimal: '1e-999999999', '1e400',
full-width digits, ...) or that are not positive go to the DLQ with the field in the error; the batch
reports no failure and the other trades of the batch are processed.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from aipx.money import InvalidDecimalError, parse_decimal
from aipx.serde import HEADER_DLQ_ERROR
from aipx.topics import MARKET_DATA_RAW
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.lambdas.numbers import FULLWIDTH_12, FUZZ, dead_letters, run_on
from tests.lambdas.strategy.test_strategy_handler import (  # the autouse fixture closes the service
    _closed_service,  # noqa: F401
    configure,
    invoke,
    market_data,
)

pytestmark = pytest.mark.integration

LISTED = ["1e-999999999", "1e400", "1e30", FULLWIDTH_12, "1e999999999", "1e-9999999", "NaN", "-1", "0"]
TEXTS = st.one_of(
    st.sampled_from(LISTED),
    st.from_regex(r"\A[+-]?[0-9]{0,22}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,10})?\Z"),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30),
)


def refused_reason(price: str, quantity: str) -> str | None:
    """The field the strategy must name when it dead-letters this trade, or None when it takes it."""
    try:
        p = parse_decimal(price, field="trade.price")
    except InvalidDecimalError:
        return "trade.price"
    try:
        q = parse_decimal(quantity, field="trade.quantity")
    except InvalidDecimalError:
        return "trade.quantity"
    return "must be > 0" if p <= Decimal(0) or q < Decimal(0) else None


async def test_bad_trade_numbers_are_dead_lettered_and_the_batch_goes_on(
    *,
    kafka_io: Any, lambda_runtime: Any, new_topic: Any, trades: Any, builders: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    outgoing_for = market_data(builders)
    configure(monkeypatch, await new_topic(), f"test:strategy:{uuid.uuid4().hex[:8]}")
    loop = asyncio.get_running_loop()

    async def one_batch(pairs: list[tuple[str, str]]) -> None:
        venue = f"num{uuid.uuid4().hex[:8]}"
        envelopes = trades(len(pairs) // 4 + 2, venue=venue)[: len(pairs) + 2]
        expected: dict[int, str] = {}
        for index, (price, quantity) in enumerate(pairs, start=1):  # envelopes[0] and [-1] stay good
            envelope: MarketDataEnvelope = envelopes[index]
            envelope.trade.price.value, envelope.trade.quantity.value = price, quantity
            reason = refused_reason(price, quantity)
            if reason is not None:
                expected[index] = reason
        recs = await kafka_io.produce(MARKET_DATA_RAW, [outgoing_for(e) for e in envelopes])
        assert await invoke(recs) == [{"batchItemFailures": []}]
        key = f"{venue}:BTC-USDT".encode()
        parked = await dead_letters(kafka_io, MARKET_DATA_RAW, {key}, min_count=len(expected))
        source = {index: (recs[index].partition, recs[index].offset) for index in expected}
        assert set(parked) == set(source.values()), (pairs, expected)
        for index, reason in expected.items():
            assert reason in (parked[source[index]].header(HEADER_DLQ_ERROR) or ""), pairs[index - 1]

    @settings(FUZZ, max_examples=5)
    @given(pairs=st.lists(st.tuples(TEXTS, TEXTS), min_size=1, max_size=12))
    @example(pairs=[(text, "0.01") for text in LISTED] + [("30000.5", text) for text in LISTED])
    def fuzz(pairs: list[tuple[str, str]]) -> None:
        run_on(loop, one_batch(pairs), 180)

    await asyncio.to_thread(fuzz)
