"""The harness the functions' bad-number tests share: the decimal texts they try, which of them the strict
parser refuses, hypothesis driven from a worker thread against the test's event loop, and the dead letters
of a topic found by their source key and offset."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Coroutine
from typing import Any

from aipx.lambda_kit import MskRecord
from aipx.money import InvalidDecimalError, parse_decimal
from aipx.serde import HEADER_DLQ_OFFSET, HEADER_DLQ_PARTITION
from aipx.topics import catalogue
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.lambdas.conftest import KafkaIO

FULLWIDTH_12 = "\uff11\uff12"
# Texts that crashed or slipped through a parser once: tiny and huge exponents, full-width digits, NaN.
LISTED = ["1e-999999999", "1e400", "1e30", FULLWIDTH_12, "1e999999999", "1e-9999999", "NaN"]
# Decimal-looking texts (some out of range) and arbitrary ones.
TEXTS = st.one_of(
    st.sampled_from(LISTED),
    st.from_regex(r"\A[+-]?[0-9]{1,22}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,10})?\Z"),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30),
)
# Each example produces and reads real records: no per-example deadline, no example database.
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)


def refused(text: str) -> bool:
    """Whether aipx.money's strict parser refuses `text` (the functions must dead-letter it)."""
    try:
        parse_decimal(text, field="x")
    except InvalidDecimalError:
        return True
    return False


def run_on(loop: asyncio.AbstractEventLoop, check: Coroutine[Any, Any, None], timeout_s: float) -> None:
    """Run one example's `check` on the test's loop from hypothesis's thread (the test awaits
    `asyncio.to_thread(fuzz)`, so the loop stays free to run it)."""
    asyncio.run_coroutine_threadsafe(check, loop).result(timeout_s)


async def dead_letters(
    kafka_io: KafkaIO, source_topic: str, keys: Collection[bytes | None], *, min_count: int
) -> dict[tuple[int, int], MskRecord]:
    """The records of `source_topic` with one of `keys` that sit in its DLQ, by their original (partition,
    offset), each there once; waits for at least `min_count` DLQ records."""
    dlq = catalogue().dlq_for(source_topic).name
    parked = [r for r in await kafka_io.read(dlq, min_count=min_count) if r.key in keys]
    by_source = {
        (int(r.header(HEADER_DLQ_PARTITION) or -1), int(r.header(HEADER_DLQ_OFFSET) or -1)): r for r in parked
    }
    assert len(by_source) == len(parked), "a record was dead-lettered more than once"
    return by_source
