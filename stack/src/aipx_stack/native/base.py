"""What every natively run component provides, and the shared start/stop/status logic."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from aipx_stack.base import ComponentStatus
from aipx_stack.config import StackConfig
from aipx_stack.endpoints import Endpoints
from aipx_stack.errors import ComponentStartError, StackError
from aipx_stack.ports import check_port_free, find_port_holder, port_in_use
from aipx_stack.procs import tail, terminate, wait_for_exit
from aipx_stack.provision import provision

log = logging.getLogger(__name__)


class NativeComponent(ABC):
    """One stack component run as a local process under the stack's state dir."""

    name: ClassVar[str]

    def __init__(self, config: StackConfig, endpoints: Endpoints) -> None:
        self.config = config
        self.endpoints = endpoints

    @property
    def dir(self) -> Path:
        return self.config.state_dir / self.name

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """Where clients connect (for `status`)."""

    @abstractmethod
    def pid(self) -> int | None:
        """Pid of this stack's running process, None when it is not running."""

    @abstractmethod
    def launch(self) -> None:
        """Install what is missing, prepare the data dir and launch the process (returns without waiting)."""

    @abstractmethod
    def probe(self) -> str | None:
        """None when the component answers a real request, else why not."""

    @abstractmethod
    def log_files(self) -> list[Path]:
        """Logs worth showing when the component fails."""

    def after_ready(self) -> None:
        """Idempotent provisioning once healthy (catalogue topics, database, bucket)."""
        provision(self.name, self.endpoints)

    def stop_process(self, pid: int) -> None:
        terminate(pid, timeout_s=self.config.stop_timeout_s, name=self.name)

    def ports(self) -> dict[str, int]:
        return self.config.component_ports(self.name)

    def log_tail(self, lines: int = 30) -> str:
        parts = [f"--- {path} (last {lines} lines) ---\n{tail(path, lines)}" for path in self.log_files()]
        return "\n".join(parts)

    def status(self) -> ComponentStatus:
        pid = self.pid()
        if pid is None:
            busy = [p for p in self.ports().values() if port_in_use(p, self.config.host)]
            if busy:
                holder = find_port_holder(busy[0])
                who = f" by {holder}" if holder else ""
                return ComponentStatus(
                    self.name,
                    "foreign",
                    self.endpoint,
                    None,
                    f"port {busy[0]} is held{who}, not by this stack",
                )
            return ComponentStatus(self.name, "stopped", self.endpoint)
        problem = self.probe()
        if problem:
            return ComponentStatus(self.name, "unhealthy", self.endpoint, pid, problem)
        return ComponentStatus(self.name, "running", self.endpoint, pid)

    def start(self) -> bool:
        """Make the component running and healthy; True if launched now, False if reused."""
        pid = self.pid()
        launched = pid is None
        if launched:
            for port_name, port in self.ports().items():
                check_port_free(self.name, port, host=self.config.host, port_name=port_name)
            started = time.monotonic()
            log.info("starting %s", self.name)
            self.launch()
        else:
            started = time.monotonic()
            log.info("%s already running (pid %s)", self.name, pid)
        self.wait_ready(reused=not launched)
        self.after_ready()
        if launched:
            log.info("%s ready at %s in %.1fs", self.name, self.endpoint, time.monotonic() - started)
        return launched

    def wait_ready(self, *, reused: bool) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        problem: str | None = "not probed"
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid is None:
                raise ComponentStartError(f"{self.name} exited during startup.\n{self.log_tail()}")
            problem = self.probe()
            if problem is None:
                return
            time.sleep(0.3)
        hint = f" It was already running; try `aipx-stack restart {self.name}`." if reused else ""
        raise ComponentStartError(
            f"{self.name} did not become healthy within {self.config.start_timeout_s:.0f}s: {problem}."
            f"{hint}\n"
            f"{self.log_tail()}"
        )

    def stop(self) -> bool:
        """Stop this stack's process; True if one was running."""
        pid = self.pid()
        if pid is None:
            return False
        self.stop_process(pid)
        # Servers drop their pid file a moment before the process is gone (pg_ctl stop returns then).
        if not wait_for_exit(pid, 15.0):
            raise StackError(f"{self.name} (pid {pid}) is still running after stop")
        return True
