"""Where the stack's components answer, and how to hand that to code reading aipx.settings."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class S3Endpoint:
    """An S3-compatible server plus the bucket, region and credentials to use with it."""

    endpoint_url: str
    bucket: str
    region: str
    access_key: str
    secret_key: str

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for `boto3.client("s3", **kwargs)`."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
        }

    def client(self) -> Any:
        """A boto3 S3 client bound to this endpoint."""
        import boto3

        return boto3.client("s3", **self.client_kwargs())


@dataclass(frozen=True)
class Endpoints:
    """Connection endpoints of a running stack."""

    kafka_bootstrap: str
    postgres_dsn: str
    redis_url: str
    s3_endpoint_url: str
    s3_bucket: str
    s3_region: str
    s3_access_key: str
    s3_secret_key: str

    @property
    def s3(self) -> S3Endpoint:
        """The S3 part of the endpoints."""
        return S3Endpoint(
            endpoint_url=self.s3_endpoint_url,
            bucket=self.s3_bucket,
            region=self.s3_region,
            access_key=self.s3_access_key,
            secret_key=self.s3_secret_key,
        )

    def postgres_dsn_for(self, database: str) -> str:
        """The PostgreSQL DSN with the same server and credentials but another database."""
        return database_dsn(self.postgres_dsn, database)

    def as_env(self, *, aws: bool = False) -> dict[str, str]:
        """The AIPX_* variables aipx.settings reads; aws=True adds AWS_* credentials for boto3."""
        env = {
            "AIPX_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "AIPX_POSTGRES_DSN": self.postgres_dsn,
            "AIPX_REDIS_URL": self.redis_url,
            "AIPX_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "AIPX_S3_BUCKET": self.s3_bucket,
            "AIPX_S3_REGION": self.s3_region,
            "AIPX_S3_ACCESS_KEY_ID": self.s3_access_key,
            "AIPX_S3_SECRET_ACCESS_KEY": self.s3_secret_key,
        }
        if aws:
            env.update(
                {
                    "AWS_ACCESS_KEY_ID": self.s3_access_key,
                    "AWS_SECRET_ACCESS_KEY": self.s3_secret_key,
                    "AWS_DEFAULT_REGION": self.s3_region,
                    "AWS_REGION": self.s3_region,
                }
            )
        return env

    def export(self, environ: MutableMapping[str, str] | None = None, *, aws: bool = False) -> None:
        """Write `as_env()` into `environ` (default: this process's environment)."""
        target = os.environ if environ is None else environ
        target.update(self.as_env(aws=aws))

    def shell_exports(self, *, aws: bool = False) -> str:
        """`export NAME='value'` lines for `eval "$(aipx-stack env)"`."""
        return "\n".join(f"export {k}='{v}'" for k, v in self.as_env(aws=aws).items())


def database_dsn(dsn: str, database: str) -> str:
    """`dsn` with the same server and credentials but another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))
