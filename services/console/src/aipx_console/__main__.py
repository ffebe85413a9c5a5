"""Entry point: `python -m aipx_console` (also the `aipx-console` script) serves the operator console."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from aipx.logs import configure_logging
from pydantic import ValidationError

from aipx_console.server import ConsoleApp
from aipx_console.settings import ConsoleSettings

log = logging.getLogger("aipx_console")


async def _run(settings: ConsoleSettings) -> None:
    app = ConsoleApp(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await app.stop()


def main(argv: list[str] | None = None) -> int:
    del argv
    try:
        settings = ConsoleSettings()
    except ValidationError as exc:
        print(f"aipx-console: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging("console", settings.log)
    try:
        asyncio.run(_run(settings))
    except (ValueError, OSError) as exc:
        log.error("console failed to start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
