"""The Kafka broker stopped mid-stream for ~20-30 s and started again: nothing the service received is lost,
and per-instrument order holds."""

from __future__ import annotations

import asyncio
import time

import pytest
from aipx_stack.base import Stack

from .conftest import PipelineFactory, assert_books_consistent, assert_ordered_and_complete

pytestmark = [pytest.mark.integration, pytest.mark.disruptive]

HOLD_DOWN_S = 15.0


async def test_broker_outage_mid_stream_loses_no_received_message(
    pipeline: PipelineFactory, stack: Stack
) -> None:
    p = await pipeline(sim_rate=150)
    await p.synced()
    out = "aipx_ingestion_messages_out_total"
    before = p.metric(out)
    down_ns = time.time_ns()
    # Stop the broker, keep it away, start it again. The event loop keeps reading the feeds meanwhile (the
    # blocking stack calls run in a thread): envelopes wait in the bounded buffer and the producer.
    await asyncio.to_thread(stack.stop, "kafka")
    try:
        await asyncio.sleep(HOLD_DOWN_S)
    finally:
        await asyncio.to_thread(stack.start, "kafka")
    up_ns = time.time_ns()
    outage_s = (up_ns - down_ns) / 1e9
    assert HOLD_DOWN_S <= outage_s < 45, f"outage of {outage_s:.1f}s"
    await p.until(lambda: p.metric(out) > before + 300, within_s=60, what="deliveries after the outage")
    records = await p.consume(within_s=60)
    # Contiguous source sequences per instrument from the first record to the last: every envelope the
    # service created (including those received while the broker was away) reached the topic, in order.
    assert_ordered_and_complete(records)
    assert_books_consistent(records)
    during = [r for r in records if down_ns <= r.envelope.ingest_time_ns <= up_ns]
    # ~150 market events/s for the whole outage: thousands of envelopes were held and then delivered.
    assert len(during) > 100 * HOLD_DOWN_S, f"only {len(during)} envelopes were received during the outage"
    assert p.metric("aipx_ingestion_dropped_total") == 0
    assert not [r for r in records if r.envelope.WhichOneof("payload") == "gap"]  # the feed never stalled
