"""OMS SubmitOrder benchmark: throughput and p50/p99 latency at concurrency 1, 16 and 64, against the ceiling.

The OMS runs as its own process (`python -m aipx_oms`, group commit on, synchronous_commit on, outbox relay
on) against the local stack's PostgreSQL/Redis/Kafka. The ceiling is a bare grpc.aio server (another process)
answering the same SubmitOrder request type with a fixed response and no work. The load generator is ghz
(Go; `go install github.com/bojand/ghz/cmd/ghz@latest`) when found on PATH or in ~/go/bin, else a Python
grpc.aio load generator (said in the output). Every request carries a fresh client order id (a new order).
After the runs, it checks that every OK answer is a committed order with its event in the outbox.

    uv run python bench/oms_bench.py [--seconds 10] [--loadgen ghz|python] [--no-pin] [--baseline REF]

`--baseline REF` (e.g. 9fa7e47) also runs the OMS of git revision REF in the same run (A/B): the bench checks
REF out as a git worktree under the temporary directory (kept for reuse), starts that worktree's OMS with
its sources first on PYTHONPATH (the third-party packages of this venv), on a database migrated and seeded by
REF's own code, and alternates rounds between the bare server, this OMS and REF's OMS with the same load
generator and CPU placement; it prints req/s and p99 of each and this OMS's ratio to REF's.

With two or more CPUs the server under test (the OMS, then the bare server, never both at once) runs on a
CPU of its own and the load generator and the local stack on the others, as in production where PostgreSQL,
Kafka and the clients are other hosts (`--no-pin`: everything shares every CPU, as before 2026-11-22 21:10).

Needs the local stack (`./aipx run` / `uv run aipx-stack up`); endpoints from AIPX_* variables or defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import grpc
import uvloop
from aipx.settings import KafkaSettings, PostgresSettings, RedisSettings
from aipx.v1 import common_pb2, oms_pb2, oms_pb2_grpc, orders_pb2
from aipx_stack import scratch
from aipx_stack.ports import free_port
from aipx_stack.procstat import cpu_seconds, pin, unpin
from aipx_stack.select import pin_with_stack
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key"
CONCURRENCY = (1, 16, 64)
TOTAL_OK: dict[str, int] = {}  # OK answers per target over every round


@dataclass(frozen=True)
class Setup:
    """What the servers under test run against: load generator, stack endpoints, CPUs."""

    loadgen: str
    ghz: str | None
    base_dsn: str  # the PostgreSQL server the scratch databases live on (to drop them afterwards)
    kafka: str
    redis_url: str
    cpus: set[int]  # where the servers under test run


@dataclass(frozen=True)
class OmsTarget:
    """One OMS under test: its code (None = this checkout), its own scratch database and topics, its port."""

    label: str
    pythonpath: str | None
    dsn: str
    topic: str  # order events
    market_topic: str  # quiet market data: no price band from others' data
    port: int


@dataclass
class Result:
    concurrency: int
    ok: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_s: float = 0.0  # CPU time (user + system) of the server process(es) during the round

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / self.ok * 1e6 if self.ok else 0.0


def request_json(client_order_id: str) -> dict[str, object]:
    return {
        "order": {
            "client_order_id": client_order_id,
            "symbol": "BTC-USDT",
            "side": "SIDE_BUY",
            "type": "ORDER_TYPE_LIMIT",
            "time_in_force": "TIME_IN_FORCE_GTC",
            "quantity": {"value": "0.001"},
            "price": {"value": "20000"},
        }
    }


def request_pb(client_order_id: str) -> oms_pb2.SubmitOrderRequest:
    return oms_pb2.SubmitOrderRequest(
        order=orders_pb2.OrderRequest(
            client_order_id=client_order_id,
            symbol="BTC-USDT",
            side=common_pb2.SIDE_BUY,
            type=orders_pb2.ORDER_TYPE_LIMIT,
            time_in_force=orders_pb2.TIME_IN_FORCE_GTC,
            quantity=common_pb2.Decimal(value="0.001"),
            price=common_pb2.Decimal(value="20000"),
        )
    )


# --- the ceiling: a bare server -------------------------------------------------------------------------


class BareServicer(oms_pb2_grpc.OmsServiceServicer):
    """Answers SubmitOrder with a fixed order: no auth, no validation, no storage."""

    def __init__(self) -> None:
        self.response = oms_pb2.SubmitOrderResponse(
            order=orders_pb2.Order(order_id=str(uuid.uuid4()), status=orders_pb2.ORDER_STATUS_ACCEPTED),
            created=True,
        )

    async def SubmitOrder(
        self, request: oms_pb2.SubmitOrderRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> oms_pb2.SubmitOrderResponse:
        return self.response


async def run_bare_server(port: int) -> None:
    server = grpc.aio.server()
    # The type stubs mark every RPC abstract; the other RPCs answer UNIMPLEMENTED (inherited).
    factory: Any = BareServicer
    oms_pb2_grpc.add_OmsServiceServicer_to_server(factory(), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


# --- load generators -------------------------------------------------------------------------------------


def find_ghz() -> str | None:
    found = shutil.which("ghz")
    if found:
        return found
    candidate = Path.home() / "go" / "bin" / "ghz"
    return str(candidate) if candidate.exists() else None


def run_ghz(ghz: str, target: str, concurrency: int, seconds: float, prefix: str) -> Result:
    data = request_json(f"{prefix}-{{{{.UUID}}}}")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(data, f)
        data_file = f.name
    command = [
        ghz, "--insecure", "--proto", str(ROOT / "proto/aipx/v1/oms.proto"),
        "--import-paths", str(ROOT / "proto"),
        "--call", "aipx.v1.OmsService.SubmitOrder", "--data-file", data_file,
        "--metadata", json.dumps({"x-api-key": API_KEY}), "-c", str(concurrency), "-z", f"{seconds}s",
        "--connections", str(min(concurrency, 4)), "--timeout", "10s", "--format", "json", target,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    os.unlink(data_file)
    if out.returncode != 0 and not out.stdout:
        raise RuntimeError(f"ghz failed: {out.stderr}")
    report = json.loads(out.stdout)
    codes = report.get("statusCodeDistribution") or {}
    ok = int(codes.get("OK", 0))
    errors = sum(int(v) for k, v in codes.items() if k != "OK")
    latencies = {int(p["percentage"]): p["latency"] / 1e6 for p in report.get("latencyDistribution") or []}
    return Result(
        concurrency, ok, errors, report["total"] / 1e9, latencies.get(50, 0.0), latencies.get(99, 0.0)
    )


async def run_python(target: str, concurrency: int, seconds: float, prefix: str) -> Result:
    channels = [grpc.aio.insecure_channel(target) for _ in range(min(concurrency, 4))]
    stubs = [oms_pb2_grpc.OmsServiceStub(c) for c in channels]
    metadata = (("x-api-key", API_KEY),)
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        stub = stubs[w % len(stubs)]
        n = 0
        while loop.time() < until:
            n += 1
            started = time.perf_counter()
            try:
                await stub.SubmitOrder(request_pb(f"{prefix}-{w}-{n}"), metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else 0.0
    return Result(
        concurrency, len(latencies), errors, elapsed, statistics.median(latencies) if latencies else 0.0, p99
    )


# --- setup --------------------------------------------------------------------------------------------------


async def seed_database(dsn: str) -> None:
    """Migrate and seed the bench account with the aipx_oms on sys.path (run in the target's own process)."""
    from aipx_oms.settings import DEFAULT_MIGRATIONS_DIR
    from aipx_oms.store.admin import (
        DEMO_INSTRUMENTS,
        add_api_key,
        set_risk_limits,
        upsert_account,
        upsert_instrument,
    )
    from aipx_oms.store.migrations import migrate

    await migrate(dsn, DEFAULT_MIGRATIONS_DIR)
    conn = await asyncpg.connect(dsn)
    try:
        for instrument in DEMO_INSTRUMENTS:
            await upsert_instrument(conn, instrument)
        await upsert_account(conn, "bench")
        await add_api_key(conn, "bench", API_KEY)
        await set_risk_limits(
            conn, "bench", max_open_orders=10_000_000, rate_per_s=Decimal(10_000_000), rate_burst=10_000_000,
            max_position_notional=Decimal("1e15"),
        )  # fmt: skip
        # A margin account: the bench measures accepted orders, not the insufficient-balance rejection that an
        # unfunded cash account gets since the ledger (revisions before it have no such column).
        with contextlib.suppress(asyncpg.UndefinedColumnError):
            await conn.execute(
                "UPDATE accounts SET allow_negative_balances = true WHERE account_id = $1", "bench"
            )
    finally:
        await conn.close()


async def prepare_database(base_dsn: str, label: str, pythonpath: str | None) -> str:
    """A scratch database migrated and seeded by the code of the OMS under test (its own migrations)."""
    dsn = await scratch.create_database(base_dsn, f"oms_bench_{label}_{uuid.uuid4().hex[:8]}")
    seeded = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--seed-database", dsn, env=code_env(dict(os.environ), pythonpath)
    )
    if await seeded.wait() != 0:
        raise RuntimeError(f"seeding the {label} bench database failed (exit {seeded.returncode})")
    return dsn


