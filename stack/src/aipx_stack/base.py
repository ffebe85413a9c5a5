"""The Stack protocol every provider (native, containers, external) implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from aipx_stack.endpoints import Endpoints

Mode = Literal["native", "containers", "external"]
State = Literal["running", "unhealthy", "stopped", "foreign"]


@dataclass(frozen=True)
class ComponentStatus:
    """What `status` reports for one component."""

    name: str
    state: State
    endpoint: str
    pid: int | None = None
    detail: str = ""


@runtime_checkable
class Stack(Protocol):
    """A local Kafka + PostgreSQL + Redis + S3 stack and control over its components."""

    mode: Mode

    @property
    def endpoints(self) -> Endpoints:
        """Where the components answer (valid whether or not they are running)."""
        ...

    def up(self) -> Endpoints:
        """Start every component (reusing healthy running ones), create topics/database/bucket; idempotent."""
        ...

    def down(self) -> None:
        """Stop every component this stack runs."""
        ...

    def is_up(self) -> bool:
        """True when every component is running and healthy."""
        ...

    def status(self) -> list[ComponentStatus]:
        """One entry per component."""
        ...

    def start(self, name: str) -> None:
        """Start one component (kafka, postgres, redis, s3) and wait until it is healthy."""
        ...

    def stop(self, name: str) -> None:
        """Stop one component."""
        ...

    def restart(self, name: str) -> None:
        """Stop then start one component."""
        ...
