"""OMS cost as history grows: SubmitOrder p50/p99 and deep ListOrders/StreamOrderEvents latency with an empty
database, then with N orders and M events already in it (issue #16, "Cost that stays flat").

For each size a scratch database is migrated (005's indexes included), loaded in bulk with generate_series
(tests/oms/history.py: orders spread over accounts, four in five over other accounts than the benchmark's;
events in log order; 0.1% of orders still open), ANALYZEd, and an OMS process is started on it. Then:
  - SubmitOrder at concurrency 16 for --seconds (Python grpc.aio load generator in this process);
  - ListOrders: 50 pages of 100 from a page token half way back in the account's history;
  - StreamOrderEvents: 50 catch-ups of 500 events from a log sequence half way back.
The curve is printed at the end, with the ratio of each size's figure to the empty database's.

    uv run python bench/oms_history_bench.py [--sizes 0,100000:1000000,1000000:10000000] [--seconds 10]

Each size is ORDERS:EVENTS (events a multiple of orders). Loading 1M orders / 10M events takes minutes on a
small machine; pass smaller sizes to get the curve sooner. Needs the local stack (`uv run aipx-stack up`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from base64 import urlsafe_b64encode
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import grpc
from aipx.settings import KafkaSettings, PostgresSettings, RedisSettings
from aipx.v1 import oms_pb2, oms_pb2_grpc
from aipx_oms.store.admin import upsert_account
from aipx_stack import scratch
from aipx_stack.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench.oms_bench and tests.oms.history, when run as a script

from bench.oms_bench import API_KEY, prepare_database, run_python, wait_serving  # noqa: E402
from tests.oms.history import load_history  # noqa: E402

OTHER_ACCOUNTS = [f"hist-{i}" for i in range(4)]
SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT", "XRP-USDT"]
CONCURRENCY = 16
READS = 50


@dataclass
class Point:
    orders: int
    events: int
    load_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    list_ms: float
    stream_ms: float


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        orders_text, _, events_text = part.partition(":")
        orders = int(orders_text)
        events = int(events_text or orders_text)
        if orders and events % orders:
            raise argparse.ArgumentTypeError(f"{part}: events must be a multiple of orders")
        sizes.append((orders, events))
    return sizes


async def timed(calls: int, call: Callable[[], Awaitable[None]]) -> float:
    """Mean milliseconds of `calls` awaits of call()."""
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.mean(samples)


async def reads(target: str, dsn: str) -> tuple[float, float]:
    """(ListOrders deep page ms, StreamOrderEvents deep catch-up ms), means of READS calls."""
    conn = await asyncpg.connect(dsn)
    try:
        middle = await conn.fetchrow(
            "SELECT created_time_ns, order_id FROM orders WHERE account_id = 'bench'"
            " ORDER BY created_time_ns DESC, order_id DESC OFFSET (SELECT count(*) / 2 FROM orders"
            " WHERE account_id = 'bench') LIMIT 1"
        )
        count = int(await conn.fetchval("SELECT count(*) FROM order_events WHERE account_id = 'bench'"))
        # Half way back in the account's log, with `want` events after it (then the stream goes live).
        deep_sequence = int(
            await conn.fetchval(
                "SELECT log_sequence FROM order_events WHERE account_id = 'bench'"
                " ORDER BY log_sequence OFFSET $1 LIMIT 1",
                count // 2,
            )
            or 0
        )
        want = min(500, count - count // 2 - 1)
    finally:
        await conn.close()
    token = urlsafe_b64encode(f"{middle[0]}:{middle[1]}".encode()).decode() if middle else ""
    metadata = (("x-api-key", API_KEY),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = oms_pb2_grpc.OmsServiceStub(channel)

        async def list_page() -> None:
            await stub.ListOrders(
                oms_pb2.ListOrdersRequest(page_size=100, page_token=token), metadata=metadata, timeout=30
            )

        async def catch_up() -> None:
            call = stub.StreamOrderEvents(
                oms_pb2.StreamOrderEventsRequest(from_log_sequence=deep_sequence), metadata=metadata
            )
            received = 0
            async for _ in call:
                received += 1
                if received >= want:
                    break
            call.cancel()

        list_ms = await timed(READS, list_page)
        stream_ms = await timed(READS, catch_up)
    return list_ms, stream_ms


def spawn_oms(environ: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "aipx_oms"], env=environ)


async def one_size(orders: int, events: int, args: argparse.Namespace) -> Point:
    base_dsn = PostgresSettings().dsn.get_secret_value()
    kafka = KafkaSettings().bootstrap_servers
    dsn = await prepare_database(base_dsn, "history", None)
    topic = f"bench-history-events-{uuid.uuid4().hex[:8]}"
    market_topic = f"bench-history-market-{uuid.uuid4().hex[:8]}"
    await scratch.create_topics(kafka, {topic: 6, market_topic: 1})
    conn = await asyncpg.connect(dsn)
    started = time.monotonic()
    try:
        for account in OTHER_ACCOUNTS:
            await upsert_account(conn, account)
        if orders:
            await load_history(
                conn,
                accounts=["bench", *OTHER_ACCOUNTS],
                symbols=SYMBOLS,
                orders=orders,
                events_per_order=events // orders,
                open_every=1000,
            )
    finally:
        await conn.close()
    load_s = time.monotonic() - started
    print(f"  {orders:,} orders / {events:,} events loaded in {load_s:.0f}s", flush=True)
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIPX_OMS_")}
    environ.update(
        {
            "AIPX_POSTGRES_DSN": dsn,
            "AIPX_REDIS_URL": RedisSettings().url.get_secret_value(),
            "AIPX_KAFKA_BOOTSTRAP_SERVERS": kafka,
            "AIPX_METRICS_PORT": "0",
            "AIPX_LOG_LEVEL": "WARNING",
            "AIPX_OMS_GRPC_HOST": "127.0.0.1",
            "AIPX_OMS_GRPC_PORT": str(port),
            "AIPX_OMS_ORDER_EVENTS_TOPIC": topic,
            "AIPX_OMS_MARKET_DATA_TOPIC": market_topic,
            "AIPX_OMS_REDIS_KEY_PREFIX": f"bench:{uuid.uuid4().hex[:8]}",
        }
    )
    oms = spawn_oms(environ)
    target = f"127.0.0.1:{port}"
    try:
        await wait_serving(target, oms, timeout_s=300)
        await run_python(target, CONCURRENCY, 2, "warm")
        result = await run_python(target, CONCURRENCY, args.seconds, f"h{orders}")
        list_ms, stream_ms = await reads(target, dsn)
    finally:
        oms.send_signal(signal.SIGTERM)
        try:
            oms.wait(30)
        except subprocess.TimeoutExpired:
            oms.kill()
        if not args.keep:
            await scratch.drop_database(base_dsn, urlsplit(dsn).path.lstrip("/"))
            await scratch.delete_topics(kafka, [topic, market_topic])
    print(
        f"  SubmitOrder c={CONCURRENCY}: {result.rps:.0f} req/s p50 {result.p50_ms:.2f} ms "
        f"p99 {result.p99_ms:.2f} ms (errors {result.errors}); ListOrders deep page {list_ms:.2f} ms; "
        f"StreamOrderEvents 500 from deep {stream_ms:.2f} ms",
        flush=True,
    )
    return Point(orders, events, load_s, result.rps, result.p50_ms, result.p99_ms, list_ms, stream_ms)


async def main_async(args: argparse.Namespace) -> int:
    print(f"OMS history benchmark - {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    print("load generator: Python grpc.aio in this process; no CPU pinning")
    points = []
    for orders, events in args.sizes:
        print(f"size {orders:,} orders / {events:,} events", flush=True)
        points.append(await one_size(orders, events, args))
    base = points[0]
    print("\n    orders      events  load s  SubmitOrder req/s  p50 ms  p99 ms (x empty)  ListOrders ms"
          "  Stream ms")  # fmt: skip
    for p in points:
        ratio = p.p99_ms / base.p99_ms if base.p99_ms else 0.0
        print(
            f"{p.orders:>10,}  {p.events:>10,}  {p.load_s:6.0f}  {p.rps:17.0f}  {p.p50_ms:6.2f}  "
            f"{p.p99_ms:6.2f} ({ratio:4.2f}x)  {p.list_ms:13.2f}  {p.stream_ms:9.2f}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes("0,100000:1000000,1000000:10000000"),
        help="comma-separated ORDERS:EVENTS; the first should be 0 (the empty database)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="SubmitOrder seconds per size")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases and topics")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
