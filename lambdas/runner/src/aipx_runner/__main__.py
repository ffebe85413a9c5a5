"""`python -m aipx_runner [--function NAME ...]`: run the functions' event source mappings locally."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys

from aipx.functions import manifest
from aipx.logs import configure_logging

from aipx_runner.config import RunnerConfig
from aipx_runner.runner import Runner


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [f.name for f in manifest().functions]
    parser = argparse.ArgumentParser(
        prog="python -m aipx_runner",
        description="Emulate the MSK event source mappings of the function manifest against a real broker.",
    )
    parser.add_argument(
        "--function",
        action="append",
        choices=names,
        dest="functions",
        help="function to run (repeatable; default: all of them)",
    )
    parser.add_argument("--bootstrap-servers", help="default: AIPX_KAFKA_BOOTSTRAP_SERVERS")
    return parser.parse_args(argv)


async def serve(config: RunnerConfig) -> None:
    runner = Runner(config)
    runner.install_signals()
    await runner.run()


def tune_gc() -> None:
    """Fewer cyclic-GC passes: a batch allocates ~10 objects per record (event dicts, header lists, decoded
    messages), so the default gen-0 threshold (700) runs the collector hundreds of times per batch for
    garbage that is freed by reference counting anyway. Measured: event build + parse ~2x faster."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("runner")
    tune_gc()
    config = RunnerConfig.from_manifest(args.functions, bootstrap_servers=args.bootstrap_servers)
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
