"""Platform processes that cannot outlive their supervisor (`./aipx run`), whatever ends it.

Three mechanisms, each covering what the others cannot:

- a parent-death signal: every child is started through `python -m aipx_stack.lifeline PARENT_PID -- ARGV`,
  which asks the kernel (prctl PR_SET_PDEATHSIG) to send it SIGKILL when the supervisor dies, then execs the
  real program (the setting survives exec). A supervisor killed with SIGKILL still takes its children down.
  SIGKILL, not SIGTERM: a supervisor that dies this way cannot escalate, and a child's graceful stop can take
  minutes (a runner finishes its in-flight batch, e.g. retrying deliveries to a webhook that died with the
  supervisor); what a killed child had not committed is delivered again (at-least-once, as after a crash).
  Every ordinary stop (Ctrl-C, SIGTERM, SIGHUP to the supervisor) is graceful: SIGTERM, then SIGKILL after a
  timeout. (Set in a launcher rather than a Popen preexec_fn, which is unsafe in a process with threads.)
- its own process group per child (start_new_session): Ctrl-C in the terminal reaches the supervisor only,
  which stops the children in order (gracefully) instead of all of them at once;
- a pid file (`PidFile`) naming the supervisor and each child with its kernel start time (so a recycled pid is
  never mistaken for ours): `./aipx down` and the next `./aipx run` stop whatever a previous run left behind
  (`stop_leftovers`), e.g. after the supervisor's host process was frozen and killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aipx.procs import die_with_parent

log = logging.getLogger("aipx.platform")


def launcher(parent: int, argv: list[str]) -> list[str]:
    """The argv that runs `argv` as a child that is killed when process `parent` dies."""
    return [sys.executable, "-m", "aipx_stack.lifeline", str(parent), "--", *argv]


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    return int(fields[19])


@dataclass(frozen=True)
class Proc:
    """A process as the pid file names it."""

    name: str
    pid: int
    start: int | None

    def alive(self) -> bool:
        """Still running, and still the same process (a recycled pid has another start time)."""
        return self.start is not None and start_time(self.pid) == self.start

    @classmethod
    def of(cls, name: str, pid: int) -> Proc:
        return cls(name, pid, start_time(pid))


class PidFile:
    """`<dir>/platform.pid.json`: the supervisor and its children, rewritten as they start."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, supervisor: Proc, children: list[Proc]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "supervisor": {"pid": supervisor.pid, "start": supervisor.start},
            "children": [{"name": c.name, "pid": c.pid, "start": c.start} for c in children],
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.path)

    def read(self) -> tuple[Proc | None, list[Proc]]:
        """(supervisor, children); (None, []) without a (readable) pid file."""
        try:
            data = json.loads(self.path.read_text())
            sup = data["supervisor"]
            supervisor = Proc("supervisor", int(sup["pid"]), sup.get("start"))
            children = [Proc(str(c["name"]), int(c["pid"]), c.get("start")) for c in data["children"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None, []
        return supervisor, children

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _signal_group(proc: Proc, sig: int) -> None:
    """`sig` to the child's process group (it leads one: start_new_session), else to the process."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def stop_leftovers(pid_file: PidFile, *, timeout_s: float = 30.0) -> list[str]:
    """Stop what a previous run left: its supervisor (SIGTERM: it stops its children itself), then any child
    still alive (SIGTERM to its group, SIGKILL after `timeout_s`). Returns the names stopped; removes the
    file."""
    supervisor, children = pid_file.read()
    stopped: list[str] = []
    if supervisor is not None and supervisor.pid != os.getpid() and supervisor.alive():
        log.warning("stopping the platform supervisor left running (pid %d)", supervisor.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor.pid, signal.SIGTERM)
        _wait_gone([supervisor], timeout_s)
        stopped.append("supervisor")
    alive = [c for c in children if c.alive()]
    for child in alive:
        log.warning("stopping %s left running (pid %d)", child.name, child.pid)
        _signal_group(child, signal.SIGTERM)
    for child in _wait_gone(alive, timeout_s):
        log.warning("%s (pid %d) ignored SIGTERM: killing it", child.name, child.pid)
        _signal_group(child, signal.SIGKILL)
    _wait_gone(alive, 10.0)
    stopped += [c.name for c in alive]
    pid_file.remove()
    return stopped


def _wait_gone(procs: list[Proc], timeout_s: float) -> list[Proc]:
    """Wait until every process is gone; the ones still alive after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [p for p in procs if p.alive()]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def main(argv: list[str]) -> None:
    """`python -m aipx_stack.lifeline PARENT_PID -- PROGRAM ARGS...`: exec PROGRAM, dying with PARENT_PID."""
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        sys.exit("usage: python -m aipx_stack.lifeline PARENT_PID -- PROGRAM [ARGS...]")
    if not die_with_parent(int(argv[0]), signal.SIGKILL):
        sys.exit(f"lifeline: the supervisor (pid {argv[0]}) is already gone; not starting {argv[2]}")
    os.execv(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
