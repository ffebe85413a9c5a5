"""Typed settings from environment variables: the one place every component reads its configuration from.

Each component composes the sections it needs into its own `BaseSettings` subclass (see `ComponentSettings`).
Every field is an environment variable `AIPX_<SECTION>_<FIELD>` (e.g. AIPX_KAFKA_BOOTSTRAP_SERVERS); unknown
AIPX_* variables for a section are rejected so a typo fails loudly instead of silently using a default.
Defaults point at the native local stack (`aipx-stack up`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from types import UnionType
from typing import Literal, Self, Union, get_args, get_origin

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aipx.money import parse_decimal
from aipx.numbers import InvalidNumberError, parse_int


class StrictEnvSettings(BaseSettings):
    """Settings that reject environment variables carrying their prefix but naming no field (typos), and read
    numbers with the boundary parsers: int fields with aipx.numbers.parse_int (ASCII digits, int64), Decimal
    fields (also a mapping's Decimal values) with aipx.money.parse_decimal (decimal128(38, 18) bounds, no
    binary floats), float fields (durations, ratios) as finite ASCII numbers. An error names the variable."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_numbers(cls, value: object, info: ValidationInfo) -> object:
        name = info.field_name
        if name is None or name not in cls.model_fields:
            return value
        kind = _number_kind(cls.model_fields[name].annotation)
        if kind is None:
            return value
        variable = f"{cls.model_config.get('env_prefix') or ''}{name}".upper()
        try:
            if kind == "mapping" and isinstance(value, dict):
                return {k: _strict_decimal(v, f"{variable}[{k!r}]") for k, v in value.items()}
            if kind is Decimal:
                return _strict_decimal(value, variable)
            if kind is int and isinstance(value, str):
                return parse_int(value.strip(), field=variable)
            if kind is float and isinstance(value, str):
                return _strict_float(value.strip(), variable)
        except InvalidNumberError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _reject_unknown_env(self) -> Self:
        prefix = str(self.model_config.get("env_prefix") or "").upper()
        if not prefix:
            return self
        known = {f"{prefix}{name}".upper() for name in type(self).model_fields}
        unknown = sorted(k for k in os.environ if k.upper().startswith(prefix) and k.upper() not in known)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        return self


_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)


def _number_kind(annotation: object) -> object:
    """int, float or Decimal for a (possibly optional) number field, "mapping" for a mapping to Decimals."""
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            return None
        annotation = args[0]
    if get_origin(annotation) in (dict, Mapping) and get_args(annotation)[-1:] == (Decimal,):
        return "mapping"
    if annotation is bool:
        return None
    return annotation if annotation in (int, float, Decimal) else None


def _strict_decimal(value: object, variable: str) -> object:
    if isinstance(value, str):
        return parse_decimal(value.strip(), field=variable)
    if isinstance(value, float):
        raise InvalidNumberError(variable, 'must be a decimal string, not a binary float (e.g. "0.001")')
    return value


def _strict_float(text: str, variable: str) -> float:
    if _FLOAT_TEXT.fullmatch(text) is None:
        raise InvalidNumberError(variable, f"{text[:40]!r} is not a number (ASCII digits)")
    number = float(text)
    if not math.isfinite(number):
        raise InvalidNumberError(variable, f"{text!r} is out of range")
    return number


class _Section(StrictEnvSettings):
    pass


class KafkaSettings(_Section):
    """Kafka (Amazon MSK in the cloud) connection and client tuning."""

    model_config = SettingsConfigDict(env_prefix="AIPX_KAFKA_", extra="forbid", frozen=True)

    bootstrap_servers: str = Field("127.0.0.1:19092", description="Comma-separated host:port list")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    client_id_prefix: str = "aipx"
    # Producer batching: linger trades a little latency for much larger, better-compressed batches.
    linger_ms: int = Field(5, ge=0)
    max_batch_size: int = Field(256 * 1024, ge=16 * 1024)
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = "lz4"
    # LZ4's level when compression_type is lz4: 0 is LZ4's fast mode (librdkafka's default); aiokafka's own
    # default, 9, is the high-compression mode the broker uses when it recompresses: ~5x the CPU per record
    # for ~2-4% fewer bytes on market data (bench/RESULTS.md, 2026-12-05). Process-wide (aiokafka's codec).
    lz4_level: int = Field(0, ge=0, le=16)
    request_timeout_ms: int = Field(30_000, ge=1_000)
    # Replication factor used by the topic bootstrap; None = the catalogue's (cloud) value.
    replication_factor: int | None = None
    # Region for MSK IAM auth (sasl_mechanism OAUTHBEARER).
    aws_region: str = "ap-northeast-2"


class PostgresSettings(_Section):
    """PostgreSQL (RDS in the cloud)."""

    model_config = SettingsConfigDict(env_prefix="AIPX_POSTGRES_", extra="forbid", frozen=True)

    dsn: SecretStr = Field(SecretStr("postgresql://aipx:aipx@127.0.0.1:15432/aipx"))
    min_pool_size: int = Field(2, ge=1)
    max_pool_size: int = Field(20, ge=1)
    command_timeout_s: float = Field(10.0, gt=0)


class RedisSettings(_Section):
    """Redis (ElastiCache in the cloud)."""

    model_config = SettingsConfigDict(env_prefix="AIPX_REDIS_", extra="forbid", frozen=True)

    url: SecretStr = Field(SecretStr("redis://127.0.0.1:16379/0"))


class S3Settings(_Section):
    """S3 (or an S3-compatible server locally). Credentials come from the standard AWS chain when unset."""

    model_config = SettingsConfigDict(env_prefix="AIPX_S3_", extra="forbid", frozen=True)

    endpoint_url: str | None = "http://127.0.0.1:19000"
    bucket: str = "aipx-data-lake"
    region: str = "ap-northeast-2"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None

    @field_validator("endpoint_url", mode="before")
    @classmethod
    def _empty_means_aws(cls, value: object) -> object:
        """AIPX_S3_ENDPOINT_URL="" (as Terraform sets it) means the real AWS S3 endpoint."""
        return None if value == "" else value


class LogSettings(_Section):
    """Structured logging."""

    model_config = SettingsConfigDict(env_prefix="AIPX_LOG_", extra="forbid", frozen=True)

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console"] = "json"


class MetricsSettings(_Section):
    """Prometheus metrics/health HTTP endpoint of a long-running service."""

    model_config = SettingsConfigDict(env_prefix="AIPX_METRICS_", extra="forbid", frozen=True)

    host: str = "0.0.0.0"
    port: int = Field(9100, ge=0, le=65535)


class ComponentSettings(StrictEnvSettings):
    """Base for a component's settings: the shared sections, each read from its own AIPX_<SECTION>_* vars.

    Subclass it with the component's own prefix and fields, e.g.::

        class OmsSettings(ComponentSettings):
            model_config = SettingsConfigDict(env_prefix="AIPX_OMS_", extra="forbid", frozen=True)
            grpc_port: int = 50051
    """

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
