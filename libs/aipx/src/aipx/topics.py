"""The topic catalogue (catalog/topics.yaml) as typed Python: names, keys, payload types, DLQs.

Code names topics through the constants here (`MARKET_DATA_RAW`, ...) or `catalogue().get(name)`; no topic
name is spelled anywhere else.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from aipx.catalog import TOPICS_FILE

MARKET_DATA_RAW = "market-data-raw"
TRADING_SIGNALS = "trading-signals"
TRADING_DECISIONS = "trading-decisions"
ORDER_EVENTS = "order-events"
ADMIN_EVENTS = "admin-events"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicSpec(_Frozen):
    """One topic of the catalogue."""

    name: str
    description: str = ""
    payload: str = Field(description="fully-qualified protobuf message name, or 'raw'")
    key: str = Field("", description="key template, e.g. '{venue}:{symbol}'")
    partitions: int = Field(ge=1)
    replication_factor: int = Field(ge=1)
    retention_ms: int
    config: dict[str, str] = Field(default_factory=dict)
    dlq: str | None = None
    is_dlq: bool = False

    def topic_configs(self) -> dict[str, str]:
        """Broker-side topic configs (retention plus the extra config)."""
        return {"retention.ms": str(self.retention_ms), **{k: str(v) for k, v in self.config.items()}}

    def key_for(self, **fields: object) -> bytes:
        """Build the record key from the key template, e.g. key_for(venue='binance', symbol='BTC-USDT')."""
        return self.key.format(**fields).encode()


class TopicCatalogue(_Frozen):
    """All topics, the main ones and their dead-letter topics."""

    topics: tuple[TopicSpec, ...]

    def get(self, name: str) -> TopicSpec:
        """The topic named `name`; KeyError with the known names if there is none."""
        for t in self.topics:
            if t.name == name:
                return t
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(self.names())}")

    def names(self) -> list[str]:
        return [t.name for t in self.topics]

    def main_topics(self) -> list[TopicSpec]:
        return [t for t in self.topics if not t.is_dlq]

    def dlq_for(self, name: str) -> TopicSpec:
        """The dead-letter topic of topic `name`."""
        dlq = self.get(name).dlq
        if dlq is None:
            raise KeyError(f"topic {name!r} has no dead-letter topic")
        return self.get(dlq)


def load_catalogue(path: Path = TOPICS_FILE) -> TopicCatalogue:
    """Parse and validate a topics.yaml file (main topics plus generated DLQ entries)."""
    raw: dict[str, Any] = yaml.safe_load(path.read_text())
    defaults = raw.get("defaults", {})
    dead = raw["dead_letter"]
    topics: list[TopicSpec] = []
    for entry in raw["topics"]:
        rf = entry.get("replication_factor", defaults.get("replication_factor", 3))
        config = {str(k): str(v) for k, v in (entry.get("config") or {}).items()}
        if "min_insync_replicas" in defaults:
            config.setdefault("min.insync.replicas", str(defaults["min_insync_replicas"]))
        config.setdefault("cleanup.policy", str(defaults.get("cleanup_policy", "delete")))
        spec = TopicSpec(**{**entry, "replication_factor": rf, "config": config})
        topics.append(spec)
        if spec.dlq:
            topics.append(
                TopicSpec(
                    name=spec.dlq,
                    description=f"Dead letters of {spec.name}: raw record bytes, error in headers.",
                    payload=str(dead.get("payload", "raw")),
                    key="(original key)",
                    partitions=int(dead["partitions"]),
                    replication_factor=rf,
                    retention_ms=int(dead["retention_ms"]),
                    config={k: v for k, v in config.items() if k != "max.message.bytes"},
                    dlq=None,
                    is_dlq=True,
                )
            )
    names = [t.name for t in topics]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate topic names in {path}: {sorted(duplicates)}")
    return TopicCatalogue(topics=tuple(topics))


@cache
def catalogue() -> TopicCatalogue:
    """The packaged catalogue, parsed once."""
    return load_catalogue()
