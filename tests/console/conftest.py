"""Console test harness: scratch topics, an in-process OMS and console on real sockets, a headless Chromium.

Chromium comes from Debian's packages (installed with apt-get when missing, as the stack's other packages
are) and is driven by Playwright through `executable_path`; Playwright's own browser download is never used.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aipx.kafka import Publisher, create_producer
from aipx.settings import KafkaSettings
from aipx_console.server import ConsoleApp
from aipx_console.settings import ConsoleSettings
from aipx_stack.install import require_chromium
from aipx_stack.ports import free_port
from google.protobuf.message import Message
from playwright.async_api import Browser, Page, async_playwright

from tests.oms.conftest import KEY_A, KEY_B, OmsEnv, prepare_database

ADMIN_TOKEN = "console-test-operator-token"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    chromium = await asyncio.to_thread(require_chromium)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield b
        finally:
            await b.close()


@dataclass
class ConsoleEnv:
    """One test's console world: its topics, the OMS (optional) and the console app."""

    kafka: str
    topics: dict[str, str]
    oms: OmsEnv | None = None
    app: ConsoleApp | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _producer: Any = None

    async def start(self, **overrides: Any) -> ConsoleApp:
        values: dict[str, Any] = {
            "kafka": KafkaSettings(bootstrap_servers=self.kafka, request_timeout_ms=5000),
            "http_host": "127.0.0.1",
            "http_port": 0,
            "oms_target": self.oms.target
            if self.oms is not None and self.oms.app
            else f"127.0.0.1:{free_port()}",
            "oms_api_keys": json.dumps({"acct-a": KEY_A, "acct-b": KEY_B}),
            "oms_timeout_s": 3.0,
            "push_interval_s": 0.2,
            "scrape_interval_s": 0.5,
            "market_data_topic": self.topics["market"],
            "signals_topic": self.topics["signals"],
            "decisions_topic": self.topics["decisions"],
            "order_events_topic": self.topics["orders"],
            "dlq_topics": (self.topics["dlq"],),
            **self.extra,
            **overrides,
        }
        self.app = ConsoleApp(ConsoleSettings(**values), with_ops=False)
        await self.app.start()
        await self.app_ready()
        return self.app

    async def app_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the console reads its topics (records published before that would be missed)."""
        assert self.app is not None
        deadline = time.monotonic() + timeout_s
        while not self.app.kafka_ready():
            kafka = self.app.state.components.get("kafka")
            assert time.monotonic() < deadline, f"console not reading Kafka after {timeout_s}s: {kafka}"
            await asyncio.sleep(0.1)

    @property
    def url(self) -> str:
        assert self.app is not None and self.app.port is not None
        return f"http://127.0.0.1:{self.app.port}/"

    async def publish(self, topic: str, key: str, message: Message) -> None:
        if self._producer is None:
            self._producer = create_producer(
                KafkaSettings(bootstrap_servers=self.kafka), client_id="console-test"
            )
            await self._producer.start()
        await Publisher(self._producer).publish(
            self.topics[topic], key.encode(), message, event_id=uuid.uuid4().hex, event_time_ns=time.time_ns()
        )

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop()
            self.app = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


@pytest.fixture
async def console_env(
    new_topic: Callable[..., Awaitable[str]], kafka_bootstrap: str
) -> AsyncIterator[ConsoleEnv]:
    topics = {
        "market": await new_topic(3),
        "signals": await new_topic(1),
        "decisions": await new_topic(1),
        "orders": await new_topic(3),
    }
    topics["dlq"] = await new_topic(1, name=f"{topics['signals']}.dlq")  # named as the catalogue names DLQs
    env = ConsoleEnv(kafka_bootstrap, topics)
    try:
        yield env
    finally:
        await env.stop()


def admin_tokens_setting(token: str = ADMIN_TOKEN) -> str:
    """AIPX_OMS_ADMIN_TOKENS for the OMS under test: operator name -> SHA-256 of its token."""
    return json.dumps({"console-test": hashlib.sha256(token.encode()).hexdigest()})


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1600, "height": 1000})
    p = await context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield p
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
async def console_oms(
    console_env: ConsoleEnv, new_database: Callable[[], Awaitable[str]], redis_url: str
) -> AsyncIterator[ConsoleEnv]:
    """console_env with an OMS publishing its order events to the console's order topic (not started)."""
    dsn = await new_database()
    await prepare_database(dsn)
    console_env.oms = OmsEnv(
        dsn, console_env.topics["orders"], console_env.topics["market"], console_env.kafka, redis_url
    )
    try:
        yield console_env
    finally:
        await console_env.stop()
        await console_env.oms.stop()
