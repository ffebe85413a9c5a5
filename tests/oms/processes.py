"""Real OMS processes (`python -m aipx_oms`) on their own ephemeral gRPC and metrics ports, on one test's
database and topics (OmsEnv): for failover tests and for whatever needs the OMS's own /metrics page."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from aipx_oms.server import LEADER_CHECK_PATH, SERVICE_NAME
from aipx_oms.store.leadership import WRITER_LOCK_KEY
from aipx_stack.ports import free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.oms.conftest import OmsEnv


@dataclass
class OmsProcess:
    """One `python -m aipx_oms` on its own ephemeral gRPC and metrics ports, logging to a file."""

    name: str
    grpc_port: int
    metrics_port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def health(self, service: str = SERVICE_NAME) -> int | None:
        """The health status of `service`, or None when the process does not answer."""
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
            except grpc.aio.AioRpcError:
                return None
            return int(answer.status)

    async def leader_check(self) -> grpc.StatusCode:
        """What a load balancer probing LEADER_CHECK_PATH sees (empty request, status code only)."""
        async with grpc.aio.insecure_channel(self.target) as channel:
            call: Any = channel.unary_unary(LEADER_CHECK_PATH)
            try:
                await call(b"", timeout=2)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

    async def http(self, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as r:
            return r.status, json.loads(await r.text())

    async def wait_health(self, status: int, timeout_s: float = 30.0) -> float:
        """Wait until OmsService reports `status`; returns the seconds waited."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        until = started + timeout_s
        while loop.time() < until:
            assert self.alive(), f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
            if await self.health() == status:
                return loop.time() - started
            await asyncio.sleep(0.05)
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
        raise AssertionError(f"{self.name} not {name} after {timeout_s}s:\n{self.tail()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def exit_code(self, timeout_s: float = 30.0) -> int:
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while self.proc.poll() is None:
            assert loop.time() < until, f"{self.name} running {timeout_s}s after the signal:\n{self.tail()}"
            await asyncio.sleep(0.05)
        return self.proc.returncode


@dataclass
class Cluster:
    env: OmsEnv
    logs: Path
    processes: list[OmsProcess] = field(default_factory=list)

    def spawn(
        self, name: str, *, dsn: str | None = None, kafka_timeout_ms: int = 30_000, **settings: str
    ) -> OmsProcess:
        """Start an OMS process (`settings`: AIPX_OMS_* values by field name)."""
        grpc_port, metrics_port = free_port(), free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("AIPX_OMS_")}
        environ.update(
            {
                "AIPX_POSTGRES_DSN": dsn or self.env.dsn,
                "AIPX_REDIS_URL": self.env.redis_url,
                "AIPX_KAFKA_BOOTSTRAP_SERVERS": self.env.kafka,
                "AIPX_KAFKA_REQUEST_TIMEOUT_MS": str(kafka_timeout_ms),
                "AIPX_METRICS_HOST": "127.0.0.1",
                "AIPX_METRICS_PORT": str(metrics_port),
                "AIPX_LOG_LEVEL": "INFO",
                "AIPX_LOG_FORMAT": "console",
                "AIPX_OMS_GRPC_HOST": "127.0.0.1",
                "AIPX_OMS_GRPC_PORT": str(grpc_port),
                "AIPX_OMS_ORDER_EVENTS_TOPIC": self.env.events_topic,
                "AIPX_OMS_MARKET_DATA_TOPIC": self.env.market_topic,
                "AIPX_OMS_REDIS_KEY_PREFIX": f"test-oms-process:{uuid.uuid4().hex}",
                **{f"AIPX_OMS_{k.upper()}": v for k, v in settings.items()},
            }
        )
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aipx_oms"], env=environ, stdout=out, stderr=subprocess.STDOUT
            )
        process = OmsProcess(name, grpc_port, metrics_port, proc, log)
        self.processes.append(process)
        return process

    async def lock_holder_pid(self) -> int | None:
        """The PostgreSQL backend whose session holds the writer lock of this database."""
        rows = await self.env.sql(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid::bigint = $1 AND objid::bigint = $2",
            WRITER_LOCK_KEY >> 32,
            WRITER_LOCK_KEY & 0xFFFFFFFF,
        )
        return int(rows[0]["pid"]) if rows else None

    def stop_all(self) -> None:
        for p in self.processes:
            if p.alive():
                p.signal(signal.SIGTERM)
        for p in self.processes:
            try:
                p.proc.wait(20)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(5)