def code_env(environ: dict[str, str], pythonpath: str | None) -> dict[str, str]:
    """`environ` with `pythonpath` (another revision's sources) ahead of this venv's editable installs."""
    if pythonpath is None:
        return environ
    return {
        **environ,
        "PYTHONPATH": os.pathsep.join([pythonpath, *filter(None, [environ.get("PYTHONPATH")])]),
    }


def baseline_checkout(ref: str) -> tuple[str, str]:
    """(short sha, PYTHONPATH of its OMS and shared library) of a git worktree of `ref`, created once."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    path = Path(tempfile.gettempdir()) / f"oms-base-{sha[:12]}"
    if not (path / "services/oms/src/aipx_oms").is_dir():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), sha], check=True,
            capture_output=True,
        )  # fmt: skip
    return sha[:9], os.pathsep.join(str(path / d) for d in ("services/oms/src", "libs/aipx/src"))


async def commit_latency(dsn: str, n: int = 200) -> tuple[float, float]:
    """p50/p99 ms of a one-row INSERT + COMMIT on this server: the durability floor of any acknowledgement."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE bench_commit_probe (x int)")
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            await conn.execute("INSERT INTO bench_commit_probe VALUES (1)")
            samples.append((time.perf_counter() - started) * 1000)
        await conn.execute("DROP TABLE bench_commit_probe")
    finally:
        await conn.close()
    samples.sort()
    return samples[n // 2], samples[int(n * 0.99) - 1]


async def wait_serving(target: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        until = time.monotonic() + timeout_s
        while time.monotonic() < until:
            if proc.poll() is not None:
                raise RuntimeError(f"server process exited with {proc.returncode}")
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{target} not serving after {timeout_s}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def load(
    loadgen: str, ghz: str | None, target: str, concurrency: int, *, seconds: float, label: str
) -> Result:
    prefix = f"{label}-c{concurrency}-{uuid.uuid4().hex[:6]}"
    if loadgen == "ghz" and ghz:
        return run_ghz(ghz, target, concurrency, seconds, prefix)
    return await run_python(target, concurrency, seconds, prefix)


async def measure(
    targets: dict[str, str],
    pids: dict[str, list[int]],
    *,
    loadgen: str,
    ghz: str | None,
    seconds: float,
    rounds: int,
) -> dict[str, list[Result]]:
    """For each concurrency, alternate rounds between the targets (so both see the same machine load) and
    keep each target's best round."""
    for label, target in targets.items():  # warm-up: connections, caches, code paths
        await load(loadgen, ghz, target, 16, seconds=2, label=f"{label}-warm")
    best: dict[str, list[Result]] = {label: [] for label in targets}
    TOTAL_OK.clear()
    for concurrency in CONCURRENCY:
        rounds_of: dict[str, list[Result]] = {label: [] for label in targets}
        for _ in range(rounds):
            for label, target in targets.items():
                cpu_before = cpu_seconds(pids[label])
                result = await load(loadgen, ghz, target, concurrency, seconds=seconds, label=label)
                result.cpu_s = cpu_seconds(pids[label]) - cpu_before
                rounds_of[label].append(result)
                TOTAL_OK[label] = TOTAL_OK.get(label, 0) + result.ok
                print(
                    f"  {label:<5} c={concurrency:<3} {result.rps:9.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                    f"p99 {result.p99_ms:7.2f} ms  ok {result.ok}  errors {result.errors}  "
                    f"server CPU {result.cpu_us_per_request:5.0f} us/request",
                    flush=True,
                )
        for label, results in rounds_of.items():
            best[label].append(max(results, key=lambda r: r.rps))
    return best


async def main_async(args: argparse.Namespace) -> int:
    ghz = find_ghz()
    loadgen = args.loadgen or ("ghz" if ghz else "python")
    if loadgen == "ghz" and not ghz:
        print("ghz not found (go install github.com/bojand/ghz/cmd/ghz@latest)", file=sys.stderr)
        return 2
    base_dsn = PostgresSettings().dsn.get_secret_value()
    kafka = KafkaSettings().bootstrap_servers
    redis_url = RedisSettings().url.get_secret_value()
    code: dict[str, str | None] = {"oms": None}
    if args.baseline:
        sha, pythonpath = baseline_checkout(args.baseline)
        code["base"] = pythonpath
        print(f"baseline: {args.baseline} = {sha}, its OMS from {pythonpath.split(os.pathsep)[0]}")
    targets: list[OmsTarget] = []
    for label, code_path in code.items():
        dsn = await prepare_database(base_dsn, label, code_path)
        suffix = uuid.uuid4().hex[:8]
        target = OmsTarget(
            label, code_path, dsn, f"bench-order-events-{suffix}", f"bench-market-data-{suffix}", free_port()
        )
        await scratch.create_topics(kafka, {target.topic: 6, target.market_topic: 6})
        targets.append(target)
    conn = await asyncpg.connect(targets[0].dsn)
    sync_commit = await conn.fetchval("SHOW synchronous_commit")
    fsync = await conn.fetchval("SHOW fsync")
    await conn.close()
    print(f"OMS SubmitOrder benchmark - {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    load1, load5, load15 = os.getloadavg()
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average {load1:.1f} {load5:.1f} {load15:.1f}"
    )
    generator = f"ghz ({ghz})" if loadgen == "ghz" else "Python grpc.aio (in this process)"
    print(f"load generator: {generator}")
    floor_p50, floor_p99 = await commit_latency(targets[0].dsn)
    print(
        f"PostgreSQL synchronous_commit={sync_commit} fsync={fsync}; one-row commit p50 {floor_p50:.2f} ms "
        f"p99 {floor_p99:.2f} ms (an acknowledgement waits for up to two: the one in flight and its own)"
    )

    cpus = sorted(os.sched_getaffinity(0))
    pinned = args.pin if args.pin is not None else len(cpus) >= 2
    servers_cpus, others_cpus = ({cpus[-1]}, set(cpus[:-1])) if pinned else (set(cpus), set(cpus))
    placed: list[tuple[int, set[int]]] = []
    if pinned:
        # Production runs PostgreSQL, Kafka and the clients on other hosts than the OMS: here the servers
        # under test (measured one at a time) get a CPU of their own, and the load generator (a child of
        # this process) and the local stack share the others.
        placed, stack_note = pin_with_stack(others_cpus)
        print(
            f"placement: servers under test on CPU {sorted(servers_cpus)}; load generator and {stack_note}"
            f" on CPU {sorted(others_cpus)} (--no-pin: all share every CPU)"
        )
    else:
        print("placement: every process on every CPU (--pin gives the servers under test a CPU of their own)")
    try:
        setup = Setup(loadgen, ghz, base_dsn, kafka, redis_url, servers_cpus)
        return await run_servers(args, setup, targets)
    finally:
        unpin(placed)


def print_table(title: str, measured: list[Result], ceiling: list[Result], against: str) -> None:
    print(f"\n{title}")
    print(f"concurrency  req/s  {against + ' req/s':>11}  ratio   p50 ms   p99 ms  {against + ' p99 ms':>11}"
          f"  CPU us/req  {against}")  # fmt: skip
    for mine, top in zip(measured, ceiling, strict=True):
        ratio = mine.rps / top.rps if top.rps else 0.0
        print(
            f"{mine.concurrency:>11}  {mine.rps:5.0f}  {top.rps:11.0f}  {ratio:5.0%}  {mine.p50_ms:7.2f}  "
            f"{mine.p99_ms:7.2f}  {top.p99_ms:11.2f}  {mine.cpu_us_per_request:10.0f}  "
            f"{top.cpu_us_per_request:4.0f}"
        )


async def durability(target: OmsTarget) -> bool:
    """Check (and print) that every OK answer of `target` is a committed order with its first event queued."""
    conn = await asyncpg.connect(target.dsn)
    try:
        orders = await conn.fetchval("SELECT count(*) FROM orders")
        with_event = await conn.fetchval(
            "SELECT count(*) FROM orders o JOIN order_events e USING (order_id)"
            " JOIN outbox x USING (log_sequence)"
            " WHERE e.sequence = 1"
        )
        statuses = {
            r[0]: r[1] for r in await conn.fetch("SELECT status, count(*) FROM orders GROUP BY status")
        }
        batch = await conn.fetchval("SELECT count(*) FROM outbox")
    finally:
        await conn.close()
    acked = TOTAL_OK.get(target.label, 0)
    print(f"durability ({target.label}): {acked} OK answers in all rounds (+ warm-up); "
          f"{orders} orders committed, {with_event} with their first event "
          f"in the outbox ({batch} outbox rows); statuses {statuses}")  # fmt: skip
    ok = bool(orders >= acked and with_event == orders)
    if not ok:
        print(
            f"DURABILITY CHECK FAILED ({target.label}): an acknowledged order is missing or lacks its event"
        )
    rejected = statuses.get("REJECTED", 0)
    if rejected:
        print(f"CHECK FAILED ({target.label}): {rejected} orders rejected (the bench measures accepted ones)")
        ok = False
    return ok


async def run_servers(args: argparse.Namespace, setup: Setup, targets: list[OmsTarget]) -> int:
    """Start the bare server and each OMS on `setup.cpus`, measure them, check durability, clean up."""

    def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(command, env=env)
        pin([proc.pid], setup.cpus)  # at once: threads it creates later inherit the placement
        return proc

    def oms_environ(target: OmsTarget) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("AIPX_OMS_")}
        environ.update(
            {
                "AIPX_POSTGRES_DSN": target.dsn,
                "AIPX_REDIS_URL": setup.redis_url,
                "AIPX_KAFKA_BOOTSTRAP_SERVERS": setup.kafka,
                "AIPX_METRICS_PORT": "0",
                "AIPX_LOG_LEVEL": "WARNING",
                "AIPX_OMS_GRPC_HOST": "127.0.0.1",
                "AIPX_OMS_GRPC_PORT": str(target.port),
                "AIPX_OMS_ORDER_EVENTS_TOPIC": target.topic,
                "AIPX_OMS_MARKET_DATA_TOPIC": target.market_topic,
                "AIPX_OMS_RELAY_ENABLED": "true" if args.relay == "inprocess" else "false",
                "AIPX_OMS_REDIS_KEY_PREFIX": f"bench:{uuid.uuid4().hex[:8]}",
            }
        )
        return code_env(environ, target.pythonpath)

    bare_port = free_port()
    procs: list[subprocess.Popen[bytes]] = [
        start([sys.executable, __file__, "--bare-server", str(bare_port)])
    ]
    endpoints = {"bare": f"127.0.0.1:{bare_port}"}
    pids = {"bare": [procs[0].pid]}
    try:
        for target in targets:
            environ = oms_environ(target)
            oms = start([sys.executable, "-m", "aipx_oms"], environ)
            procs.append(oms)
            pids[target.label] = [oms.pid]
            if args.relay == "separate":
                relay = start([sys.executable, "-m", "aipx_oms", "relay"], environ)
                procs.append(relay)
                pids[target.label].append(relay.pid)
            endpoints[target.label] = f"127.0.0.1:{target.port}"
        for label, endpoint in endpoints.items():
            await wait_serving(endpoint, next(p for p in procs if p.pid == pids[label][0]))
        relay_note = {
            "inprocess": "relay in process",
            "separate": "relay as its own process",
            "off": "no relay",
        }
        print("bare: a bare grpc.aio SubmitOrder server (fixed answer, no work) - the ceiling")
        print("oms:  auth + validation + risk + Redis rate limit + group commit (sync) + outbox; "
              + relay_note[args.relay])  # fmt: skip
        if args.baseline:
            print(f"base: the OMS of {args.baseline}, same settings and load")
        print(f"{args.rounds} alternating rounds of {args.seconds:.0f}s per concurrency; best round of each")
        best = await measure(
            endpoints, pids, loadgen=setup.loadgen, ghz=setup.ghz, seconds=args.seconds, rounds=args.rounds
        )
    finally:
        for proc in procs:
            stop(proc)

    ok = all([await durability(target) for target in targets])
    ceiling, measured = best["bare"], best["oms"]
    print_table("oms against the bare server (the ceiling)", measured, ceiling, "bare")
    if "base" in best:
        print_table(f"base ({args.baseline}) against the bare server", best["base"], ceiling, "bare")
        print_table(f"oms against base ({args.baseline}): A/B", measured, best["base"], "base")
        loss = max(1 - mine.rps / base.rps for mine, base in zip(measured, best["base"], strict=True))
        print(f"\nA/B: worst throughput change of oms against base {-loss:+.1%} "
              f"-> {'within' if loss <= 0.10 else 'MORE THAN'} the 10% allowed")  # fmt: skip
    c64 = measured[-1].rps / ceiling[-1].rps if ceiling[-1].rps else 0.0
    c16_p99 = measured[1].p99_ms
    print(f"\ntarget c=64 >= 50% of the ceiling: {c64:.0%} -> {'MET' if c64 >= 0.5 else 'NOT MET'}")
    print(f"target c=16 p99 < 15 ms: {c16_p99:.2f} ms -> {'MET' if c16_p99 < 15 else 'NOT MET'}")
    if not args.keep:
        for target in targets:
            await scratch.drop_database(setup.base_dsn, urlsplit(target.dsn).path.lstrip("/"))
            await scratch.delete_topics(setup.kafka, [target.topic, target.market_topic])
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per concurrency level")
    parser.add_argument(
        "--loadgen", choices=("ghz", "python"), default=None, help="default: ghz when installed"
    )
    parser.add_argument(
        "--relay",
        choices=("inprocess", "separate", "off"),
        default="inprocess",
        help="outbox relay in the OMS process (default), its own process (python -m aipx_oms relay), or off",
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="give the server under test a CPU of its own (default: on with 2 or more CPUs)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        default=None,
        help="also measure the OMS of git revision REF in the same run (A/B), e.g. 9fa7e47",
    )
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases and topics")
    parser.add_argument("--bare-server", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed-database", metavar="DSN", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_database is not None:
        asyncio.run(seed_database(args.seed_database))
        return 0
    if args.bare_server is not None:
        uvloop.run(run_bare_server(args.bare_server))  # the same event loop as the OMS
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
