"""The function manifest (catalog/functions.yaml): each cold-path function and its Kafka event sources.

Read by the local event-source runner and by Terraform; one source of truth for consumer groups, batching,
retries and on-failure destinations.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aipx.catalog import FUNCTIONS_FILE
from aipx.topics import catalogue


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventSource(_Frozen):
    """One Kafka event source of a function (an MSK event source mapping in AWS)."""

    topic: str
    consumer_group: str
    starting_position: Literal["LATEST", "TRIM_HORIZON"]
    batch_size: int = Field(ge=1, le=10_000)
    batching_window_s: float = Field(ge=0, le=300)
    max_retries: int = Field(ge=0, le=10_000)
    bisect_on_error: bool = True
    on_failure_topic: str


class FunctionSpec(_Frozen):
    """One Lambda function."""

    name: str
    description: str = ""
    package: str
    handler: str
    memory_mb: int = Field(ge=128, le=10_240)
    timeout_s: int = Field(ge=1, le=900)
    function_url: bool = False
    event_sources: tuple[EventSource, ...]

    @model_validator(mode="after")
    def _topics_exist(self) -> FunctionSpec:
        known = set(catalogue().names())
        for src in self.event_sources:
            for topic in (src.topic, src.on_failure_topic):
                if topic not in known:
                    raise ValueError(f"function {self.name}: topic {topic!r} is not in the topic catalogue")
        return self


class FunctionManifest(_Frozen):
    functions: tuple[FunctionSpec, ...]

    def get(self, name: str) -> FunctionSpec:
        for f in self.functions:
            if f.name == name:
                return f
        raise KeyError(f"unknown function {name!r}; known: {', '.join(f.name for f in self.functions)}")


def load_manifest(path: Path = FUNCTIONS_FILE) -> FunctionManifest:
    """Parse and validate a functions.yaml file."""
    raw: dict[str, Any] = yaml.safe_load(path.read_text())
    return FunctionManifest(functions=tuple(FunctionSpec(**f) for f in raw["functions"]))


@cache
def manifest() -> FunctionManifest:
    """The packaged manifest, parsed once."""
    return load_manifest()
