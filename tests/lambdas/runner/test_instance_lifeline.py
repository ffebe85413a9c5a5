"""A function instance process dies with its runner: the runner is SIGKILLed while the instance's handler
hangs (the case a closed stdin cannot end), and the kernel's parent-death signal takes the instance down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

RUNNER = """
import asyncio, os, sys
from aipx_runner.instance import ProcessInstance

async def main() -> None:
    instance = ProcessInstance("probe", "tests.lambdas.runner.hang_probe.handler", env=dict(os.environ))
    proc = await instance._start()
    print(proc.pid, flush=True)
    proc.stdin.write(b'{"function": "probe", "timeout_s": 60, "event": {}}\\n')
    await proc.stdin.drain()
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_an_instance_dies_with_its_runner_even_while_its_handler_hangs() -> None:
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER], stdout=subprocess.PIPE, cwd=ROOT, env=dict(os.environ), text=True
    )
    try:
        assert runner.stdout is not None
        instance_pid = int(runner.stdout.readline())
        assert _alive(instance_pid)
        time.sleep(1.0)  # the invocation is in the handler now, which never returns
        assert _alive(instance_pid), "the instance hangs in its handler"
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
        deadline = time.monotonic() + 15
        while _alive(instance_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(instance_pid), "the instance outlived its killed runner"
    finally:
        if runner.poll() is None:
            runner.kill()
