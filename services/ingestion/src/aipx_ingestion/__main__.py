"""Entry point: `python -m aipx_ingestion` (or `aipx-ingestion`). Stops gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

import uvloop
from aipx.logs import configure_logging
from aipx.tuning import tune_gc

from aipx_ingestion.service import IngestionService
from aipx_ingestion.settings import IngestionSettings


async def _main() -> None:
    settings = IngestionSettings()
    configure_logging("ingestion", settings.log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await IngestionService(settings).run(stop)


def main() -> None:
    tune_gc()
    # uvloop: a faster event loop for a process that spends its time in socket I/O.
    uvloop.run(_main())


if __name__ == "__main__":
    main()
