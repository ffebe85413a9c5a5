"""Runner configuration: the function manifest's event sources, with overrides for tests and local runs."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from aipx.functions import FunctionManifest, manifest
from aipx.lambda_kit.mode import AttemptStore, EsmMode, LambdaSettings
from aipx.msk import MAX_EVENT_BYTES
from aipx.settings import KafkaSettings

from aipx_runner.domain import Backoff

Handler = Callable[[dict[str, Any], Any], Any]
# Where handlers run: a worker thread of the runner, or an instance process per function (`instance`).
Isolation = Literal["thread", "process"]


def import_handler(path: str) -> Handler:
    """'package.module.function' -> the function."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {path!r} is not a 'module.function' import path")
    handler: Handler = getattr(importlib.import_module(module_name), attr)
    return handler


@dataclass(frozen=True)
class SourceConfig:
    """One event source mapping as the runner emulates it."""

    function: str
    handler: str | Handler
    topic: str
    group_id: str
    starting_position: Literal["LATEST", "TRIM_HORIZON"]
    batch_size: int
    batching_window_s: float
    max_retries: int
    bisect_on_error: bool
    on_failure_topic: str
    timeout_s: float

    @property
    def auto_offset_reset(self) -> str:
        """Where a group without committed offsets starts: LATEST -> latest, TRIM_HORIZON -> earliest."""
        return "latest" if self.starting_position == "LATEST" else "earliest"

    def resolve_handler(self) -> Handler:
        return import_handler(self.handler) if isinstance(self.handler, str) else self.handler


@dataclass(frozen=True)
class RunnerConfig:
    """Everything the runner runs: event sources plus Kafka connection and retry tuning."""

    sources: tuple[SourceConfig, ...]
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    backoff: Backoff = field(default_factory=Backoff)
    # Lambda's invocation payload limit; a batch stops growing before its event would exceed it.
    max_payload_bytes: int = MAX_EVENT_BYTES
    # The mapping mode emulated (AIPX_LAMBDA_ESM_MODE, the setting the handlers read too).
    mode: EsmMode = field(default_factory=lambda: LambdaSettings().esm_mode)
    # Where on-demand handlers count attempts (AIPX_LAMBDA_ATTEMPT_STORE), passed on to instance processes.
    attempt_store: AttemptStore = field(default_factory=lambda: LambdaSettings().attempt_store)
    isolation: Isolation = "thread"

    @classmethod
    def from_manifest(
        cls,
        functions: Iterable[str] | None = None,
        *,
        functions_manifest: FunctionManifest | None = None,
        kafka: KafkaSettings | None = None,
        bootstrap_servers: str | None = None,
        topics: Mapping[str, str] | None = None,
        group_ids: Mapping[str, str] | None = None,
        handlers: Mapping[str, Handler] | None = None,
        backoff: Backoff | None = None,
        mode: EsmMode | None = None,
        isolation: Isolation = "thread",
        **source_overrides: Any,
    ) -> RunnerConfig:
        """The manifest's event sources of `functions` (all when None).

        Overrides: `topics` renames topics (source and on-failure topics, catalogue name -> actual name),
        `group_ids` maps 'function:topic' (catalogue topic name) or a manifest group id to another group id,
        `handlers` replaces a function's handler, `mode` the mapping mode (default: AIPX_LAMBDA_ESM_MODE),
        `isolation` where handlers run (thread, or an instance process per function), and keyword
        overrides (batch_size=..., batching_window_s=..., max_retries=..., starting_position=...) apply to
        every source.
        """
        spec = functions_manifest or manifest()
        names = list(functions) if functions is not None else [f.name for f in spec.functions]
        topics, group_ids, handlers = topics or {}, group_ids or {}, handlers or {}
        sources: list[SourceConfig] = []
        for name in names:
            fn = spec.get(name)
            for src in fn.event_sources:
                source = SourceConfig(
                    function=fn.name,
                    handler=handlers.get(fn.name, fn.handler),
                    topic=topics.get(src.topic, src.topic),
                    group_id=group_ids.get(
                        f"{fn.name}:{src.topic}", group_ids.get(src.consumer_group, src.consumer_group)
                    ),
                    starting_position=src.starting_position,
                    batch_size=src.batch_size,
                    batching_window_s=src.batching_window_s,
                    max_retries=src.max_retries,
                    bisect_on_error=src.bisect_on_error,
                    on_failure_topic=topics.get(src.on_failure_topic, src.on_failure_topic),
                    timeout_s=float(fn.timeout_s),
                )
                sources.append(replace(source, **source_overrides))
        settings = kafka or KafkaSettings()
        if bootstrap_servers:
            settings = settings.model_copy(update={"bootstrap_servers": bootstrap_servers})
        lambda_settings = LambdaSettings()
        return cls(
            tuple(sources),
            settings,
            backoff or Backoff(),
            mode=mode or lambda_settings.esm_mode,
            attempt_store=lambda_settings.attempt_store,
            isolation=isolation,
        )

    def instance_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """The environment of an instance process: `base` plus the mapping contract and the broker this
        runner emulates, as Terraform writes them into a function's environment."""
        return {
            **base,
            "AIPX_LAMBDA_ESM_MODE": self.mode,
            "AIPX_LAMBDA_ATTEMPT_STORE": self.attempt_store,
            "AIPX_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
        }

    def functions(self) -> list[str]:
        """Function names, in source order, without repeats."""
        return list(dict.fromkeys(s.function for s in self.sources))
