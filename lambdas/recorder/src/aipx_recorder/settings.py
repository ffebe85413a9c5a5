"""Recorder settings (AIPX_RECORDER_*), plus the shared S3 and Kafka sections."""

from __future__ import annotations

from aipx.settings import KafkaSettings, S3Settings, StrictEnvSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict


class RotationPolicy(StrictEnvSettings):
    """When a partition's buffer becomes files (see aipx_recorder.recorder for the whole policy)."""

    model_config = SettingsConfigDict(env_prefix="AIPX_RECORDER_", extra="forbid", frozen=True)

    max_records: int = Field(100_000, ge=1, description="flush once a partition buffers this many records")
    max_bytes: int = Field(64 * 1024 * 1024, ge=1, description="... or this many bytes of record values")
    max_age_s: float = Field(60.0, ge=0, description="... or when its oldest record waited this long")
    late_grace_s: float = Field(
        300.0, ge=0, description="an event hour closes once the partition's event time passes its end + this"
    )
    max_holds: int | None = Field(
        None, ge=0, description="invocations a buffer may be held; default: the source's max_retries - 1"
    )
    partition_by_symbol: bool = Field(False, description="add symbol=<s>/ below hour= for market data")
    prefix: str = Field("", description="key prefix inside the bucket")
    upload_concurrency: int = Field(8, ge=1, le=64)


class RecorderSettings(StrictEnvSettings):
    """Everything the recorder reads from the environment."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    policy: RotationPolicy = Field(default_factory=RotationPolicy)
    s3: S3Settings = Field(default_factory=S3Settings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
