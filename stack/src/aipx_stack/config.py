"""Stack configuration: ports, directories and versions, from AIPX_STACK_* environment variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aipx_stack.errors import StackError

COMPONENTS: Final = ("kafka", "postgres", "redis", "s3")
"""Every component of the stack, in start order."""

PACKAGE_DIR: Final = Path(__file__).resolve().parent
# stack/src/aipx_stack -> stack/ (the workspace member holding kafka/pom.xml)
STACK_PROJECT_DIR: Final = PACKAGE_DIR.parents[1]
KAFKA_POM: Final = STACK_PROJECT_DIR / "kafka" / "pom.xml"

DEFAULT_PORTS: Final[Mapping[str, int]] = {
    "kafka": 19092,
    "kafka_controller": 19093,
    "postgres": 15432,
    "redis": 16379,
    "s3": 19000,
}
PORT_ENV: Final[Mapping[str, str]] = {name: f"AIPX_STACK_{name.upper()}_PORT" for name in DEFAULT_PORTS}

POSTGRES_USER: Final = "aipx"
POSTGRES_PASSWORD: Final = "aipx"
POSTGRES_DB: Final = "aipx"
S3_ACCESS_KEY: Final = "aipx-local"
S3_SECRET_KEY: Final = "aipx-local-secret"


def find_workspace_root(start: Path) -> Path | None:
    """The nearest directory at or above `start` whose pyproject.toml declares a uv workspace."""
    for candidate in (start, *start.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text(errors="replace"):
            return candidate
    return None


def pinned_kafka_version(pom: Path = KAFKA_POM) -> str:
    """The Kafka version pinned in stack/kafka/pom.xml (the one place it is written down)."""
    try:
        text = pom.read_text()
    except OSError as exc:
        raise StackError(f"cannot read the Kafka pom {pom}: {exc}") from exc
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", text)
    if match is None:
        raise StackError(f"{pom} has no <kafka.version> property")
    return match.group(1).strip()


def _port(environ: Mapping[str, str], name: str) -> int:
    var = PORT_ENV[name]
    raw = environ.get(var)
    if raw is None or raw == "":
        return DEFAULT_PORTS[name]
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{var}={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise StackError(f"{var}={port} is outside 1..65535")
    return port


@dataclass(frozen=True)
class StackConfig:
    """Where the stack keeps its state and which ports and versions it uses."""

    state_dir: Path
    cache_dir: Path
    host: str = "127.0.0.1"
    kafka_port: int = DEFAULT_PORTS["kafka"]
    kafka_controller_port: int = DEFAULT_PORTS["kafka_controller"]
    postgres_port: int = DEFAULT_PORTS["postgres"]
    redis_port: int = DEFAULT_PORTS["redis"]
    s3_port: int = DEFAULT_PORTS["s3"]
    kafka_version: str = ""
    kafka_heap: str = "512m"
    start_timeout_s: float = 120.0
    stop_timeout_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackConfig:
        """Read AIPX_STACK_* variables (unset ones take the documented defaults)."""
        env = os.environ if environ is None else environ
        state_dir = env.get("AIPX_STACK_DIR")
        if state_dir:
            state = Path(state_dir).expanduser().resolve()
        else:
            root = find_workspace_root(STACK_PROJECT_DIR) or find_workspace_root(Path.cwd())
            if root is None:
                raise StackError(
                    "cannot find the AIPX workspace root (a pyproject.toml with [tool.uv.workspace]) "
                    "above the aipx_stack package or the current directory; set AIPX_STACK_DIR"
                )
            state = root / ".aipx" / "stack"
        cache = Path(env.get("AIPX_STACK_CACHE_DIR") or Path.home() / ".cache" / "aipx").expanduser()
        ports = {name: _port(env, name) for name in DEFAULT_PORTS}
        if len(set(ports.values())) != len(ports):
            raise StackError(
                f"stack ports must be distinct, got {ports} (from {', '.join(PORT_ENV.values())})"
            )
        try:
            timeout = float(env.get("AIPX_STACK_START_TIMEOUT", "120"))
        except ValueError:
            raise StackError("AIPX_STACK_START_TIMEOUT must be a number of seconds") from None
        return cls(
            state_dir=state,
            cache_dir=cache.resolve(),
            kafka_port=ports["kafka"],
            kafka_controller_port=ports["kafka_controller"],
            postgres_port=ports["postgres"],
            redis_port=ports["redis"],
            s3_port=ports["s3"],
            kafka_version=env.get("AIPX_STACK_KAFKA_VERSION") or pinned_kafka_version(),
            kafka_heap=env.get("AIPX_STACK_KAFKA_HEAP") or "512m",
            start_timeout_s=timeout,
        )

    def component_ports(self, component: str) -> dict[str, int]:
        """The ports a component listens on, keyed by the name used in AIPX_STACK_<NAME>_PORT."""
        table = {
            "kafka": {"kafka": self.kafka_port, "kafka_controller": self.kafka_controller_port},
            "postgres": {"postgres": self.postgres_port},
            "redis": {"redis": self.redis_port},
            "s3": {"s3": self.s3_port},
        }
        try:
            return table[component]
        except KeyError:
            raise StackError(f"unknown component {component!r}; known: {', '.join(COMPONENTS)}") from None


def check_component(name: str) -> str:
    """`name` if it is a stack component, else a StackError listing the known ones."""
    if name not in COMPONENTS:
        raise StackError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}")
    return name
