"""The lake back as Arrow tables: pyarrow.dataset over S3 (endpoint override for S3-compatible servers)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
from aipx.settings import S3Settings
from aipx.topics import catalogue
from pyarrow import fs

# Only date and hour are partition columns: a symbol=<s> level (when enabled) repeats the `symbol` column
# every message already has, so it is used for pruning directories but not added as a column.
PARTITIONING = ds.partitioning(pa.schema([("date", pa.string()), ("hour", pa.int32())]), flavor="hive")


def lake_filesystem(settings: S3Settings | None = None) -> fs.S3FileSystem:
    """An S3 filesystem for the lake (credentials from the settings, else the standard AWS chain)."""
    settings = settings or S3Settings()
    kwargs: dict[str, object] = {"region": settings.region}
    if settings.endpoint_url:
        scheme, _, host = settings.endpoint_url.partition("://")
        kwargs["endpoint_override"] = host or scheme
        kwargs["scheme"] = scheme if host else "https"
    if settings.access_key_id and settings.secret_access_key:
        kwargs["access_key"] = settings.access_key_id.get_secret_value()
        kwargs["secret_key"] = settings.secret_access_key.get_secret_value()
    return fs.S3FileSystem(**kwargs)


def topic_dataset(
    topic: str, *, settings: S3Settings | None = None, bucket: str | None = None, prefix: str = ""
) -> ds.Dataset:
    """The Parquet dataset of one topic (partition columns: date, hour)."""
    settings = settings or S3Settings()
    root = f"{bucket or settings.bucket}/{prefix}topic={topic}"
    filesystem = lake_filesystem(settings)
    if filesystem.get_file_info(root).type == fs.FileType.NotFound:
        raise FileNotFoundError(f"no data for topic {topic!r} in the lake (s3://{root})")
    return ds.dataset(root, filesystem=filesystem, format="parquet", partitioning=PARTITIONING)


def read_topic(
    topic: str,
    *,
    settings: S3Settings | None = None,
    bucket: str | None = None,
    prefix: str = "",
    filter: ds.Expression | None = None,
) -> pa.Table:
    """All rows of a topic, ordered by partition and offset (`filter`: e.g. ds.field("hour") == 7)."""
    table = topic_dataset(topic, settings=settings, bucket=bucket, prefix=prefix).to_table(filter=filter)
    return table.sort_by([("_partition", "ascending"), ("_offset", "ascending")])


def read_lake(
    topics: list[str] | None = None,
    *,
    settings: S3Settings | None = None,
    bucket: str | None = None,
    prefix: str = "",
) -> dict[str, pa.Table]:
    """Every recorded topic as a table (topics with no data yet are left out)."""
    names = topics or [t.name for t in catalogue().main_topics()]
    tables: dict[str, pa.Table] = {}
    for name in names:
        try:
            tables[name] = read_topic(name, settings=settings, bucket=bucket, prefix=prefix)
        except FileNotFoundError:
            continue
    return tables
