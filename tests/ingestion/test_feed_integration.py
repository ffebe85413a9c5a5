"""The ingestion service end to end: simulator WebSockets (real connections) -> service -> real Kafka."""

from __future__ import annotations

from collections import Counter

import aiohttp
import pytest

from .conftest import SYMBOLS, PipelineFactory, assert_books_consistent, assert_ordered_and_complete, by_key

pytestmark = pytest.mark.integration

KINDS = {"trade", "quote", "book_delta", "book_snapshot", "candle"}


async def test_every_venue_and_kind_reaches_kafka_ordered_per_instrument(pipeline: PipelineFactory) -> None:
    p = await pipeline()
    await p.synced()
    await p.until(lambda: p.metric("aipx_ingestion_messages_out_total", type="candle") >= 6, what="candles")
    port = p.service.ops.port
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
            assert r.status == 200
        async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
            assert r.status == 200 and (await r.json())["checks"] == {"kafka": True, "feeds": True}
        async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
            text = await r.text()
            assert "aipx_ingestion_messages_in_total" in text and "aipx_ingestion_end_to_end_latency" in text
    records = await p.consume()
    kinds = Counter((r.envelope.venue, r.envelope.WhichOneof("payload")) for r in records)
    for venue in ("binance", "bybit"):
        assert {k for v, k in kinds if v == venue} >= KINDS, f"{venue}: {kinds}"
    assert {r.key for r in records} == {
        f"{v}:{s}" for v in ("binance", "bybit") for s in ("BTC-USDT", "ETH-USDT", "SOL-USDT")
    }
    assert all(r.envelope.venue_symbol == r.envelope.symbol.replace("-", "") for r in records)
    assert_ordered_and_complete(records)
    assert_books_consistent(records)
    assert p.metric("aipx_ingestion_dropped_total") == 0
    assert p.metric("aipx_ingestion_malformed_frames_total") == 0
    assert p.metric("aipx_ingestion_end_to_end_latency_seconds_count") > 0


async def test_gaps_are_marked_and_books_resynchronised(pipeline: PipelineFactory) -> None:
    p = await pipeline()
    await p.synced()
    # Trades flowing first: a loss before the first trade seen is no gap (the stream starts after it).
    trades = "aipx_ingestion_messages_in_total"
    await p.until(lambda: p.metric(trades, venue="binance", type="trade") >= 30, what="trades flowing")
    await p.sim.control("snapshot_failures", {"count": 2})  # the REST snapshot answers 429 twice first
    p.sim.faults.drop(2, venue="binance", stream="@depth")
    p.sim.faults.drop(2, venue="bybit", stream="orderbook.50.")
    p.sim.faults.drop(3, venue="binance", stream="btcusdt@trade")
    await p.until(lambda: p.metric("aipx_ingestion_resyncs_total") >= 2, what="resyncs of both venues")
    await p.until(lambda: p.metric("aipx_ingestion_gaps_total", stream="trade") >= 1, what="a trade gap")

    # Each resynchronised book is published again as a snapshot (after the initial one per symbol).
    def resynced(venue: str) -> bool:
        gaps = p.metric("aipx_ingestion_gaps_total", venue=venue, stream="depth")
        snapshots = p.metric("aipx_ingestion_messages_out_total", venue=venue, type="book_snapshot")
        return snapshots >= len(SYMBOLS) + gaps

    await p.until(lambda: resynced("binance") and resynced("bybit"), what="resync snapshots")
    records = await p.consume()
    gaps = [r.envelope for r in records if r.envelope.WhichOneof("payload") == "gap"]
    depth = [g for g in gaps if g.gap.stream == "depth"]
    assert {g.venue for g in depth} == {"binance", "bybit"} and all(g.gap.action == "resync" for g in depth)
    trade_gaps = [g for g in gaps if g.gap.stream == "trade"]
    assert [(g.venue, g.symbol, g.gap.action) for g in trade_gaps] == [("binance", "BTC-USDT", "none")]
    assert trade_gaps[0].gap.received_id - trade_gaps[0].gap.expected_id == 3  # exactly the dropped trades
    for key, group in by_key(records).items():
        kinds = [r.envelope.WhichOneof("payload") for r in group]
        for i, r in enumerate(group):
            if r.envelope.WhichOneof("payload") == "gap" and r.envelope.gap.stream == "depth":
                after = [k for k in kinds[i + 1 :] if k in ("book_delta", "book_snapshot")]
                assert after and after[0] == "book_snapshot", (
                    f"{key}: delta published before the resync snapshot"
                )
    assert_books_consistent(records)
    assert_ordered_and_complete(records)
    assert (
        p.metric("aipx_ingestion_snapshot_requests_total", outcome="error") == 2
    )  # retried after Retry-After


