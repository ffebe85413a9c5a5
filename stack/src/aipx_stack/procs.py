"""Launching, finding and stopping the stack's own processes (pid files, SIGTERM then SIGKILL)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from aipx_stack.errors import StackError

log = logging.getLogger(__name__)

# Children launched by this process: kept so they can be reaped (no zombies, no ResourceWarning).
_children: dict[int, subprocess.Popen[bytes]] = {}
_children_lock = threading.Lock()


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    with _children_lock:
        child = _children.get(pid)
    if child is not None and child.poll() is not None:
        with _children_lock:
            _children.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def read_pid(path: Path) -> int | None:
    """The pid in the first line of `path`, when the file exists and that process is alive."""
    try:
        first = path.read_text().splitlines()[0].strip()
        pid = int(first)
    except (OSError, IndexError, ValueError):
        return None
    return pid if pid > 0 and pid_alive(pid) else None


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running process in its own session (Ctrl-C in the terminal does not reach it)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    with _children_lock:
        _children[proc.pid] = proc
    return proc


def terminate(pid: int, *, timeout_s: float, name: str) -> None:
    """SIGTERM `pid`, wait up to `timeout_s`, then SIGKILL it."""
    if not pid_alive(pid):
        return
    log.info("stopping %s (pid %d)", name, pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_for_exit(pid, timeout_s):
        return
    log.warning("%s (pid %d) did not stop within %.0fs; sending SIGKILL", name, pid, timeout_s)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_for_exit(pid, 10.0):
        raise StackError(f"{name} (pid {pid}) survived SIGKILL")


def wait_for_exit(pid: int, timeout_s: float) -> bool:
    """Wait until `pid` is gone; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file (or a note that it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def run(
    argv: Sequence[str],
    *,
    what: str,
    timeout_s: float = 600.0,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run a command to completion; StackError with its output when it fails."""
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what}: `{' '.join(argv)}` did not finish within {timeout_s:.0f}s") from exc
    except OSError as exc:
        raise StackError(f"{what}: cannot run `{argv[0]}`: {exc}") from exc
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        last = "\n".join(output.splitlines()[-30:])
        raise StackError(f"{what} failed (exit {done.returncode}): `{' '.join(argv)}`\n{last}")
    return output


_registry_lock = threading.Lock()
_thread_locks: dict[Path, threading.RLock] = {}
_local = threading.local()


@contextlib.contextmanager
def file_lock(path: Path, *, what: str, timeout_s: float = 900.0) -> Iterator[None]:
    """An exclusive lock shared by every process using the same state dir (flock); re-entrant per thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _registry_lock:
        in_process = _thread_locks.setdefault(path, threading.RLock())
    if not in_process.acquire(timeout=timeout_s):
        raise StackError(f"{what}: another thread held {path} for more than {timeout_s:.0f}s")
    try:
        held: set[Path] = getattr(_local, "held", set())
        _local.held = held
        if path in held:
            yield
            return
        with path.open("a+") as handle:
            deadline = time.monotonic() + timeout_s
            announced = False
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not announced:
                        log.info("waiting for another process holding %s (%s)", path, what)
                        announced = True
                    if time.monotonic() > deadline:
                        raise StackError(
                            f"{what}: another process held {path} for more than {timeout_s:.0f}s"
                        ) from None
                    time.sleep(0.25)
            held.add(path)
            try:
                yield
            finally:
                held.discard(path)
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        in_process.release()
