"""Numbers into the exchange simulator's control API and subscriptions, fuzzed against a running simulator.

Every control call answers 200 or 400 with an error naming the field, never 500; NaN, infinities and huge
values are refused (a NaN rate stopped the generator); after the fuzzing the generator still publishes and a
WebSocket client with odd depth digits in a subscription is still connected.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import aiohttp
import orjson
from aipx_exchange_sim.server import MAX_COUNT, MAX_RATE, MAX_STALL_S, ExchangeSimulator
from aipx_exchange_sim.settings import SimSettings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["\uff11\uff12", "1e999999999", "1e400", "NaN", "12", "1_000", "", "0.5"]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
ACTIONS = ["drop", "duplicate", "malformed", "snapshot_failures", "stall", "rate"]
# JSON as a client may send it: Python's json (aiohttp's reader) accepts NaN, Infinity and 1e400.
LITERALS = ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 400, "12", "0.5", "-1", "true"]


def _valid(action: str, value: Any) -> bool:
    if isinstance(value, bool) or (value is None and action in ("stall", "rate")):
        return False
    if action in ("drop", "duplicate", "malformed", "snapshot_failures"):
        if value is None:
            return False
        if isinstance(value, str):
            return value.isascii() and value.isdigit() and int(value) <= MAX_COUNT
        return isinstance(value, int) and 0 <= value <= MAX_COUNT
    maximum = MAX_STALL_S if action == "stall" else MAX_RATE
    if isinstance(value, str):
        return value in ("12", "0.5")
    return isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= maximum


async def test_control_numbers_are_200_or_400_and_the_generator_keeps_running() -> None:
    sim = ExchangeSimulator(SimSettings(ws_port=0, rest_port=0, rate=200, symbols=("BTC-USDT",)))
    await sim.start()
    loop = asyncio.get_running_loop()
    http = aiohttp.ClientSession()
    ws = await connect(f"{sim.ws_url}/bybit/v5/public/spot", proxy=None)
    try:
        # Superscript and full-width depths: str.isdigit() says yes, int() raised inside the handler.
        for topic in (
            "orderbook.\u00b2.BTCUSDT",
            "orderbook.\uff15\uff10.BTCUSDT",
            "orderbook.99999999999.BTCUSDT",
        ):
            await ws.send(orjson.dumps({"op": "subscribe", "args": [topic], "req_id": "1"}))
            assert "op" in orjson.loads(await ws.recv())

        async def post(action: str, raw: bytes) -> tuple[int, dict[str, Any]]:
            async with http.post(
                f"{sim.rest_url}/control/{action}", data=raw, headers={"content-type": "application/json"}
            ) as response:
                return response.status, await response.json()

        async def one(action: str, value: Any) -> None:
            key = {"stall": "seconds", "rate": "rate"}.get(action, "count")
            status, body = await post(action, json.dumps({key: value}).encode())
            assert status == (200 if _valid(action, value) else 400), (action, value, body)
            if status == 400:
                assert key in body["error"] or "KeyError" in body["error"], body
            await post("clear", b"{}")
            await post("rate", b'{"rate": 200}')

        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(action=st.sampled_from(ACTIONS), value=VALUES)
        @example(action="rate", value=float("nan"))
        @example(action="rate", value=float("inf"))
        @example(action="stall", value=float("inf"))
        @example(action="drop", value="\uff11\uff12")
        @example(action="drop", value=10**30)
        def fuzz(action: str, value: Any) -> None:
            asyncio.run_coroutine_threadsafe(one(action, value), loop).result(30)

        await asyncio.to_thread(fuzz)
        for literal in LITERALS:  # numbers orjson cannot write but a client can
            for action, key in (("rate", "rate"), ("stall", "seconds"), ("drop", "count")):
                status, _ = await post(action, f'{{"{key}": {literal}}}'.encode())
                assert status in (200, 400), (action, literal)
            await post("clear", b"{}")
            await post("rate", b'{"rate": 200}')
            sim.faults.stalled_until = 0.0
        assert math.isfinite(sim.rate)
        async with http.get(f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=\uff15") as r:
            assert r.status == 400
        before = sum(sim.stats.values())
        for _ in range(600):  # up to 30 s
            if sum(sim.stats.values()) > before:
                break
            await asyncio.sleep(0.05)
        assert sum(sim.stats.values()) > before, "the generator stopped"
        assert all(not t.done() for t in sim._tasks), "a simulator task died"
        await ws.send(orjson.dumps({"op": "ping", "req_id": "2"}))
        assert await asyncio.wait_for(ws.recv(), 10), "the WebSocket client is still served"
    finally:
        await ws.close()
        await http.close()
        await sim.stop()
