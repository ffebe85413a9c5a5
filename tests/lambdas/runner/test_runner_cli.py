"""`python -m aipx_runner` as a process: manifest sources with overrides, SIGTERM during a batch."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .conftest import committed, produce, until

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent


async def wait_for_line(stream: asyncio.StreamReader, needle: str, within_s: float = 30) -> None:
    async with asyncio.timeout(within_s):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"the runner exited before logging {needle!r}")
            if needle in line:
                return


async def test_sigterm_finishes_the_in_flight_batch_commits_and_exits_cleanly(
    kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    topic, dlq = await new_topic(1), await new_topic(1)
    prefix = f"cli-{uuid.uuid4().hex[:6]}-"
    out = tmp_path / "probe.txt"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        ops_port = probe.getsockname()[1]
    env = {
        **os.environ,
        "AIPX_METRICS_HOST": "127.0.0.1",
        "AIPX_METRICS_PORT": str(ops_port),
        "PROBE_OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "AIPX_LOG_FORMAT": "console",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aipx_runner",
        "--function", "strategy",
        "--bootstrap-servers", kafka_bootstrap,
        "--topic", f"market-data-raw={topic}",
        "--topic", f"market-data-raw.dlq={dlq}",
        "--group-prefix", prefix,
        "--handler", "strategy=runner_probe.handler",
        "--batching-window", "0.05",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        await wait_for_line(proc.stdout, "ready")  # LATEST: produce only once positions are resolved
        url = f"http://127.0.0.1:{ops_port}/readyz"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200
            assert (await response.json())["checks"] == {"event-sources-assigned": True}
        await produce(kafka_bootstrap, topic, [(0, f"m{i}".encode()) for i in range(5)])
        await until(lambda: out.exists() and out.read_text().startswith("start"), what="a batch in flight")
        proc.send_signal(signal.SIGTERM)  # the handler is sleeping inside the batch
        code = await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0
    assert out.read_text().splitlines() == ["start [0, 1, 2, 3, 4]", "end [0, 1, 2, 3, 4]"]
    assert await committed(kafka_bootstrap, topic, f"{prefix}aipx-strategy") == [5]


def test_invocations_are_counted_for_prometheus() -> None:
    import aipx_runner.runner  # noqa: F401  (registers the metrics)
    from prometheus_client import REGISTRY

    names = {metric.name for metric in REGISTRY.collect()}
    assert {"aipx_runner_invocations", "aipx_runner_records", "aipx_runner_dead_lettered"} <= names


def test_the_command_line_chooses_where_handlers_run() -> None:
    from aipx_runner.__main__ import build_config, parse_args

    assert build_config(parse_args(["--function", "strategy"])).isolation == "thread"
    config = build_config(parse_args(["--function", "strategy", "--isolation", "process"]))
    assert config.isolation == "process"
    env = config.instance_env({"PATH": "/bin"})
    assert env["PATH"] == "/bin" and env["AIPX_LAMBDA_ESM_MODE"] == config.mode
    assert env["AIPX_LAMBDA_ATTEMPT_STORE"] == config.attempt_store
    assert env["AIPX_KAFKA_BOOTSTRAP_SERVERS"] == config.kafka.bootstrap_servers
