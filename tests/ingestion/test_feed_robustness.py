"""Feed robustness against the real simulator: a venue that accepts then drops, unanswered pings, numbers out
of bounds, and the REST used-weight header."""

from __future__ import annotations

import asyncio
import subprocess
import time
from itertools import pairwise

import aiohttp
import orjson
import pytest
from aipx_exchange_sim.server import ExchangeSimulator
from aipx_exchange_sim.settings import SimSettings
from aipx_ingestion.adapters.rest import SnapshotClient, WeightBudget

from tests.ingestion.conftest import (
    Pipeline,
    PipelineFactory,
    assert_books_consistent,
    assert_ordered_and_complete,
)

BINANCE_ONLY = {"venues": ("binance",)}


def _reconnects(p: Pipeline) -> float:
    return p.metric("aipx_ingestion_reconnects_total", venue="binance")


async def _connections(p: Pipeline, n: int, within_s: float = 30.0) -> None:
    await p.until(lambda: p.sim.stats["binance.connections"] >= n, within_s, f"{n} binance connections")


async def test_a_venue_that_accepts_then_drops_is_backed_off_until_a_connection_stays_up(
    pipeline: PipelineFactory,
) -> None:
    p = await pipeline(
        reconnect_initial_s=0.1, reconnect_max_s=5.0, reconnect_reset_after_s=1.0, **BINANCE_ONLY
    )
    await p.until(lambda: p.metric("aipx_ingestion_messages_out_total") > 0, what="first envelopes")
    first = p.sim.connection_times[0]
    await p.until(lambda: time.monotonic() - first > 1.2, what="the first connection to count as healthy")
    drops, after_s = 5, 0.05
    await p.sim.control("accept_then_drop", {"count": drops, "after_s": after_s, "venue": "binance"})
    await p.sim.control("disconnect", {"venue": "binance", "abort": True})
    await _connections(p, 1 + drops + 1)
    # Connections 1..5 after the disconnect are dropped 50 ms after being accepted; each counts as a failed
    # attempt, so the pause before the next one grows: attempt k waits at least 0.1 * 2^(k-1) / 2.
    times = p.sim.connection_times[1 : 2 + drops]
    gaps = [b - a - after_s for a, b in pairwise(times)]
    for k, gap in enumerate(gaps, 1):
        assert gap >= 0.1 * 2 ** (k - 1) / 2 * 0.95, f"attempt {k} came {gap:.3f}s after the drop: {gaps}"
    assert gaps[-1] >= 0.75, gaps  # the old behaviour: a reconnect every 0.05-0.1 s, forever
    assert p.sim.stats["accepted_then_dropped"] == drops
    # The last connection stays: once it has been up past reconnect_reset_after_s, the backoff starts over.
    last = p.sim.connection_times[-1]
    await p.until(lambda: time.monotonic() - last > 1.2, what="the last connection to count as healthy")
    await p.sim.control("disconnect", {"venue": "binance", "abort": True})
    await _connections(p, 1 + drops + 2)
    delay = p.metric("aipx_ingestion_reconnect_delay_seconds", connection="binance-0")
    assert 0.05 <= delay <= 0.1, f"backoff did not reset after a healthy connection: {delay}"
    before = p.metric("aipx_ingestion_messages_out_total")
    await p.until(lambda: p.metric("aipx_ingestion_messages_out_total") > before, what="data again")


async def test_a_connection_whose_pings_go_unanswered_is_replaced(pipeline: PipelineFactory) -> None:
    p = await pipeline(ping_interval_s=0.3, ping_timeout_s=0.6, stale_after_s=60.0, **BINANCE_ONLY)
    await p.until(lambda: p.metric("aipx_ingestion_connections", venue="binance") == 1, what="a connection")
    muted = await p.sim.control("mute", {"venue": "binance"})
    assert muted == {"muted": 1}
    # Frames keep flowing to us (no stale feed), but our pings are never answered: the keepalive ends it.
    await _connections(p, 2)
    reasons = {
        s.labels["reason"]
        for f in p.registry.collect()
        for s in f.samples
        if s.name == "aipx_ingestion_reconnects_total" and s.value
    }
    assert reasons and all(r.startswith("closed_") for r in reasons), reasons
    before = p.metric("aipx_ingestion_messages_out_total")
    await p.until(lambda: p.metric("aipx_ingestion_messages_out_total") > before, what="data on the new one")
    await p.until(lambda: p.metric("aipx_ingestion_connections", venue="binance") == 1, what="one connection")


