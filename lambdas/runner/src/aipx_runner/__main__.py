"""`python -m aipx_runner [--function NAME ...]`: run the functions' event source mappings locally.

Options for local experiments and tests: --topic NAME=ACTUAL, --group-prefix, --handler FN=module.attr,
--batching-window, --isolation process (each function in its own instance process, restarted after a crash
or timeout). SIGTERM/SIGINT stop it gracefully (in-flight batches finish and are committed).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aipx.functions import manifest
from aipx.logs import configure_logging
from aipx.ops import OpsServer
from aipx.tuning import tune_gc

from aipx_runner.config import RunnerConfig, import_handler
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
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="NAME=ACTUAL",
        help="consume/dead-letter ACTUAL instead of catalogue topic NAME (repeatable)",
    )
    parser.add_argument("--group-prefix", default="", help="prefix for every consumer group id")
    parser.add_argument(
        "--handler",
        action="append",
        default=[],
        metavar="FUNCTION=module.attr",
        help="run another handler for FUNCTION (repeatable)",
    )
    parser.add_argument("--batching-window", type=float, help="override every source's batching window (s)")
    parser.add_argument(
        "--isolation",
        choices=("thread", "process"),
        default="thread",
        help="run handlers in a worker thread (default) or in an instance process per function that may "
        "crash or be killed on timeout and is restarted, as in Lambda",
    )
    return parser.parse_args(argv)


def pairs(values: list[str], what: str) -> dict[str, str]:
    """'A=B' arguments as a mapping (SystemExit with a clear message on a malformed one)."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, target = value.partition("=")
        if not sep or not name or not target:
            raise SystemExit(f"--{what} expects NAME=VALUE, got {value!r}")
        out[name] = target
    return out


def build_config(args: argparse.Namespace) -> RunnerConfig:
    """The RunnerConfig the command line asks for."""
    spec = manifest()
    groups = {
        f"{f.name}:{src.topic}": f"{args.group_prefix}{src.consumer_group}"
        for f in spec.functions
        for src in f.event_sources
    }
    handlers = {name: import_handler(path) for name, path in pairs(args.handler, "handler").items()}
    overrides = {} if args.batching_window is None else {"batching_window_s": args.batching_window}
    return RunnerConfig.from_manifest(
        args.functions,
        bootstrap_servers=args.bootstrap_servers,
        topics=pairs(args.topic, "topic"),
        group_ids=groups,
        handlers=handlers,
        isolation=args.isolation,
        **overrides,
    )


async def serve(config: RunnerConfig) -> None:
    """Run until SIGTERM/SIGINT, with /metrics, /healthz and /readyz on AIPX_METRICS_PORT."""
    runner = Runner(config)
    runner.install_signals()
    ops = OpsServer()
    ops.add_check("event-sources-assigned", runner.ready)
    await ops.start()
    try:
        await runner.run()
    finally:
        await ops.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("runner")
    tune_gc()
    asyncio.run(serve(build_config(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
