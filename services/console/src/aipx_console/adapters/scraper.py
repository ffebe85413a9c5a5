"""MetricsScraper: reads each service's /metrics every few seconds and turns it into the key figures."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from aipx_console.domain.metrics import RateTracker, figures_for, parse_exposition
from aipx_console.domain.state import ConsoleState

log = logging.getLogger(__name__)


class MetricsScraper:
    """One component per target ("metrics:<service>"), up while its /metrics answers and parses."""

    def __init__(self, targets: dict[str, str], state: ConsoleState, interval_s: float) -> None:
        self.targets = targets
        self.state = state
        self.interval_s = interval_s
        self.rates = {name: RateTracker() for name in targets}

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=max(1.0, self.interval_s * 2))
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await asyncio.gather(*(self.scrape(session, n, u) for n, u in self.targets.items()))
                await asyncio.sleep(self.interval_s)

    async def scrape(self, session: aiohttp.ClientSession, name: str, url: str) -> None:
        component = f"metrics:{name}"
        now = time.time_ns()
        try:
            async with session.get(url) as response:
                if response.status != 200:
                    self.state.set_component(component, False, f"{url} answered HTTP {response.status}", now)
                    return
                text = await response.text()
            samples = parse_exposition(text)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.state.set_component(
                component, False, f"{name} not answering at {url}: {exc or type(exc).__name__}", now
            )
            return
        except ValueError as exc:
            self.state.set_component(component, False, f"{url} is not a Prometheus page: {exc}", now)
            return
        self.state.set_component(component, True, url, now)
        self.state.set_figures(name, figures_for(samples, self.rates[name], time.monotonic()))
