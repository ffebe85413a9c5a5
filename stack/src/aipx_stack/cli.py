"""`aipx-stack`: run the local stack (up, down, status, start/stop/restart one component, env)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from aipx_stack.base import Stack
from aipx_stack.config import COMPONENTS
from aipx_stack.errors import StackError
from aipx_stack.select import MODES, open_stack


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aipx-stack",
        description="Local Kafka (KRaft) + PostgreSQL + Redis + S3 (moto) for AIPX development and tests. "
        "State and logs live in <repo>/.aipx/stack/.",
    )
    # The options are accepted before and after the command (`aipx-stack -q up` = `aipx-stack up -q`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--mode", choices=MODES, default=argparse.SUPPRESS, help="default: AIPX_STACK_MODE or automatic"
    )
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only errors")
    parser.add_argument("--mode", choices=MODES, default=None, help="default: AIPX_STACK_MODE or automatic")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "up", parents=[common], help="start every component (idempotent); create topics, database, bucket"
    )
    sub.add_parser("down", parents=[common], help="stop every component this stack started")
    sub.add_parser("status", parents=[common], help="each component's state (exit 1 unless all run)")
    env = sub.add_parser("env", parents=[common], help="print `export AIPX_...=...` lines for the endpoints")
    env.add_argument("--aws", action="store_true", help="also export AWS_* credentials for the S3 server")
    for name, text in (("start", "start"), ("stop", "stop"), ("restart", "stop and start")):
        cmd = sub.add_parser(name, parents=[common], help=f"{text} one component")
        cmd.add_argument("component", choices=COMPONENTS)
    return parser


def print_status(stack: Stack) -> bool:
    """Print one line per component; True when all are running."""
    rows = stack.status()
    print(f"mode: {stack.mode}")
    for row in rows:
        pid = f"pid {row.pid}" if row.pid else ""
        detail = f"  {row.detail}" if row.detail else ""
        print(f"  {row.name:<9} {row.state:<10} {row.endpoint:<28} {pid}{detail}")
    return all(row.state == "running" for row in rows)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s aipx-stack %(message)s",
        datefmt="%H:%M:%S",
    )
    # Client libraries are chatty at INFO; the stack's own progress is what matters here.
    for noisy in ("aiokafka", "kafka", "botocore", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        stack = open_stack(args.mode)
        started = time.monotonic()
        if args.command == "up":
            stack.up()
            if not args.quiet:
                print(f"stack up in {time.monotonic() - started:.1f}s")
                print_status(stack)
        elif args.command == "down":
            stack.down()
        elif args.command == "status":
            return 0 if print_status(stack) else 1
        elif args.command == "env":
            print(stack.endpoints.shell_exports(aws=args.aws))
        elif args.command == "start":
            stack.start(args.component)
        elif args.command == "stop":
            stack.stop(args.component)
        elif args.command == "restart":
            stack.restart(args.component)
    except StackError as exc:
        print(f"aipx-stack: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aipx-stack: interrupted", file=sys.stderr)
        return 130
    return 0
