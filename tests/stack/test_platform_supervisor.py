"""`./aipx run` takes its children down whatever ends it: Ctrl-C in a real terminal with the output piped
(`| tee run.log`, where Ctrl-C kills `tee` first), SIGKILL of the supervisor, and leftovers named in the pid
file that `./aipx down` and the next run stop. Real processes and signals; the platform on free ports.
`./aipx run --prometheus` is checked on the same run: Debian's Prometheus scrapes every process that serves
/metrics."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aipx_stack.endpoints import Endpoints
from aipx_stack.install import apt_install, require_prometheus
from aipx_stack.lifeline import PidFile, Proc, start_time
from aipx_stack.platform import FUNCTIONS, Platform, Ports, ProcessSpec, default_processes

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Every process `./aipx run` supervises (simulator, OMS, ingestion, four runners, console, ...).
CHILDREN = len(default_processes(Ports()))
START_TIMEOUT_S = 300.0  # the whole platform on a loaded 2-core machine
STOP_TIMEOUT_S = 120.0


def platform_cmd(log_dir: Path, *options: str) -> list[str]:
    return [
        sys.executable, "-m", "aipx_stack.platform", "--ephemeral-ports", "--log-dir", str(log_dir), *options,
    ]  # fmt: skip


def wait_until(
    predicate: object, timeout_s: float, what: str, details: Callable[[], str] = lambda: ""
) -> None:
    """Wait for `predicate`; on timeout say what was awaited and `details()` as they are then (logs)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{details()}")
        time.sleep(0.2)


def running_children(log_dir: Path) -> list[Proc]:
    _, children = PidFile(log_dir / "platform.pid.json").read()
    return children


def logs(log_dir: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
        for p in sorted(log_dir.glob("*.log"))
    )


def all_started(log_dir: Path, expected: int = CHILDREN) -> bool:
    children = running_children(log_dir)
    return len(children) == expected and all(c.alive() for c in children)


@pytest.fixture
def tmux() -> Iterator[list[str]]:
    """tmux on a private server (its own socket, our environment), killed afterwards."""
    if shutil.which("tmux") is None:
        apt_install(["tmux"], needed_for="the supervisor's real-terminal test")
    binary = shutil.which("tmux")
    assert binary, "tmux is needed for this test: apt-get install tmux"
    base = [binary, "-L", f"aipx-test-{uuid.uuid4().hex[:8]}", "-f", "/dev/null"]
    yield base
    subprocess.run([*base, "kill-server"], capture_output=True, check=False)


@pytest.mark.timeout(900)
def test_ctrl_c_in_a_terminal_with_the_output_piped_stops_every_child(
    stack_endpoints: Endpoints, tmux: list[str], tmp_path: Path
) -> None:
    log_dir, run_log = tmp_path / "platform", tmp_path / "run.log"
    run = shlex.join(platform_cmd(log_dir))
    command = f"cd {shlex.quote(str(ROOT))} && {run} | tee {shlex.quote(str(run_log))}"
    subprocess.run([*tmux, "new-session", "-d", "-s", "aipx", "-x", "200", "-y", "50", command], check=True)
    wait_until(
        lambda: run_log.exists() and "AIPX is running locally." in run_log.read_text(errors="replace"),
        START_TIMEOUT_S,
        "the platform's summary in run.log",
        lambda: (run_log.read_text(errors="replace")[-3000:] if run_log.exists() else "") + logs(log_dir),
    )
    wait_until(lambda: all_started(log_dir), 30, "every child in the pid file", lambda: logs(log_dir))
    supervisor, children = PidFile(log_dir / "platform.pid.json").read()
    assert supervisor is not None and supervisor.alive()
    assert {c.name for c in children} >= {"exchange-sim", "oms", "ingestion", "runner-recorder"}

    subprocess.run([*tmux, "send-keys", "-t", "aipx", "C-c"], check=True)  # a real terminal's Ctrl-C

    wait_until(
        lambda: not supervisor.alive() and not any(c.alive() for c in children),
        STOP_TIMEOUT_S,
        "the supervisor and every child to exit",
        lambda: logs(log_dir),
    )
    assert not (log_dir / "platform.pid.json").exists()


def printed_ports(summary: str) -> tuple[str, dict[tuple[str, str], str]]:
    """Prometheus's URL and the /metrics address of each (job, function), as the platform's summary says."""
    prometheus = re.search(r"Prometheus\s+(http://127\.0\.0\.1:\d+)/", summary)
    metrics = re.search(
        r"Metrics/health\s+ingestion :(\d+)\s+oms :(\d+)\s+functions :(\d+)-\d+\s+console :(\d+)", summary
    )
    assert prometheus and metrics, f"no Prometheus or metrics ports in the summary:\n{summary}"
    ingestion, oms, runners, console = (int(p) for p in metrics.groups())
    addresses = {("ingestion", ""): ingestion, ("oms", ""): oms, ("console", ""): console}
    addresses |= {("runner", name): runners + i for i, name in enumerate(FUNCTIONS)}
    return prometheus.group(1), {k: f"127.0.0.1:{port}" for k, port in addresses.items()}


