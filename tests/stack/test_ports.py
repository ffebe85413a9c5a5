"""A port held by something that is not the stack gives a clear error naming the holder and the fix."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aipx_stack import NativeStack, PortConflictError, StackConfig, check_port_free
from aipx_stack.platform import FUNCTIONS, Ports
from aipx_stack.ports import free_port_block


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


def test_a_free_port_block_is_free_as_a_whole_and_outside_the_ephemeral_range() -> None:
    """The platform's runners number their metrics ports from one base: every port of the block must be
    bindable, and the block must sit below the range the OS hands out to outgoing connections."""
    base = free_port_block(4)
    assert base >= 30000 and base + 3 < 32768
    held = []
    try:
        for port in range(base, base + 4):
            sock = socket.socket()
            sock.bind(("0.0.0.0", port))  # all four at once: none is taken
            held.append(sock)
    finally:
        for sock in held:
            sock.close()
    ports = Ports.ephemeral()
    block = set(range(ports.runner_metrics, ports.runner_metrics + len(FUNCTIONS)))
    others = {v for k, v in vars(ports).items() if k != "runner_metrics"}
    assert not block & others
