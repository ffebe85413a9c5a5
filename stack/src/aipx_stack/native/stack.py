"""NativeStack: the four components as local processes sharing one state dir (.aipx/stack)."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from aipx.settings import S3Settings

from aipx_stack.base import ComponentStatus, Mode
from aipx_stack.config import (
    COMPONENTS,
    POSTGRES_DB,
    POSTGRES_PASSWORD,
    POSTGRES_USER,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    StackConfig,
    check_component,
)
from aipx_stack.endpoints import Endpoints
from aipx_stack.errors import StackError
from aipx_stack.native.base import NativeComponent
from aipx_stack.native.kafka import KafkaComponent
from aipx_stack.native.postgres import PostgresComponent
from aipx_stack.native.redis import RedisComponent
from aipx_stack.native.s3 import S3Component
from aipx_stack.procs import file_lock

log = logging.getLogger(__name__)


def s3_settings() -> S3Settings:
    """The AIPX_S3_* settings; a StackError when they are invalid (e.g. a misspelt variable)."""
    try:
        return S3Settings()
    except ValueError as exc:
        raise StackError(f"invalid AIPX_S3_* settings: {exc}") from exc


def native_endpoints(config: StackConfig) -> Endpoints:
    """The endpoints a stack with this configuration serves (bucket and region: aipx.settings)."""
    s3 = s3_settings()
    h = config.host
    return Endpoints(
        kafka_bootstrap=f"{h}:{config.kafka_port}",
        postgres_dsn=f"postgresql://{POSTGRES_USER}:{POSTGRES_PASSWORD}@{h}:{config.postgres_port}/{POSTGRES_DB}",
        redis_url=f"redis://{h}:{config.redis_port}/0",
        s3_endpoint_url=f"http://{h}:{config.s3_port}",
        s3_bucket=s3.bucket,
        s3_region=s3.region,
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
    )


class NativeStack:
    """Kafka, PostgreSQL, Redis and a moto S3 server run as local processes (no Docker)."""

    mode: Mode = "native"

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig.from_env()
        self._endpoints = native_endpoints(self.config)
        self.components: dict[str, NativeComponent] = {
            cls.name: cls(self.config, self._endpoints)
            for cls in (KafkaComponent, PostgresComponent, RedisComponent, S3Component)
        }

    @property
    def endpoints(self) -> Endpoints:
        return self._endpoints

    def up(self) -> Endpoints:
        started = time.monotonic()
        with file_lock(self.config.state_dir / "stack.lock", what="aipx-stack up"):
            # Start the components side by side: the JVM warms up while PostgreSQL initialises.
            with ThreadPoolExecutor(max_workers=len(COMPONENTS), thread_name_prefix="aipx-stack-up") as pool:
                futures = {name: pool.submit(self.components[name].start) for name in COMPONENTS}
            errors = []
            for name, future in futures.items():
                exc = future.exception()
                if exc is not None:
                    errors.append(f"[{name}] {exc}")
            if errors:
                raise StackError(
                    f"the native stack (state dir {self.config.state_dir}) could not start:\n"
                    + "\n\n".join(errors)
                )
        log.info("stack up in %.1fs (state dir %s)", time.monotonic() - started, self.config.state_dir)
        return self._endpoints

    def down(self) -> None:
        with file_lock(self.config.state_dir / "stack.lock", what="aipx-stack down"):
            with ThreadPoolExecutor(
                max_workers=len(COMPONENTS), thread_name_prefix="aipx-stack-down"
            ) as pool:
                futures = {name: pool.submit(self.components[name].stop) for name in COMPONENTS}
            errors = [f"[{name}] {f.exception()}" for name, f in futures.items() if f.exception() is not None]
            if errors:
                raise StackError("some components did not stop:\n" + "\n".join(errors))

    def is_up(self) -> bool:
        return all(s.state == "running" for s in self.status())

    def status(self) -> list[ComponentStatus]:
        return [self.components[name].status() for name in COMPONENTS]

    def start(self, name: str) -> None:
        with file_lock(self.config.state_dir / "stack.lock", what=f"aipx-stack start {name}"):
            self.components[check_component(name)].start()

    def stop(self, name: str) -> None:
        with file_lock(self.config.state_dir / "stack.lock", what=f"aipx-stack stop {name}"):
            self.components[check_component(name)].stop()

    def restart(self, name: str) -> None:
        with file_lock(self.config.state_dir / "stack.lock", what=f"aipx-stack restart {name}"):
            component = self.components[check_component(name)]
            component.stop()
            component.start()
