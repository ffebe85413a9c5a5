"""A port held by something that is not the stack gives a clear error naming the holder and the fix."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aipx_stack import NativeStack, PortConflictError, StackConfig, check_port_free


@pytest.fixture
def occupied_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_check_port_free_names_the_holder_and_the_variable(occupied_port: int) -> None:
    with pytest.raises(PortConflictError) as caught:
        check_port_free("kafka", occupied_port)
    message = str(caught.value)
    assert f"127.0.0.1:{occupied_port}" in message
    assert f"pid {os.getpid()}" in message  # the holder is this test process
    assert "AIPX_STACK_KAFKA_PORT=<free port>" in message


def test_check_port_free_accepts_a_free_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    check_port_free("redis", port)  # closed again: must not raise


def test_starting_a_component_on_a_taken_port_fails_before_launching(
    occupied_port: int, tmp_path: Path
) -> None:
    config = StackConfig.from_env(
        {"AIPX_STACK_DIR": str(tmp_path), "AIPX_STACK_REDIS_PORT": str(occupied_port)}
    )
    stack = NativeStack(config)
    with pytest.raises(PortConflictError, match=re.escape(f"port 127.0.0.1:{occupied_port}")):
        stack.start("redis")
    assert not (tmp_path / "redis" / "redis.pid").exists()  # nothing was launched
    assert {s.name: s.state for s in stack.status()}["redis"] == "foreign"
