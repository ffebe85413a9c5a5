"""`./aipx run`: the whole AIPX platform on the local stack, fed by the built-in exchange simulator.

Starts (or reuses) the stack, migrates and seeds the OMS database, then supervises one process per
deployable: the exchange simulator, ingestion, the OMS (gRPC), the event-source runner with the four
functions, and a local webhook inbox that receives the notification function's messages. Prints where
everything is, then runs until Ctrl-C / SIGTERM / SIGHUP (or `--duration`), and stops the processes
gracefully. `--smoke` waits for the first order placed by the strategy -> cognitive -> OMS chain and exits
0/1.

Nothing outlives the supervisor, however it ends (aipx_stack.lifeline): each child dies with it (parent-death
signal), runs in its own process group (Ctrl-C reaches the supervisor, which stops them in order), and is
named in `<log dir>/platform.pid.json`, which `./aipx down` (`--down`) and the next `./aipx run` honour. A
closed stdout (`./aipx run | tee run.log` stopped with Ctrl-C kills `tee` first) does not stop the shutdown.

The same `Platform` class drives the end-to-end tests (tests/e2e).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from aiohttp import web
from aipx.aio import wait_event

from aipx_stack.config import StackConfig
from aipx_stack.endpoints import Endpoints
from aipx_stack.lifeline import PidFile, Proc, launcher, stop_leftovers
from aipx_stack.ports import free_port, free_port_block
from aipx_stack.select import open_stack

log = logging.getLogger("aipx.platform")

DEMO_API_KEY = "aipx-demo-key"  # seeded by `python -m aipx_oms seed` (services/oms store/admin.py)
DEMO_ACCOUNT = "demo"
FUNCTIONS = ("strategy", "cognitive", "notification", "recorder")


@dataclass(frozen=True)
class Ports:
    """Ports of the platform's processes (the stack's own ports are configured in aipx_stack.config)."""

    oms_grpc: int = 50051
    sim_ws: int = 18765
    sim_rest: int = 18766
    inbox: int = 18780
    ingestion_metrics: int = 9101
    oms_metrics: int = 9102
    runner_metrics: int = 9103  # first of four consecutive ports, one per function
    console: int = 18790
    console_metrics: int = 9107
    prometheus: int = 19090  # with --prometheus

    @classmethod
    def ephemeral(cls) -> Ports:
        """Ports the OS reports free (tests and benchmarks that run beside `./aipx run`)."""
        # The runners number their metrics ports from one base: that base needs a whole free block (a single
        # free port with its neighbours taken made a runner fail to bind, and the platform stop).
        ports = {f.name: free_port() for f in fields(cls) if f.name != "runner_metrics"}
        return cls(**ports, runner_metrics=free_port_block(len(FUNCTIONS)))


@dataclass
class ProcessSpec:
    """One supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None


def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


# Migrations + the demo account, its API key and the instruments: what makes the chain able to trade. The
# compose file runs the same command in its one-shot `oms-seed` service (checked by tests/infrastructure).
SEED_ARGS = ("-m", "aipx_oms", "seed")


def trading_env(oms_target: str, *, fast_strategies: bool = True) -> dict[str, str]:
    """What makes approved decisions become paper orders on the demo account (cognitive's OMS target and
    key) and signals appear within a minute (fast strategies). Shared with docker-compose.yml's runners."""
    env = {
        "AIPX_COGNITIVE_AUTO_TRADING_ENABLED": "true",
        "AIPX_COGNITIVE_AUTO_TRADING_STRATEGIES": '["*"]',
        "AIPX_COGNITIVE_ACCOUNT": DEMO_ACCOUNT,
        "AIPX_COGNITIVE_OMS_TARGET": oms_target,
        "AIPX_COGNITIVE_OMS_API_KEY": DEMO_API_KEY,
        "AIPX_COGNITIVE_ORDER_QUANTITIES": json.dumps(
            {
                "BTC-USDT": "0.001",
                "ETH-USDT": "0.01",
                "SOL-USDT": "0.1",
                "BNB-USDT": "0.02",
                "XRP-USDT": "10",
            }
        ),
    }
    if fast_strategies:
        # Seconds-long candles and short trend filters so signals appear within a minute of start.
        env.update(
            {
                "AIPX_STRATEGY_INTERVALS": '["2s"]',
                "AIPX_STRATEGY_TREND_FAST": "5",
                "AIPX_STRATEGY_TREND_SLOW": "12",
            }
        )
    return env


