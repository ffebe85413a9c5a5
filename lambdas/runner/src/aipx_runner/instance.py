"""A function's execution environment in its own process, as Lambda runs it (`--isolation process`).

In thread isolation (the default) a handler runs in a worker thread of the runner: fast, but a handler that
kills its process takes the runner with it, and one that overruns its timeout keeps running. In process
isolation each function has one instance process at a time, started on first use (a cold start) and reused
while warm; an instance that dies (crash, `os._exit`, SIGKILL, out of memory) fails its invocation, and one
that overruns the function's timeout is killed, as Lambda does. The next invocation starts a fresh instance.

The instance (`python -m aipx_runner.instance module.handler`) reads one JSON request per line on stdin and
answers one JSON line on the stdout it was started with (a first line once the handler is imported: the init
phase, outside the invocation's timeout); the handler's own stdout goes to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from aipx.lambda_kit import FakeLambdaContext
from aipx.procs import die_with_parent

from aipx_runner.config import Handler, import_handler

log = logging.getLogger(__name__)

# Lambda's invocation payload is at most 6 MB; a request line carries it as JSON.
_LINE_LIMIT = 16 * 1024 * 1024
# Starting an instance (interpreter, imports, module-level clients) is not part of the invocation's timeout,
# as Lambda's init phase is not; this bounds it generously (a loaded 2-core machine).
INIT_TIMEOUT_S = 120.0


class InstanceFailedError(RuntimeError):
    """The invocation got no answer: the instance died, timed out or answered something unreadable."""


def handler_path(handler: str | Handler) -> str:
    """The import path an instance process loads `handler` from (a module-level function for a callable)."""
    if isinstance(handler, str):
        return handler
    path = f"{handler.__module__}.{handler.__qualname__}"
    if "<" in path:
        raise ValueError(f"process isolation needs an importable handler, not {path!r}")
    return path


class ProcessInstance:
    """One warm instance process of a function; restarted (cold) after it dies or times out."""

    def __init__(self, function: str, handler: str, *, env: Mapping[str, str]) -> None:
        self.function = function
        self.handler = handler
        self.env = dict(env)
        self.cold_starts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()  # one invocation at a time per instance, as in Lambda

    async def _start(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "aipx_runner.instance",
                self.handler,
                str(os.getpid()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=self.env,
                limit=_LINE_LIMIT,
            )
            self.cold_starts += 1
            assert self._proc.stdout is not None
            try:
                async with asyncio.timeout(INIT_TIMEOUT_S):
                    ready = await self._proc.stdout.readline()
            except TimeoutError:
                ready = b""
            if not ready:
                await self.kill()
                raise InstanceFailedError(f"{self.function}: the instance failed to start ({self.handler})")
            log.info(
                "%s: instance started (pid %d, cold start %d)",
                self.function,
                self._proc.pid,
                self.cold_starts,
            )
        return self._proc

    async def invoke(self, event: dict[str, Any], *, timeout_s: float) -> Any:
        """The handler's response; InstanceFailedError if the instance died or timed out (it is then
        discarded), or the handler's error (RuntimeError naming it) if it raised."""
        async with self._lock:
            return await self._invoke(event, timeout_s)

    async def _invoke(self, event: dict[str, Any], timeout_s: float) -> Any:
        proc = await self._start()
        assert proc.stdin is not None and proc.stdout is not None
        request = json.dumps({"function": self.function, "timeout_s": timeout_s, "event": event})
        try:
            async with asyncio.timeout(timeout_s):
                proc.stdin.write(request.encode() + b"\n")
                await proc.stdin.drain()
                line = await proc.stdout.readline()
        except TimeoutError:
            await self.kill()
            raise InstanceFailedError(
                f"{self.function}: timed out after {timeout_s}s (instance killed)"
            ) from None
        except (ConnectionError, BrokenPipeError):
            line = b""
        if not line:
            code = await proc.wait()
            self._proc = None
            raise InstanceFailedError(
                f"{self.function}: instance exited with code {code} during the invocation"
            )
        try:
            reply = json.loads(line)
        except ValueError as exc:
            await self.kill()
            raise InstanceFailedError(
                f"{self.function}: unreadable answer from the instance: {exc}"
            ) from None
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply.get("response")

    async def kill(self) -> None:
        """Stop the instance now (SIGKILL, as Lambda ends a timed-out environment)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def close(self) -> None:
        """Let the instance exit (end of its input), killing it if it does not."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


def serve(path: str, parent_pid: int | None = None) -> int:
    """The instance's loop: one invocation per request line until stdin ends. With `parent_pid`, the instance
    dies with the runner (SIGKILL from the kernel), even when its handler hangs as the runner is killed."""
    if parent_pid is not None and not die_with_parent(parent_pid):
        return 1  # the runner is already gone
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the handler's prints and logs must never mix into the answers
    handler = import_handler(path)
    answers.write(json.dumps({"ready": path}) + "\n")
    answers.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        context = FakeLambdaContext(request["function"], timeout_s=float(request["timeout_s"]))
        try:
            reply = json.dumps({"response": handler(request["event"], context)})
        except Exception as exc:  # the invocation's error, as Lambda reports it
            reply = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        answers.write(reply + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None))
