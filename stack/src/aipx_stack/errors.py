"""Errors raised by the local stack; every message says what is wrong and what to do about it."""

from __future__ import annotations


class StackError(RuntimeError):
    """A stack component could not be provided, stopped or inspected."""


class PortConflictError(StackError):
    """A port the stack needs is held by a process that is not this stack's component."""


class MissingDependencyError(StackError):
    """A program the stack needs (java, mvn, postgres, redis-server, ...) is not installed."""


class ComponentStartError(StackError):
    """A component was launched but did not become healthy in time (the message carries its log tail)."""


class UnsupportedOperationError(StackError):
    """The operation is not possible for this kind of stack (e.g. restarting an external endpoint)."""