async def test_numbers_out_of_bounds_are_counted_and_the_connection_stays_up(
    pipeline: PipelineFactory,
) -> None:
    p = await pipeline(**BINANCE_ONLY)
    await p.until(lambda: p.metric("aipx_ingestion_messages_out_total") > 0, what="first envelopes")

    def trade(t: int, price: str, time_ms: int) -> str:
        data = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": t, "p": price, "q": "1", "T": time_ms, "m": True}
        return orjson.dumps({"stream": "btcusdt@trade", "data": data}).decode()

    now_ms = int(time.time() * 1000)
    timestamps = [2**53, 2**53 + 1, 2**63 - 1, 2**64 - 1]
    prices = ["1e-999999999", "1e400", "1e30", "1e999999999", "\uff11\uff12"]
    frames = [trade(1, "1", ts) for ts in timestamps] + [trade(1, price, now_ms) for price in prices]
    assert await p.sim.control("inject", {"venue": "binance", "frames": frames}) == {"clients": 1}
    await p.until(
        lambda: p.metric("aipx_ingestion_malformed_frames_total") >= len(frames), what="malformed frames"
    )
    assert p.metric("aipx_ingestion_malformed_frames_total", reason="out_of_range") == len(timestamps)
    assert p.metric("aipx_ingestion_malformed_frames_total", reason="bad_decimal") == len(prices)
    before = p.metric("aipx_ingestion_messages_out_total")
    await p.until(lambda: p.metric("aipx_ingestion_messages_out_total") > before, what="data after them")
    assert _reconnects(p) == 0 and p.sim.stats["binance.connections"] == 1


async def test_the_rest_used_weight_header_holds_requests_until_the_next_window() -> None:
    sim = ExchangeSimulator(SimSettings(ws_port=0, rest_port=0, rate=0, symbols=("BTC-USDT",)))
    await sim.start()
    try:
        budget = WeightBudget("X-MBX-USED-WEIGHT-1M", limit=6000, window_s=60.0, request_weight=50)
        async with aiohttp.ClientSession() as http:
            client = SnapshotClient(http, rate_per_s=100, burst=10, budget=budget)
            url = f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=1000"
            await sim.control("used_weight", {"used": 1000})
            await client.fetch(url)
            assert client.used_weight == 1050 and client.blocked_for() == 0
            await sim.control("used_weight", {"used": 5960})
            await client.fetch(url)  # the venue now reports 6010 of 6000
            assert client.used_weight == 6010
            assert client.blocked_for() > 0.4, "the client must wait for the next weight window"
            served = sim.stats["snapshots"]
            held = asyncio.create_task(client.fetch(url))
            await asyncio.sleep(min(0.3, client.blocked_for() / 2))
            assert not held.done() and sim.stats["snapshots"] == served, "a request went out over the limit"
            held.cancel()
            await asyncio.gather(held, return_exceptions=True)
    finally:
        await sim.stop()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (openssl), as a test venue would present."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


async def test_wss_with_the_venues_certificate_trusted(
    pipeline: PipelineFactory, self_signed: tuple[str, str]
) -> None:
    cert, key = self_signed
    p = await pipeline(sim={"tls_cert_file": cert, "tls_key_file": key}, tls_ca_file=cert)
    assert p.sim.ws_url.startswith("wss://")
    await p.synced()  # both venues over TLS, books initialised
    await p.until(lambda: p.metric("aipx_ingestion_messages_out_total", type="trade") >= 20, what="trades")
    assert p.metric("aipx_ingestion_reconnects_total") == 0
    records = await p.consume()
    assert_ordered_and_complete(records)
    assert_books_consistent(records)


async def test_wss_refuses_an_untrusted_certificate(
    pipeline: PipelineFactory, self_signed: tuple[str, str]
) -> None:
    cert, key = self_signed
    p = await pipeline(sim={"tls_cert_file": cert, "tls_key_file": key}, reconnect_max_s=0.2, **BINANCE_ONLY)
    await p.until(
        lambda: p.metric("aipx_ingestion_reconnects_total", venue="binance", reason="connect_failed") >= 2,
        what="connect failures against an untrusted certificate",
    )
    assert p.metric("aipx_ingestion_messages_out_total") == 0
    assert p.metric("aipx_ingestion_connections", venue="binance") == 0