def platform_env(
    endpoints: Endpoints,
    ports: Ports,
    *,
    topics: Mapping[str, str] | None = None,
    fast_strategies: bool = True,
) -> dict[str, str]:
    """Environment shared by every platform process: the stack endpoints plus the local wiring."""
    env = endpoints.as_env(aws=True)
    topics = dict(topics or {})
    env.update(
        {
            "AIPX_LOG_FORMAT": os.environ.get("AIPX_LOG_FORMAT", "json"),
            # simulator and ingestion
            "AIPX_SIM_WS_PORT": str(ports.sim_ws),
            "AIPX_SIM_REST_PORT": str(ports.sim_rest),
            "AIPX_INGESTION_WS_URLS": json.dumps(
                {
                    "binance": f"ws://127.0.0.1:{ports.sim_ws}/binance/stream",
                    "bybit": f"ws://127.0.0.1:{ports.sim_ws}/bybit/v5/public/spot",
                }
            ),
            "AIPX_INGESTION_REST_URLS": json.dumps({"binance": f"http://127.0.0.1:{ports.sim_rest}"}),
            # OMS
            "AIPX_OMS_GRPC_PORT": str(ports.oms_grpc),
            # cognitive: approved decisions become paper orders on the demo account
            **trading_env(f"127.0.0.1:{ports.oms_grpc}", fast_strategies=fast_strategies),
            # notification: every routed event to the local inbox, HMAC-signed
            "AIPX_NOTIFICATION_WEBHOOKS": json.dumps(
                [
                    {
                        "name": "local",
                        "url": f"http://127.0.0.1:{ports.inbox}/hook",
                        "secret": "local-dev-secret",
                    }
                ]
            ),
        }
    )
    env.update(topics)
    return env


def default_processes(ports: Ports, runner_args: tuple[str, ...] = ()) -> list[ProcessSpec]:
    """The deployables, in start order (`runner_args`: extra options of every `python -m aipx_runner`)."""
    return [
        ProcessSpec(
            "exchange-sim",
            _py("-m", "aipx_exchange_sim"),
            ready_url=f"http://127.0.0.1:{ports.sim_rest}/api/v3/ping",
        ),
        ProcessSpec(
            "oms",
            _py("-m", "aipx_oms", "serve"),
            {"AIPX_METRICS_PORT": str(ports.oms_metrics)},
            ready_url=f"http://127.0.0.1:{ports.oms_metrics}/readyz",
        ),
        ProcessSpec(
            "ingestion",
            _py("-m", "aipx_ingestion"),
            {"AIPX_METRICS_PORT": str(ports.ingestion_metrics)},
            ready_url=f"http://127.0.0.1:{ports.ingestion_metrics}/readyz",
        ),
        # One runner process per function, as each is its own Lambda: separate interpreters, and
        # powertools' Metrics (a per-process store) stays per function.
        *(
            ProcessSpec(
                f"runner-{name}",
                _py("-m", "aipx_runner", "--function", name, *runner_args),
                {"AIPX_METRICS_PORT": str(ports.runner_metrics + i)},
                # Ready = every event source has its partitions and its start position (LATEST resolved):
                # from then on no record is skipped (a start position resolved later would skip what was
                # produced in between, e.g. the first order's events under load).
                ready_url=f"http://127.0.0.1:{ports.runner_metrics + i}/readyz",
            )
            for i, name in enumerate(FUNCTIONS)
        ),
        console_process(ports),
    ]


def console_process(ports: Ports) -> ProcessSpec:
    """The operator console: reads the topics, the OMS API and every service's /metrics."""
    targets = {
        "ingestion": ports.ingestion_metrics,
        "oms": ports.oms_metrics,
        **{f"runner-{name}": ports.runner_metrics + i for i, name in enumerate(FUNCTIONS)},
    }
    return ProcessSpec(
        "console",
        _py("-m", "aipx_console"),
        {
            "AIPX_METRICS_PORT": str(ports.console_metrics),
            "AIPX_CONSOLE_HTTP_PORT": str(ports.console),
            "AIPX_CONSOLE_OMS_TARGET": f"127.0.0.1:{ports.oms_grpc}",
            "AIPX_CONSOLE_OMS_API_KEYS": json.dumps({DEMO_ACCOUNT: DEMO_API_KEY}),
            "AIPX_CONSOLE_METRICS_TARGETS": json.dumps(
                {name: f"http://127.0.0.1:{port}/metrics" for name, port in targets.items()}
            ),
        },
        ready_url=f"http://127.0.0.1:{ports.console}/healthz",
    )


