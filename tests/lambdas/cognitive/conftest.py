"""Signals for the cognitive tests; a stub LLM HTTP server; the real OMS in a subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import grpc
import pytest
from aiohttp import web
from aipx.money import to_pb
from aipx.v1 import oms_pb2, oms_pb2_grpc
from aipx.v1.signals_pb2 import SignalDirection, TradingSignal
from aipx_stack.ports import free_port

LONG = SignalDirection.SIGNAL_DIRECTION_LONG
SHORT = SignalDirection.SIGNAL_DIRECTION_SHORT


def make_signal(
    *,
    direction: int = LONG,
    price: str = "30000",
    stop: str | None = "29900",
    target: str | None = "30300",
    trend: float | None = 1.0,
    biases: dict[str, float] | None = None,
    strategy: str = "ema_cross",
    symbol: str = "BTC-USDT",
    signal_id: str = "sig-1",
    **extra: Any,
) -> TradingSignal:
    """A signal; defaults: LONG at 30000, R/R 3, up-trend, every other strategy bullish."""
    indicators = {"atr": 50.0}
    if trend is not None:
        indicators["trend"] = trend
    bias = (
        biases
        if biases is not None
        else {"supertrend": 1.0, "rsi_ema": 1.0, "macd_stochastic": 1.0, "ichimoku": 0.0, "bollinger": 1.0}
    )
    indicators.update({f"bias.{k}": v for k, v in bias.items()})
    signal = TradingSignal(
        signal_id=signal_id,
        strategy_id=strategy,
        venue="binance",
        symbol=symbol,
        interval="1m",
        direction=direction,  # type: ignore[arg-type]
        strength=0.7,
        price=to_pb(Decimal(price)),
        reasons=["EMA9 crossed above EMA21"],
        indicators=indicators,
        candle_close_time_ns=1_767_225_660_000_000_000,
        **extra,
    )
    if stop is not None:
        signal.stop_loss.CopyFrom(to_pb(Decimal(stop)))
    if target is not None:
        signal.take_profit.CopyFrom(to_pb(Decimal(target)))
    return signal


@pytest.fixture
def signal_factory() -> Callable[..., TradingSignal]:
    return make_signal


# --- servers for the integration tests --------------------------------------------------------------------


@dataclass
class LlmStub:
    """A local HTTP server speaking the OpenAI chat-completions and Anthropic messages APIs.

    `replies[provider]` is what the model "says" (text), or an int HTTP status to fail with. Every request is
    recorded (path, headers, JSON body)."""

    url: str = ""
    replies: dict[str, str | int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(
            {
                "provider": "openai",
                "path": request.path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
            }
        )
        reply = self.replies.get("openai", VOTE_LONG)
        if isinstance(reply, int):
            return web.json_response(
                {"error": {"message": "stub failure", "type": "server_error"}}, status=reply
            )
        return web.json_response(
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
        )

    async def _messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(
            {
                "provider": "anthropic",
                "path": request.path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
            }
        )
        reply = self.replies.get("anthropic", VOTE_LONG)
        if isinstance(reply, int):
            return web.json_response(
                {"type": "error", "error": {"type": "api_error", "message": "stub failure"}}, status=reply
            )
        return web.json_response(
            {
                "id": "msg_stub",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": reply}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 10},
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/messages", self._messages)
        return app


VOTE_LONG = '{"vote": "LONG", "confidence": 0.82, "rationale": "trend and momentum agree"}'


@pytest.fixture
async def llm_stub() -> AsyncIterator[LlmStub]:
    stub = LlmStub()
    runner = web.AppRunner(stub.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stub.url = f"http://127.0.0.1:{port}"
    yield stub
    await runner.cleanup()


@dataclass
class RealOms:
    """The real OMS (`python -m aipx_oms`) in a subprocess, on a fresh database seeded with the demo data."""

    target: str
    api_key: str
    events_topic: str
    market_topic: str
    dsn: str


@pytest.fixture
async def real_oms(
    new_database: Any, new_topic: Any, kafka_bootstrap: str, redis_url: str
) -> AsyncIterator[RealOms]:
    dsn = await new_database(prefix="cognitive_oms")
    events_topic, market_topic = await new_topic(partitions=1), await new_topic(partitions=1)
    port = free_port()
    env = {
        **os.environ,
        "AIPX_POSTGRES_DSN": dsn,
        "AIPX_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AIPX_REDIS_URL": redis_url,
        "AIPX_OMS_GRPC_HOST": "127.0.0.1",
        "AIPX_OMS_GRPC_PORT": str(port),
        "AIPX_OMS_ORDER_EVENTS_TOPIC": events_topic,
        "AIPX_OMS_MARKET_DATA_TOPIC": market_topic,
        "AIPX_OMS_MARKET_DATA_OFFSET_RESET": "earliest",
        "AIPX_OMS_REDIS_KEY_PREFIX": f"test-cognitive-oms:{uuid.uuid4().hex[:8]}",
        "AIPX_OMS_SHUTDOWN_GRACE_S": "0.5",
        "AIPX_METRICS_PORT": "0",
    }
    env = {k: v for k, v in env.items() if not k.startswith("AIPX_COGNITIVE_")}
    seed = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aipx_oms", "seed", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await seed.communicate()
    assert seed.returncode == 0, f"python -m aipx_oms seed failed:\n{output.decode()}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aipx_oms", "serve", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    target = f"127.0.0.1:{port}"
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = oms_pb2_grpc.OmsServiceStub(channel)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while True:
                if proc.returncode is not None:
                    err = await proc.stderr.read() if proc.stderr else b""
                    pytest.fail(f"the OMS exited with {proc.returncode}:\n{err.decode()[-3000:]}")
                try:
                    await stub.ListInstruments(
                        oms_pb2.ListInstrumentsRequest(),
                        metadata=(("x-api-key", "aipx-demo-key"),),
                        timeout=2,
                    )
                    break
                except grpc.aio.AioRpcError:
                    if loop.time() > deadline:
                        pytest.fail("the OMS did not answer within 60 s")
                    await asyncio.sleep(0.3)
        yield RealOms(target, "aipx-demo-key", events_topic, market_topic, dsn)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
