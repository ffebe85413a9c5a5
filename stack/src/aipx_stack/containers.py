"""ContainersStack: the same four components as Docker containers through testcontainers.

Only used where a Docker engine answers (never on the AIPX dev machines or CI, which have none). Containers
are named `aipx-stack-<component>`, published on the same host ports as the native stack and kept after the
process exits (the Ryuk reaper is disabled), so several test sessions share them exactly like the native
stack; `aipx-stack down` removes them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aipx_stack.base import ComponentStatus, Mode, State
from aipx_stack.config import (
    COMPONENTS,
    POSTGRES_DB,
    POSTGRES_PASSWORD,
    POSTGRES_USER,
    StackConfig,
    check_component,
)
from aipx_stack.endpoints import Endpoints
from aipx_stack.errors import ComponentStartError, StackError
from aipx_stack.native.stack import native_endpoints
from aipx_stack.ports import check_port_free
from aipx_stack.procs import file_lock
from aipx_stack.provision import probe_component, provision

log = logging.getLogger(__name__)

LABEL = "io.aipx.stack"


def docker_available(timeout_s: float = 2.0) -> bool:
    """True when a Docker engine answers a ping within `timeout_s`."""
    if not os.environ.get("DOCKER_HOST") and not os.path.exists("/var/run/docker.sock"):
        return False
    try:
        docker: Any = importlib.import_module("docker")
        client = docker.from_env(timeout=timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@dataclass(frozen=True)
class ContainerSpec:
    """How one component runs as a container."""

    image: str
    ports: dict[int, int]  # container port -> host port
    env: dict[str, str] = field(default_factory=dict)
    command: str | None = None


def _image(component: str, default: str) -> str:
    return os.environ.get(f"AIPX_STACK_{component.upper()}_IMAGE") or default


def container_specs(config: StackConfig) -> dict[str, ContainerSpec]:
    """The container of each component, configured like its native counterpart."""
    moto_version = importlib.metadata.version("moto")
    return {
        "kafka": ContainerSpec(
            image=_image("kafka", f"apache/kafka:{config.kafka_version}"),
            ports={9092: config.kafka_port},
            env={
                "KAFKA_NODE_ID": "1",
                "KAFKA_PROCESS_ROLES": "broker,controller",
                "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:9092,CONTROLLER://localhost:9093",
                # Clients outside the container reach the broker on the published host port.
                "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{config.host}:{config.kafka_port}",
                "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
                "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
                "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
                "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "10",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
                "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
                "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
                "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
                "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
                "KAFKA_HEAP_OPTS": f"-Xmx{config.kafka_heap} -Xms256m",
            },
        ),
        "postgres": ContainerSpec(
            image=_image("postgres", "postgres:15"),
            ports={5432: config.postgres_port},
            env={
                "POSTGRES_USER": POSTGRES_USER,
                "POSTGRES_PASSWORD": POSTGRES_PASSWORD,
                "POSTGRES_DB": POSTGRES_DB,
            },
            command="postgres -c max_connections=200 -c fsync=on -c synchronous_commit=on",
        ),
        "redis": ContainerSpec(
            image=_image("redis", "redis:7"),
            ports={6379: config.redis_port},
            command="redis-server --save '' --appendonly no",
        ),
        "s3": ContainerSpec(
            image=_image("s3", f"motoserver/moto:{moto_version}"),
            ports={5000: config.s3_port},
        ),
    }


class ContainersStack:
    """Kafka (apache/kafka, KRaft), PostgreSQL, Redis and moto as long-lived named containers."""

    mode: Mode = "containers"

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig.from_env()
        self._endpoints = native_endpoints(self.config)
        self.specs = container_specs(self.config)
        self._docker: Any = None

    @property
    def endpoints(self) -> Endpoints:
        return self._endpoints

    def _client(self) -> Any:
        if self._docker is None:
            try:
                docker: Any = importlib.import_module("docker")
                self._docker = docker.from_env(timeout=30)
            except Exception as exc:
                raise StackError(f"AIPX_STACK_MODE=containers but no Docker engine answers: {exc}") from exc
        return self._docker

    def _name(self, component: str) -> str:
        return f"aipx-stack-{component}"

    def _container(self, component: str) -> Any | None:
        docker_errors: Any = importlib.import_module("docker.errors")
        try:
            return self._client().containers.get(self._name(component))
        except docker_errors.NotFound:
            return None

    def _lock(self, what: str) -> Any:
        return file_lock(self.config.state_dir / "containers.lock", what=what)

    def _create(self, component: str) -> None:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer

        # Keep the containers after this process exits: they are shared like the native stack.
        testcontainers_config.ryuk_disabled = True
        spec = self.specs[component]
        container = DockerContainer(spec.image).with_name(self._name(component))
        for container_port, host_port in spec.ports.items():
            container = container.with_bind_ports(container_port, host_port)
        for key, value in spec.env.items():
            container = container.with_env(key, value)
        if spec.command:
            container = container.with_command(spec.command)
        container = container.with_kwargs(labels={LABEL: component})
        log.info("creating container %s from %s", self._name(component), spec.image)
        container.start()

    def _wait_ready(self, component: str) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        problem = probe_component(component, self._endpoints)
        while problem is not None and time.monotonic() < deadline:
            time.sleep(0.5)
            problem = probe_component(component, self._endpoints)
        if problem is not None:
            found = self._container(component)
            logs = found.logs(tail=30).decode(errors="replace") if found is not None else "(no container)"
            raise ComponentStartError(
                f"container {self._name(component)} did not become healthy within "
                f"{self.config.start_timeout_s:.0f}s: {problem}\n"
                f"--- container logs (last 30 lines) ---\n{logs}"
            )

    def _start(self, component: str) -> None:
        found = self._container(component)
        if found is None:
            for port in self.specs[component].ports.values():
                check_port_free(component, port, host=self.config.host)
            self._create(component)
        elif found.status != "running":
            found.start()
        self._wait_ready(component)
        provision(component, self._endpoints)

    def _each(self, action: Callable[[str], None]) -> None:
        errors = []
        for name in COMPONENTS:
            try:
                action(name)
            except Exception as exc:
                errors.append(f"[{name}] {exc}")
        if errors:
            raise StackError("the containers stack failed:\n" + "\n\n".join(errors))

    def up(self) -> Endpoints:
        with self._lock("aipx-stack up (containers)"):
            self._each(self._start)
        return self._endpoints

    def down(self) -> None:
        def remove(name: str) -> None:
            found = self._container(name)
            if found is not None:
                found.remove(force=True, v=True)

        with self._lock("aipx-stack down (containers)"):
            self._each(remove)

    def is_up(self) -> bool:
        return all(s.state == "running" for s in self.status())

    def status(self) -> list[ComponentStatus]:
        result = []
        for name in COMPONENTS:
            endpoint = ", ".join(f"{self.config.host}:{p}" for p in self.specs[name].ports.values())
            found = self._container(name)
            if found is None or found.status != "running":
                result.append(ComponentStatus(name, "stopped", endpoint))
                continue
            problem = probe_component(name, self._endpoints)
            state: State = "running" if problem is None else "unhealthy"
            result.append(
                ComponentStatus(name, state, endpoint, None, problem or f"container {found.short_id}")
            )
        return result

    def start(self, name: str) -> None:
        with self._lock(f"aipx-stack start {name}"):
            self._start(check_component(name))

    def stop(self, name: str) -> None:
        with self._lock(f"aipx-stack stop {name}"):
            found = self._container(check_component(name))
            if found is not None:
                found.stop(timeout=int(self.config.stop_timeout_s))

    def restart(self, name: str) -> None:
        with self._lock(f"aipx-stack restart {name}"):
            self.stop(name)
            self._start(name)
