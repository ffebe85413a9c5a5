"""The Parquet lake as a backtest input: market data written by the real recorder to S3 (the stack's S3
server) reads back as the same events, from S3 and from a local copy, and backtests to the same bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aipx import serde
from aipx.msk import MskRecord
from aipx.settings import S3Settings
from aipx.topics import MARKET_DATA_RAW
from aipx_backtest import BacktestConfig, DataError, demo_dataset, load_lake, run_backtest
from aipx_backtest.data import event_time
from aipx_recorder.adapters.s3 import S3Store
from aipx_recorder.recorder import ParquetRecorder
from aipx_recorder.settings import RotationPolicy

pytestmark = pytest.mark.integration


async def test_recorded_market_data_backtests_like_the_original(
    new_bucket: Any, s3_endpoint: Any, tmp_path: Path
) -> None:
    bucket = await new_bucket()
    settings = S3Settings(
        endpoint_url=s3_endpoint.endpoint_url,
        bucket=bucket,
        region=s3_endpoint.region,
        access_key_id=s3_endpoint.access_key,
        secret_access_key=s3_endpoint.secret_key,
    )
    original = demo_dataset(symbols=("XRP-USDT", "SOL-USDT"), hours=3)
    records = []
    for offset, envelope in enumerate(original.events):
        partition = 0 if envelope.symbol == "XRP-USDT" else 1
        encoded = serde.encode(envelope, event_id=f"md-{offset}", event_time_ns=event_time(envelope))
        key = f"{envelope.venue}:{envelope.symbol}".encode()
        time_ms = event_time(envelope) // 1_000_000
        records.append(
            MskRecord(MARKET_DATA_RAW, partition, offset, time_ms, key, encoded.value, encoded.headers)
        )
    recorder = ParquetRecorder(S3Store(settings, bucket=bucket), policy=RotationPolicy(max_records=1))
    try:
        result = recorder.process(records)
    finally:
        recorder.close()
    assert result.failed == [] and result.held == 0 and result.written, "every record is in the lake"

    from_s3 = load_lake(f"s3://{bucket}", s3=settings)
    assert [e.SerializeToString() for e in from_s3.events] == [e.SerializeToString() for e in original.events]
    one_hour = load_lake(
        f"s3://{bucket}", s3=settings, symbols=["SOL-USDT"], start_ns=original.start_ns + 3600 * 10**9,
        end_ns=original.start_ns + 7200 * 10**9,
    )  # fmt: skip
    assert one_hour.symbols == ["SOL-USDT"]
    assert (
        original.start_ns + 3600 * 10**9
        <= one_hour.start_ns
        <= one_hour.end_ns
        < original.start_ns + 7200 * 10**9
    )

    s3 = s3_endpoint.client()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            target = tmp_path / item["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(target))
    local = load_lake(str(tmp_path))
    config = BacktestConfig(strategies=("bollinger", "ema_cross"))
    assert run_backtest(local, config).to_json() == run_backtest(original, config).to_json()
    with pytest.raises(DataError, match="no market-data-raw data"):
        load_lake(str(tmp_path / "nothing-here"))