class Inbox:
    """A local webhook receiver standing in for Slack/Telegram: keeps and logs what the platform sends."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        entry: dict[str, Any] = {
            "headers": {k: v for k, v in request.headers.items() if k.lower().startswith("x-")},
            "body": body.decode("utf-8", errors="replace"),
            "received_ns": time.time_ns(),
        }
        self.received.append(entry)
        log.info("notification received: %s", entry["body"][:300])
        return web.json_response({"ok": True})

    async def _list(self, _: web.Request) -> web.Response:
        return web.json_response(self.received[-200:])

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_get("/notifications", self._list)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def default_log_dir() -> Path:
    """`./aipx run`'s logs and pid file: `.aipx/platform/` beside the stack's state."""
    return StackConfig.from_env().state_dir.parent / "platform"


class Platform:
    """Starts, watches and stops the platform processes on a running stack."""

    def __init__(
        self,
        endpoints: Endpoints,
        *,
        ports: Ports | None = None,
        log_dir: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        processes: list[ProcessSpec] | None = None,
        runner_args: tuple[str, ...] = (),
    ) -> None:
        self.endpoints = endpoints
        self.ports = ports or Ports()
        self.log_dir = log_dir or default_log_dir()
        self.env = {**os.environ, **platform_env(endpoints, self.ports), **(extra_env or {})}
        self.specs = processes or default_processes(self.ports, runner_args)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.inbox = Inbox(self.ports.inbox)
        self.started_ns = time.time_ns()
        self.pid_file = PidFile(self.log_dir / "platform.pid.json")

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_file(name)
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def seed(self) -> None:
        """Apply the OMS migrations and create the demo account, key and instruments."""
        result = subprocess.run(_py(*SEED_ARGS), env=self.env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"OMS seed failed:\n{result.stdout}\n{result.stderr}")

    async def start(self, ready_timeout_s: float = 240.0) -> None:
        """Seed, start every process in order and wait until each answers its readiness URL."""
        self.started_ns = time.time_ns()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # What a previous run left behind (its supervisor killed or frozen) still holds the ports.
        if left := await asyncio.to_thread(stop_leftovers, self.pid_file):
            log.warning("stopped processes a previous run left: %s", ", ".join(left))
        self._write_pid_file()
        await asyncio.to_thread(self.seed)
        await self.inbox.start()
        for spec in self.specs:
            self._spawn(spec)
            if spec.ready_url:
                await self._wait_ready(spec, ready_timeout_s)
            log.info("started %s (pid %d)", spec.name, self.procs[spec.name].pid)

    def _spawn(self, spec: ProcessSpec) -> None:
        # Called on the event loop's thread, which lives as long as the supervisor: the parent-death signal
        # fires when the thread that forked the child exits.
        with self.log_file(spec.name).open("ab") as out:
            self.procs[spec.name] = subprocess.Popen(
                launcher(os.getpid(), spec.argv),
                env={**self.env, **spec.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the terminal's Ctrl-C is not sent to it
            )
        self._write_pid_file()

    def _write_pid_file(self) -> None:
        self.pid_file.write(
            Proc.of("supervisor", os.getpid()), [Proc.of(n, p.pid) for n, p in self.procs.items()]
        )

    async def _wait_ready(self, spec: ProcessSpec, timeout_s: float) -> None:
        import aiohttp

        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                proc = self.procs[spec.name]
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{spec.name} exited with {proc.returncode} during start:\n{self.tail(spec.name)}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                    async with session.get(spec.ready_url or "") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.5)
        raise RuntimeError(
            f"{spec.name} not ready at {spec.ready_url} after {timeout_s:.0f}s:\n{self.tail(spec.name)}"
        )

    def crashed(self) -> dict[str, int]:
        """Processes that exited, with their exit codes."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    async def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every process (reverse start order), SIGKILL what is left after the timeout."""
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for name, proc in self.procs.items():
            try:
                await asyncio.to_thread(proc.wait, max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs: killing it", name, timeout_s)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its whole group
                proc.kill()
                await asyncio.to_thread(proc.wait)
        self.pid_file.remove()
        await self.inbox.stop()

    def summary(self) -> str:
        """Where everything is, for the operator."""
        e, p = self.endpoints, self.ports
        return "\n".join(
            [
                "AIPX is running locally.",
                f"  Console           http://127.0.0.1:{p.console}/   (actions: operator token)",
                f"  OMS gRPC          127.0.0.1:{p.oms_grpc}   (metadata x-api-key: {DEMO_API_KEY}; "
                "reflection + health enabled)",
                f"    try: uv run aipx-oms-cli --api-key {DEMO_API_KEY} orders",
                f"  Kafka             {e.kafka_bootstrap}   topics: market-data-raw, trading-signals, "
                "trading-decisions, order-events (+ .dlq)",
                f"  PostgreSQL        {e.postgres_dsn}",
                f"  Redis             {e.redis_url}",
                f"  S3 (data lake)    {e.s3_endpoint_url}  bucket {e.s3_bucket}",
                f"  Exchange sim      ws://127.0.0.1:{p.sim_ws}  rest http://127.0.0.1:{p.sim_rest}",
                f"  Metrics/health    ingestion :{p.ingestion_metrics}  oms :{p.oms_metrics}  functions "
                f":{p.runner_metrics}-{p.runner_metrics + len(FUNCTIONS) - 1}  console :{p.console_metrics}  "
                "(/metrics /healthz /readyz)",
                f"  Notifications     http://127.0.0.1:{p.inbox}/notifications",
                f"  Logs              {self.log_dir}/<process>.log",
                "Ctrl-C stops the platform; `./aipx down` stops the stack.",
            ]
        )


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def say(text: str) -> None:
    """Print for the operator; a closed stdout (the `tee` of `./aipx run | tee` died with Ctrl-C) is not an
    error: output goes to /dev/null from then on (the log says it all) and the shutdown goes on."""
    try:
        print(text, flush=True)
    except (BrokenPipeError, ValueError, OSError):
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


async def _first_order(platform: Platform, timeout_s: float) -> bool:
    """True once the OMS holds an order the cognitive function placed after the platform started."""
    import asyncpg

    since_ns = platform.started_ns
    deadline = time.monotonic() + timeout_s
    conn = await asyncpg.connect(platform.endpoints.postgres_dsn)
    try:
        while time.monotonic() < deadline:
            count = await conn.fetchval(
                "SELECT count(*) FROM orders WHERE client_order_id LIKE 'sig-%' AND created_time_ns >= $1",
                since_ns,
            )
            if count:
                log.info("smoke: %d order(s) in the OMS", count)
                return True
            if platform.crashed():
                log.error("smoke: process(es) exited: %s", platform.crashed())
                return False
            await asyncio.sleep(2)
    finally:
        await conn.close()
    return False


async def run(
    duration_s: float | None,
    smoke_timeout_s: float | None,
    *,
    ports: Ports | None = None,
    log_dir: Path | None = None,
    prometheus: bool = False,
) -> int:
    stack = open_stack()
    say(f"[aipx] starting the local stack ({stack.mode})")
    endpoints = await asyncio.to_thread(stack.up)
    platform = Platform(endpoints, ports=ports, log_dir=log_dir)
    if prometheus:
        from aipx_stack.monitoring import prometheus_process

        platform.specs.append(prometheus_process(platform.ports, platform.log_dir / "prometheus"))
    stop = asyncio.Event()
    code = 0
    try:
        await platform.start()
        say(platform.summary())
        if prometheus:
            url = f"http://127.0.0.1:{platform.ports.prometheus}/"
            say(f"  Prometheus        {url}  (scraping every /metrics above)")
        with _signals(stop):
            if smoke_timeout_s is not None:
                ok = await _first_order(platform, smoke_timeout_s)
                say(f"[aipx] smoke {'passed' if ok else 'FAILED'}: order placed by the signal chain")
                code = 0 if ok else 1
            else:
                deadline = None if duration_s is None else time.monotonic() + duration_s
                while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                    if crashed := platform.crashed():
                        name = next(iter(crashed))
                        say(f"[aipx] {name} exited with {crashed[name]}:\n{platform.tail(name)}")
                        code = 1
                        break
                    await wait_event(stop, 1.0)
    finally:
        say("[aipx] stopping the platform")
        await platform.stop()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./aipx run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument(
        "--smoke",
        type=float,
        default=None,
        metavar="TIMEOUT_S",
        help="exit 0 once the signal chain placed an order (1 if none within TIMEOUT_S)",
    )
    parser.add_argument(
        "--ephemeral-ports",
        action="store_true",
        help="free ports the OS picks instead of 50051, 9101... (beside another platform, or in tests)",
    )
    parser.add_argument(
        "--log-dir", type=Path, default=None, help="logs and pid file (default: .aipx/platform)"
    )
    parser.add_argument(
        "--prometheus",
        action="store_true",
        help="also run Prometheus (Debian's package) scraping every service, on http://127.0.0.1:19090/ "
        "(a free port with --ephemeral-ports)",
    )
    parser.add_argument(
        "--down",
        action="store_true",
        help="stop the platform processes a previous run left (its pid file) and exit (`./aipx down`)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    if args.down:
        pid_file = PidFile((args.log_dir or default_log_dir()) / "platform.pid.json")
        stopped = stop_leftovers(pid_file)
        say(f"[aipx] stopped {', '.join(stopped)}" if stopped else "[aipx] no platform process was running")
        return 0
    ports = Ports.ephemeral() if args.ephemeral_ports else None
    return asyncio.run(
        run(args.duration, args.smoke, ports=ports, log_dir=args.log_dir, prometheus=args.prometheus)
    )


if __name__ == "__main__":
    sys.exit(main())
