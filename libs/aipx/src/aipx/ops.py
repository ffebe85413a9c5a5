"""Operations HTTP endpoint of a long-running service: /metrics (Prometheus), /healthz, /readyz.

Liveness says the process serves; readiness runs the registered checks (Kafka connected, DB reachable, ...)
and answers 503 naming the failing ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from aipx.settings import MetricsSettings

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool] | bool]

# Latency buckets (seconds) from 100 microseconds to 10 seconds, for request/produce/end-to-end histograms.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class OpsServer:
    """Serves metrics, liveness and readiness on one port."""

    def __init__(
        self, settings: MetricsSettings | None = None, registry: CollectorRegistry = REGISTRY
    ) -> None:
        self.settings = settings or MetricsSettings()
        self.registry = registry
        self.checks: dict[str, ReadinessCheck] = {}
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        """Register a readiness check (sync or async, returns True when ready)."""
        self.checks[name] = check

    async def readiness(self) -> dict[str, bool]:
        """Run every check; a check that raises counts as not ready."""
        results: dict[str, bool] = {}
        for name, check in self.checks.items():
            try:
                outcome = check()
                results[name] = bool(await outcome if asyncio.iscoroutine(outcome) else outcome)
            except Exception:  # a failing probe is "not ready", never a crash of the endpoint
                log.warning("readiness check %s raised", name, exc_info=True)
                results[name] = False
        return results

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        results = await self.readiness()
        ready = all(results.values())
        return web.json_response({"ready": ready, "checks": results}, status=200 if ready else 503)

    async def start(self) -> int:
        """Start serving; returns the bound port (useful with port 0)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.port
        log.info("ops endpoint on %s:%s", self.settings.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
