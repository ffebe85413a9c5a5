"""Which stack open_stack() picks, and the clear errors of the stacks that cannot do something."""

from __future__ import annotations

import pytest
from aipx_stack import (
    ContainersStack,
    ExternalStack,
    NativeStack,
    Stack,
    StackError,
    UnsupportedOperationError,
    open_stack,
)


def test_auto_mode_treats_exported_local_endpoints_as_the_native_stack(stack: Stack) -> None:
    # The session exported AIPX_* for the native stack; auto mode must still pick the controllable stack.
    chosen = open_stack()
    assert isinstance(chosen, NativeStack)
    assert chosen.endpoints == stack.endpoints


def test_external_mode_uses_the_env_endpoints_and_refuses_control(stack: Stack) -> None:
    external = open_stack("external")
    assert isinstance(external, ExternalStack)
    assert external.up() == stack.endpoints  # reachable, topics and bucket present
    assert all(s.state == "running" for s in external.status())
    with pytest.raises(UnsupportedOperationError, match="cannot restart kafka: the stack is external"):
        external.restart("kafka")
    with pytest.raises(UnsupportedOperationError, match="not managed by aipx-stack"):
        external.down()


def test_external_mode_names_the_missing_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIPX_REDIS_URL", raising=False)
    monkeypatch.delenv("AIPX_S3_ENDPOINT_URL", raising=False)
    with pytest.raises(StackError, match="missing: AIPX_REDIS_URL, AIPX_S3_ENDPOINT_URL"):
        open_stack("external")


def test_containers_mode_without_a_docker_engine_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    containers = open_stack("containers")
    assert isinstance(containers, ContainersStack)
    with pytest.raises(StackError, match="no Docker engine answers"):
        containers.up()


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(StackError, match="is not one of native, containers, external"):
        open_stack("kubernetes")
