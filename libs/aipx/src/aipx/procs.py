"""Child processes that die with their parent (Linux's parent-death signal), for the platform supervisor's
children (aipx_stack.lifeline) and the local runner's function instances (aipx_runner.instance)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> bool:
    """Set the parent-death signal; False when the parent (`parent_pid`) is already gone (it died before the
    signal was set, so the kernel will not send it: the caller should exit)."""
    set_parent_death_signal(sig)
    return os.getppid() == parent_pid
