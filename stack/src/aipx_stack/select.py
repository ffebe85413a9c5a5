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
