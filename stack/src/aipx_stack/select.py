"""Choosing the stack: AIPX_STACK_MODE, else env endpoints, else containers if Docker answers, else native."""

from __future__ import annotations

import logging
import os

from aipx_stack.base import Stack
from aipx_stack.config import StackConfig
from aipx_stack.containers import ContainersStack, docker_available
from aipx_stack.errors import StackError
from aipx_stack.external import ExternalStack, endpoints_from_env
from aipx_stack.native import NativeStack
from aipx_stack.native.stack import native_endpoints
from aipx_stack.procstat import pin

log = logging.getLogger(__name__)

MODES = ("native", "containers", "external")


def open_stack(mode: str | None = None, config: StackConfig | None = None) -> Stack:
    """The stack to use. `mode` (or AIPX_STACK_MODE) forces one of native|containers|external."""
    chosen = (mode or os.environ.get("AIPX_STACK_MODE") or "auto").strip().lower()
    if chosen not in (*MODES, "auto"):
        raise StackError(f"AIPX_STACK_MODE={chosen!r} is not one of {', '.join(MODES)} (or unset for auto)")
    if chosen == "external":
        return ExternalStack()
    cfg = config or StackConfig.from_env()
    if chosen == "native":
        return NativeStack(cfg)
    if chosen == "containers":
        return ContainersStack(cfg)
    from_env = endpoints_from_env()
    # Variables that merely repeat the local stack's endpoints (e.g. exported by `aipx-stack env` or by the
    # pytest session) still mean "the local stack", which can then also be stopped and restarted.
    if from_env is not None and from_env != native_endpoints(cfg):
        log.info("using the external stack given by AIPX_* endpoint variables")
        return ExternalStack(from_env)
    if docker_available():
        log.info("a Docker engine answers: using the containers stack")
        return ContainersStack(cfg)
    return NativeStack(cfg)


def pin_with_stack(cpus: set[int]) -> tuple[list[tuple[int, set[int]]], str]:
    """For a benchmark that gives the component under test CPUs of its own: confine this process (and the
    children it starts later) and the local stack's processes to `cpus`. Returns what to hand to
    `procstat.unpin`, and a phrase naming what moved besides this process."""
    try:
        stack_pids = [c.pid for c in open_stack().status() if c.pid]
    except StackError as exc:  # not a stack this machine runs: only this process moves
        return pin([os.getpid()], cpus), f"(stack processes not pinned: {exc})"
    moved = "the local stack" if stack_pids else "(no local stack processes found to pin)"
    return pin([os.getpid(), *stack_pids], cpus), moved
