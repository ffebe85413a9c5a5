"""The lake's object store: S3 (or an S3-compatible server) through boto3."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from aipx.settings import S3Settings


class ObjectStore(Protocol):
    """What the recorder needs from an object store."""

    def put(self, key: str, body: bytes) -> None:
        """Store `body` under `key` durably (returns once the store acknowledged it)."""

    def list_names(self, prefix: str) -> list[str]:
        """Names (the part after `prefix`) of the objects directly under `prefix`."""


def s3_client(settings: S3Settings) -> Any:
    """A boto3 S3 client for the settings (endpoint override for S3-compatible servers)."""
    import boto3
    from botocore.config import Config

    kwargs: dict[str, Any] = {
        "region_name": settings.region,
        "config": Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32),
    }
    if settings.endpoint_url:
        kwargs["endpoint_url"] = settings.endpoint_url
    if settings.access_key_id and settings.secret_access_key:
        kwargs["aws_access_key_id"] = settings.access_key_id.get_secret_value()
        kwargs["aws_secret_access_key"] = settings.secret_access_key.get_secret_value()
    return boto3.client("s3", **kwargs)


class S3Store:
    """ObjectStore on one bucket; the boto3 client is created on first use (thread-safe, shared)."""

    def __init__(self, settings: S3Settings, *, bucket: str | None = None) -> None:
        self.settings = settings
        self.bucket = bucket or settings.bucket
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = s3_client(self.settings)
            return self._client

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType="application/vnd.apache.parquet"
        )

    def list_names(self, prefix: str) -> list[str]:
        names: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            names.extend(obj["Key"][len(prefix) :] for obj in page.get("Contents", []))
        return names
