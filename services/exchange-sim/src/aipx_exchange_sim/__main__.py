"""Entry point: `python -m aipx_exchange_sim` (or `aipx-exchange-sim`). Stops on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

import uvloop
from aipx.logs import configure_logging
from aipx.tuning import tune_gc

from aipx_exchange_sim.server import ExchangeSimulator
from aipx_exchange_sim.settings import SimSettings


async def _main() -> None:
    settings = SimSettings()
    configure_logging("exchange-sim", settings.log)
    simulator = ExchangeSimulator(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await simulator.start()
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def main() -> None:
    tune_gc()
    # uvloop: a faster event loop for a process that spends its time in socket I/O.
    uvloop.run(_main())


if __name__ == "__main__":
    main()