def prometheus_api(url: str, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{url}/api/v1/{path}{query}", timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def scraped(url: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(job, function) -> (instance, health) of Prometheus's active targets."""
    return {
        (t["labels"]["job"], t["labels"].get("function", "")): (t["labels"]["instance"], t["health"])
        for t in prometheus_api(url, "targets", state="active")["activeTargets"]
    }


def up_series(url: str) -> dict[tuple[str, str], str]:
    """(job, function) -> the value of `up` ("1" when its last scrape succeeded)."""
    return {
        (r["metric"]["job"], r["metric"].get("function", "")): r["value"][1]
        for r in prometheus_api(url, "query", query="up")["result"]
    }


def check_prometheus_scrapes_every_process(summary: str, details: Callable[[], str]) -> None:
    """Every platform process that serves /metrics is a target of the platform's Prometheus, at the port the
    platform gave it, and up; an OMS metric is queryable through Prometheus."""
    url, expected = printed_ports(summary)
    assert set(expected) == {("ingestion", ""), ("oms", ""), ("console", "")} | {
        ("runner", f) for f in FUNCTIONS
    }
    healthy = {key: (address, "up") for key, address in expected.items()}
    wait_until(
        lambda: scraped(url) == healthy,
        90,
        f"Prometheus to scrape {sorted(healthy)}",
        lambda: f"targets: {scraped(url)}\n{details()}",
    )
    wait_until(lambda: up_series(url) == dict.fromkeys(expected, "1"), 60, "up == 1 for every target")
    result = prometheus_api(url, "query", query="aipx_oms_outbox_lag_events")["result"]
    assert [(r["metric"]["job"], r["metric"]["instance"]) for r in result] == [("oms", expected["oms", ""])]
    assert float(result[0]["value"][1]) >= 0


@pytest.mark.timeout(900)
def test_a_killed_supervisor_takes_its_children_with_it(stack_endpoints: Endpoints, tmp_path: Path) -> None:
    """Run with --prometheus: before the kill, Prometheus must scrape every process; after it, Prometheus
    dies with the others."""
    require_prometheus()  # installed (apt) before the start-up clock runs
    log_dir = tmp_path / "platform"
    out_path = tmp_path / "supervisor.out"
    output = out_path.open("wb")  # a file, not an unread pipe that could fill up
    supervisor = subprocess.Popen(
        platform_cmd(log_dir, "--prometheus"), cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
    )

    def summary() -> str:
        return out_path.read_text(errors="replace")

    def details() -> str:
        return summary()[-3000:] + logs(log_dir)

    try:
        wait_until(lambda: all_started(log_dir, CHILDREN + 1), START_TIMEOUT_S, "every child", details)
        wait_until(lambda: "scraping every /metrics" in summary(), 60, "Prometheus's URL printed", details)
        check_prometheus_scrapes_every_process(summary(), details)
        children = running_children(log_dir)
        assert "prometheus" in {c.name for c in children}
        supervisor.kill()  # SIGKILL: no handler runs, nothing is cleaned up by the supervisor
        supervisor.wait(30)
        wait_until(
            lambda: not any(c.alive() for c in children),
            STOP_TIMEOUT_S,
            "every child to die with the supervisor (parent-death signal)",
            details,
        )
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
        output.close()


def leftover(tmp_path: Path) -> tuple[subprocess.Popen[bytes], PidFile]:
    """A child a dead supervisor left running (its own session, as the platform starts them), and a pid
    file naming it, plus an entry whose pid was recycled (this test process: another start time)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    pid_file = PidFile(tmp_path / "platform" / "platform.pid.json")
    gone = Proc("supervisor", 2**22 - 1, 1)  # no such process
    recycled = Proc("oms", os.getpid(), (start_time(os.getpid()) or 0) + 1)
    pid_file.write(gone, [Proc.of("ingestion", child.pid), recycled])
    return child, pid_file


def test_aipx_down_stops_the_leftovers_of_the_pid_file_and_nothing_else(tmp_path: Path) -> None:
    child, pid_file = leftover(tmp_path)
    try:
        result = subprocess.run(
            [*platform_cmd(pid_file.path.parent)[:3], "--down", "--log-dir", str(pid_file.path.parent)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "stopped ingestion" in result.stdout
        assert child.wait(30) == -signal.SIGTERM
        assert not pid_file.path.exists()
        again = subprocess.run(
            [*platform_cmd(pid_file.path.parent)[:3], "--down", "--log-dir", str(pid_file.path.parent)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert "no platform process was running" in again.stdout
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "./aipx run` may have left" in (ROOT / "aipx").read_text()  # `./aipx down` runs --down first


async def test_the_next_run_stops_what_the_previous_one_left(
    stack_endpoints: Endpoints, tmp_path: Path
) -> None:
    child, pid_file = leftover(tmp_path)
    sleeper = ProcessSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"])
    platform = Platform(stack_endpoints, log_dir=pid_file.path.parent, processes=[sleeper])
    try:
        await platform.start()
        assert await asyncio.to_thread(child.wait, 30) == -signal.SIGTERM
        supervisor, children = pid_file.read()
        assert supervisor is not None and supervisor.pid == os.getpid()
        assert [(c.name, c.pid) for c in children] == [("sleeper", platform.procs["sleeper"].pid)]
        data = json.loads(pid_file.path.read_text())
        assert data["children"][0]["start"] == start_time(platform.procs["sleeper"].pid)
    finally:
        await platform.stop()
        if child.poll() is None:
            child.kill()
    assert not pid_file.path.exists()
