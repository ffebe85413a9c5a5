"""AIPX local stack: Kafka (KRaft), PostgreSQL, Redis and an S3 server, natively or in containers.

`open_stack()` picks the provider (AIPX_STACK_MODE=native|containers|external forces one);
`stack.up()` returns the `Endpoints`. The pytest fixtures live in `aipx_stack.pytest_plugin`.
"""

from aipx_stack.base import ComponentStatus, Mode, Stack
from aipx_stack.config import COMPONENTS, StackConfig
from aipx_stack.containers import ContainersStack
from aipx_stack.endpoints import Endpoints, S3Endpoint
from aipx_stack.errors import (
    ComponentStartError,
    MissingDependencyError,
    PortConflictError,
    StackError,
    UnsupportedOperationError,
)
from aipx_stack.external import ExternalStack
from aipx_stack.native import NativeStack
from aipx_stack.ports import check_port_free
from aipx_stack.select import open_stack

__all__ = [
    "COMPONENTS",
    "ComponentStartError",
    "ComponentStatus",
    "ContainersStack",
    "Endpoints",
    "ExternalStack",
    "MissingDependencyError",
    "Mode",
    "NativeStack",
    "PortConflictError",
    "S3Endpoint",
    "Stack",
    "StackConfig",
    "StackError",
    "UnsupportedOperationError",
    "check_port_free",
    "open_stack",
]
