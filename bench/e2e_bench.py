"""End-to-end latency: exchange event time -> order accepted by the OMS, through the whole local platform.

Starts the platform as `./aipx run` does (simulator -> ingestion -> strategy -> cognitive -> OMS) on its own
database, Redis database and ports, lets it run for `--seconds`, then reads every order the signal chain
placed: latency = order created time (OMS commit) - `market_data_time_ns` tag (the exchange time of the
market data the signal was computed from, carried from the signal's watermark by the cognitive function).

The functions run with fresh consumer groups, so they start at the latest offsets and measure only data
produced during the run. Printed in the same run, as the floor the figures are compared against: the
event-source mappings' batching windows on the path (strategy + cognitive, from catalog/functions.yaml) —
a record can wait up to one window per function before it is invoked — and the ratio p50 / floor.

    uv run python bench/e2e_bench.py [--seconds 90]

Needs the local stack (`uv run aipx-stack up`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform as host
import statistics
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
from aipx.functions import manifest
from aipx_stack import scratch
from aipx_stack.platform import Platform, Ports
from aipx_stack.select import open_stack


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(seconds: float) -> None:
    stack = open_stack()
    endpoints = await asyncio.to_thread(stack.up)
    db = f"e2e_bench_{uuid.uuid4().hex[:8]}"
    dsn = await scratch.create_database(endpoints.postgres_dsn, db)
    redis_url = endpoints.redis_url.rsplit("/", 1)[0] + "/10"
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    ports = Ports.ephemeral()
    platform = Platform(
        endpoints,
        ports=ports,
        log_dir=Path(tempfile.mkdtemp(prefix="aipx-e2e-bench-")),
        extra_env={"AIPX_POSTGRES_DSN": dsn, "AIPX_REDIS_URL": redis_url},
        # fresh consumer groups: the functions start at the latest offsets (the manifest's LATEST), so only
        # market data produced during this run is measured, never a backlog
        runner_args=("--group-prefix", f"{db}-"),
    )
    try:
        await platform.start()
        await asyncio.sleep(seconds)
    finally:
        await platform.stop()
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT created_time_ns, (tags->>'market_data_time_ns')::bigint AS md_ns FROM orders "
            "WHERE client_order_id LIKE 'sig-%' AND tags ? 'market_data_time_ns'"
        )
    finally:
        await conn.close()
        await scratch.drop_database(endpoints.postgres_dsn, db)
    latencies_ms = [(r["created_time_ns"] - r["md_ns"]) / 1e6 for r in rows if r["md_ns"]]
    windows = {f.name: f.event_sources[0].batching_window_s for f in manifest().functions}
    floor_ms = (windows["strategy"] + windows["cognitive"]) * 1000
    print(f"machine: {host.machine()} {os.cpu_count()} vCPU, Python {host.python_version()}")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; run {seconds:.0f} s; platform logs {platform.log_dir}"
    )
    print(
        f"batching windows: strategy {windows['strategy']} s, cognitive {windows['cognitive']} s "
        f"(floor {floor_ms:.0f} ms)"
    )
    if not latencies_ms:
        raise SystemExit("no order was placed by the signal chain: see the platform logs")
    p50, p99 = percentile(latencies_ms, 0.50), percentile(latencies_ms, 0.99)
    print(f"orders: {len(latencies_ms)}")
    print(
        f"exchange event -> order accepted: p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
        f"mean {statistics.fmean(latencies_ms):.0f} ms, max {max(latencies_ms):.0f} ms"
    )
    print(f"ratio p50 / batching-window floor: {p50 / floor_ms:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    asyncio.run(main(parser.parse_args().seconds))