async def test_silent_streams_are_resubscribed(pipeline: PipelineFactory) -> None:
    # DOGE-USDT is configured but the simulator has no such market: its streams never deliver anything.
    p = await pipeline(symbols=("BTC-USDT", "DOGE-USDT"), stale_stream_after_s=1.0)
    reason = {"reason": "stale"}
    await p.until(
        lambda: p.metric("aipx_ingestion_resubscribes_total", **reason) >= 4, what="resubscriptions"
    )
    assert p.metric("aipx_ingestion_stale_streams", venue="binance") >= 1
    assert p.metric("aipx_ingestion_reconnects_total") == 0  # the connection itself is fine
    assert_ordered_and_complete(await p.consume())


async def test_duplicates_are_dropped_and_malformed_frames_survived(pipeline: PipelineFactory) -> None:
    p = await pipeline()
    await p.synced()
    p.sim.faults.duplicate(60)
    await p.sim.control("malformed", {"count": 18})  # per venue, through the simulator's control API
    await p.until(lambda: p.metric("aipx_ingestion_malformed_frames_total") >= 36, what="malformed frames")
    await p.until(lambda: p.metric("aipx_ingestion_duplicates_total") >= 30, what="duplicates dropped")
    before = p.metric("aipx_ingestion_messages_in_total")
    await p.until(
        lambda: p.metric("aipx_ingestion_messages_in_total") > before + 50, what="data after bad frames"
    )
    families = ("invalid_json", "not_object", "unknown_type", "missing_field", "unknown_symbol")
    counted = {r for r in families if p.metric("aipx_ingestion_malformed_frames_total", reason=r) > 0}
    assert counted == set(families), f"malformed frames counted by reason: {counted}"
    records = await p.consume()
    assert_ordered_and_complete(records)  # includes: no event id published twice
    assert_books_consistent(records)
    assert not [r for r in records if r.envelope.WhichOneof("payload") == "gap"]  # a duplicate is not a gap


async def test_reconnects_after_the_simulator_drops_connections(pipeline: PipelineFactory) -> None:
    p = await pipeline()
    await p.synced()
    await p.sim.disconnect("binance", abort=True)  # TCP reset, no close handshake
    await p.sim.disconnect("bybit")  # a clean close
    await p.until(
        lambda: p.metric("aipx_ingestion_reconnects_total", venue="binance") >= 1, what="binance reconnect"
    )
    await p.until(
        lambda: p.metric("aipx_ingestion_reconnects_total", venue="bybit") >= 1, what="bybit reconnect"
    )
    await p.until(lambda: all(f.connected for f in p.service.feeds), what="both feeds connected again")
    before = p.metric("aipx_ingestion_messages_out_total")
    await p.until(
        lambda: p.metric("aipx_ingestion_messages_out_total") > before + 100, what="data after reconnect"
    )
    assert p.sim.stats["binance.connections"] == 2 and p.sim.stats["bybit.connections"] == 2
    records = await p.consume()
    assert_ordered_and_complete(records)
    assert_books_consistent(records)


async def test_stalled_feed_is_reconnected_by_the_watchdog(pipeline: PipelineFactory) -> None:
    p = await pipeline(stale_after_s=0.8)
    await p.synced()
    p.sim.faults.stall(2.0)
    await p.until(
        lambda: p.metric("aipx_ingestion_reconnects_total", reason="stale") >= 2, what="stale reconnects"
    )
    before = p.metric("aipx_ingestion_messages_out_total")
    await p.until(
        lambda: p.metric("aipx_ingestion_messages_out_total") > before + 50, what="data after the stall"
    )
    assert_ordered_and_complete(await p.consume())


async def test_connections_are_rotated_before_their_lifetime_without_loss(pipeline: PipelineFactory) -> None:
    p = await pipeline(connection_lifetime_s={"binance": 1.6, "bybit": 1.6}, rotation_margin_s=0.6)
    await p.synced()
    await p.until(lambda: p.metric("aipx_ingestion_reconnects_total", reason="rotate") >= 4, what="rotations")
    records = await p.consume()
    assert_ordered_and_complete(records)
    assert_books_consistent(records)
    # Make-before-break: the old connection is closed only once the new one is subscribed, so no trade or
    # book update is missed while rotating.
    assert not [r for r in records if r.envelope.WhichOneof("payload") == "gap"]
    assert p.metric("aipx_ingestion_duplicates_total") > 0  # the overlap was deduplicated


async def test_backpressure_bounds_the_buffer_and_loses_nothing(pipeline: PipelineFactory) -> None:
    p = await pipeline(sim_rate=3000, buffer_size=8)  # a fast feed into an 8-envelope buffer
    await p.until(lambda: p.metric("aipx_ingestion_backpressure_seconds_total") > 0, what="backpressure")
    assert p.metric("aipx_ingestion_buffer_depth") <= 8
    # Wait on the condition, not a fixed time: on a loaded machine 1 s may carry fewer than 200 records.
    await p.until(lambda: p.metric("aipx_ingestion_messages_out_total") > 200, 60, "200 records through")
    records = await p.consume()
    assert len(records) > 200
    assert_ordered_and_complete(records)
    assert p.metric("aipx_ingestion_dropped_total") == 0
