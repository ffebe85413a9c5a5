"""ConsoleApp: wires the state, the feeds (Kafka, OMS, /metrics), the push hub and the HTTP server."""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web
from aipx.aio import cancel_and_wait
from aipx.ops import OpsServer

from aipx_console.adapters.kafka_feed import KafkaFeed
from aipx_console.adapters.oms import OmsGateway
from aipx_console.adapters.scraper import MetricsScraper
from aipx_console.domain.state import ConsoleState
from aipx_console.settings import ConsoleSettings
from aipx_console.web.app import build_app
from aipx_console.web.hub import Hub

log = logging.getLogger(__name__)


def parse_api_keys(settings: ConsoleSettings) -> dict[str, str]:
    """AIPX_CONSOLE_OMS_API_KEYS as {account: key}; a clear error for anything else."""
    if settings.oms_api_keys is None:
        return {}
    try:
        keys = json.loads(settings.oms_api_keys.get_secret_value())
    except json.JSONDecodeError as exc:
        raise ValueError(f"AIPX_CONSOLE_OMS_API_KEYS is not JSON: {exc.msg}") from None
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
    ):
        raise ValueError('AIPX_CONSOLE_OMS_API_KEYS must be a JSON object {"<account id>": "<api key>"}')
    return keys


class ConsoleApp:
    def __init__(self, settings: ConsoleSettings, *, with_ops: bool = True) -> None:
        self.settings = settings
        self.state = ConsoleState(
            candle_interval_s=settings.candle_interval_s,
            max_candles=settings.max_candles,
            history=settings.history,
            stale_after_s=settings.stale_after_s,
        )
        self.hub = Hub(self.state, settings.push_interval_s)
        self.oms = OmsGateway(
            settings.oms_target,
            self.state,
            api_keys=parse_api_keys(settings),
            timeout_s=settings.oms_timeout_s,
        )
        self.kafka = KafkaFeed(settings, self.state)
        self.scraper = MetricsScraper(settings.metrics_targets, self.state, settings.scrape_interval_s)
        self.ops = OpsServer(settings.metrics) if with_ops else None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port: int | None = None

    async def start(self) -> int:
        """Start the feeds and the HTTP server; returns the bound port (useful with port 0)."""
        self._tasks = [
            asyncio.create_task(self.kafka.run(), name="kafka-feed"),
            asyncio.create_task(self.oms.run(), name="oms-watch"),
            asyncio.create_task(self.hub.run(), name="push"),
        ]
        if self.settings.metrics_targets:
            self._tasks.append(asyncio.create_task(self.scraper.run(), name="scrape"))
        self._runner = web.AppRunner(build_app(self.hub, self.oms), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        addresses = self._runner.addresses
        self.port = addresses[0][1] if addresses else self.settings.http_port
        if self.ops is not None:
            self.ops.add_check("kafka", self.kafka_ready)
            await self.ops.start()
        log.info("console on http://%s:%s/", self.settings.http_host, self.port)
        return self.port

    def kafka_ready(self) -> bool:
        """True once the topics are assigned and positioned (the console shows what is published next)."""
        kafka = self.state.components.get("kafka")
        return kafka is not None and kafka.up is True

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks, what="console")
        self._tasks = []
        self.hub.clients.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.ops is not None:
            await self.ops.stop()
        await self.oms.close()
