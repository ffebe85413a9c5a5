"""The Kafka broker restarted mid-stream: nothing the service received is lost, per-instrument order holds."""

from __future__ import annotations

import asyncio
import time

import pytest
from aipx_stack.base import Stack

from .conftest import PipelineFactory, assert_books_consistent, assert_ordered_and_complete

pytestmark = [pytest.mark.integration, pytest.mark.disruptive]


async def test_broker_restart_mid_stream_loses_no_received_message(
    pipeline: PipelineFactory, stack: Stack
) -> None:
    p = await pipeline(sim_rate=150)
    await p.synced()
    out = "aipx_ingestion_messages_out_total"
    before_restart = p.metric(out)
    down_ns = time.time_ns()
    await asyncio.to_thread(stack.restart, "kafka")  # the event loop keeps reading the feeds meanwhile
    up_ns = time.time_ns()
    assert (up_ns - down_ns) / 1e9 < 30, "the restart took longer than the 30 s this test is about"
    await p.until(
        lambda: p.metric(out) > before_restart + 300, within_s=60, what="deliveries after the restart"
    )
    records = await p.consume(within_s=60)
    # Contiguous source sequences per instrument from the first record to the last: every envelope the
    # service created (including those received while the broker was away) reached the topic, in order.
    assert_ordered_and_complete(records)
    assert_books_consistent(records)
    during = [r for r in records if down_ns <= r.envelope.ingest_time_ns <= up_ns]
    assert len(during) > 100, f"only {len(during)} envelopes were received while the broker restarted"
    assert p.metric("aipx_ingestion_dropped_total") == 0
    assert not [r for r in records if r.envelope.WhichOneof("payload") == "gap"]  # the feed never stalled
