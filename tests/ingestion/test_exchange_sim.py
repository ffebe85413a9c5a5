"""The exchange simulator on its own: determinism, the control API over HTTP, replay of a recorded file."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import aiohttp
import orjson
import pytest
from aipx_exchange_sim.market import SymbolMarket
from aipx_exchange_sim.server import ExchangeSimulator
from aipx_exchange_sim.settings import SimSettings
from websockets.asyncio.client import connect


def test_a_fixed_seed_gives_the_same_market() -> None:
    def run(seed: int) -> list[tuple[int, int, int]]:
        market = SymbolMarket.create("BTC", "USDT", random.Random(seed))
        out = []
        for i in range(2_000):
            if i % 3:
                market.step_book()
            else:
                trade, _ = market.step_trade(i)
                out.append((trade.trade_id, trade.price, trade.lots))
        return out

    assert run(5) == run(5) and run(5) != run(6)
    market = SymbolMarket.create("BTC", "USDT", random.Random(1))
    for _ in range(5_000):
        market.step_book()
        assert market.best_bid == max(market.bids) < market.best_ask == min(market.asks)


async def test_control_api_over_http() -> None:
    sim = ExchangeSimulator(SimSettings(ws_port=0, rest_port=0, rate=50, symbols=("BTC-USDT",)))
    await sim.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{sim.rest_url}/control/drop", json={"count": 3, "stream": "@depth"}) as r:
                assert r.status == 200 and (await r.json())["ok"] is True
            assert sim.faults.drops and sim.faults.drops[0].count == 3
            async with http.post(f"{sim.rest_url}/control/rate", json={"rate": -1}) as r:
                assert r.status == 400 and "rate must be >= 0" in (await r.json())["error"]
            async with http.post(f"{sim.rest_url}/control/explode", json={}) as r:
                assert r.status == 400 and "unknown action" in (await r.json())["error"]
            async with http.post(f"{sim.rest_url}/control/clear") as r:
                assert r.status == 200
            assert not sim.faults.drops
            async with http.get(f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=5") as r:
                depth = await r.json()
                assert len(depth["bids"]) == 5 and depth["lastUpdateId"] > 0
            async with http.get(f"{sim.rest_url}/api/v3/depth?symbol=NOPE") as r:
                assert r.status == 400
            async with http.get(f"{sim.rest_url}/control/stats") as r:
                assert (await r.json())["clients"] == 0
    finally:
        await sim.stop()


async def test_replay_of_a_recorded_file(tmp_path: Path) -> None:
    frames = [
        {"stream": "btcusdt@trade", "data": {"e": "trade", "t": i, "s": "BTCUSDT"}, "n": i} for i in range(3)
    ]
    lines = [orjson.dumps({"rest": "/api/v3/depth?symbol=BTCUSDT&limit=10", "body": {"lastUpdateId": 7}})]
    lines += [
        orjson.dumps({"venue": "binance", "stream": "btcusdt@trade", "frame": f, "delay_ms": 20})
        for f in frames
    ]
    lines.append(b"{not json")  # a broken line is skipped, not fatal
    recording = tmp_path / "recording.jsonl"
    recording.write_bytes(b"\n".join(lines) + b"\n")
    sim = ExchangeSimulator(SimSettings(ws_port=0, rest_port=0, replay_file=str(recording), replay_speed=2.0))
    await sim.start()
    try:
        async with connect(f"{sim.ws_url}/stream?streams=btcusdt@trade", proxy=None) as ws:
            received = [orjson.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in frames]
        assert received == frames
        url = f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=10"
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            assert await r.json() == {"lastUpdateId": 7}
    finally:
        await sim.stop()


@pytest.mark.parametrize("path", ["/bybit/v5/public/spot", "/binance/stream"])
async def test_subscribe_replies(path: str) -> None:
    sim = ExchangeSimulator(SimSettings(ws_port=0, rest_port=0, rate=20, symbols=("BTC-USDT",)))
    await sim.start()
    try:
        async with connect(f"{sim.ws_url}{path}", proxy=None) as ws:
            if "bybit" in path:
                await ws.send(
                    orjson.dumps({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"], "req_id": "1"})
                )
                reply = orjson.loads(await ws.recv())
                assert reply["success"] is True and reply["op"] == "subscribe"
                snapshot = orjson.loads(await ws.recv())  # the book snapshot comes first, then deltas
                assert snapshot["type"] == "snapshot" and len(snapshot["data"]["b"]) == 50
            else:
                await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 4}))
                assert orjson.loads(await ws.recv()) == {"result": None, "id": 4}
                await ws.send(b"garbage")
                assert "error" in orjson.loads(await ws.recv())
    finally:
        await sim.stop()


async def test_fast_mode_replays_its_plan_with_fresh_times_and_valid_ids() -> None:
    settings = SimSettings(ws_port=0, rest_port=0, rate=0, symbols=("BTC-USDT", "ETH-USDT"), fast=True,
                           fast_plan_events=300)  # fmt: skip
    sim = ExchangeSimulator(settings)
    await sim.start()
    try:
        streams = "btcusdt@aggTrade/btcusdt@bookTicker/ethusdt@aggTrade"
        async with connect(f"{sim.ws_url}/stream?streams={streams}", proxy=None, max_queue=None) as ws:
            started_ms = time.time() * 1000
            received = [orjson.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2_000)]
        trade_ids: dict[str, list[int]] = {}
        update_ids: list[int] = []
        for frame in received:
            data = frame["data"]
            if frame["stream"].endswith("@aggTrade"):
                assert data["a"] == data["f"] == data["l"] and data["E"] == data["T"] >= started_ms - 1_000
                assert float(data["p"]) > 0 and float(data["q"]) > 0 and isinstance(data["m"], bool)
                trade_ids.setdefault(data["s"], []).append(data["a"])
            else:
                assert frame["stream"] == "btcusdt@bookTicker" and data["s"] == "BTCUSDT"
                update_ids.append(data["u"])
        # 2,000 frames span several passes over a 300-event plan: ids stay contiguous / increasing.
        assert sim.stats["binance.frames"] >= 2_000
        for symbol, ids in trade_ids.items():
            assert ids == list(range(ids[0], ids[0] + len(ids))), f"{symbol} trade ids not contiguous"
        assert update_ids == sorted(update_ids) and len(set(update_ids)) == len(update_ids)
        assert len(trade_ids["BTCUSDT"]) + len(update_ids) > 0 and len(trade_ids) == 2
    finally:
        await sim.stop()
