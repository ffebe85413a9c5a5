"""The lake layout read back with the reader's partitioning (local files; S3 is in test_recorder_lake)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds
from aipx_recorder.reader import PARTITIONING
from aipx_recorder.recorder import ParquetRecorder
from aipx_recorder.settings import RotationPolicy

from .test_recorder_policy import MemoryStore, signal


def write_lake(tmp_path: Path, store: MemoryStore) -> None:
    for key, body in store.objects.items():
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


def test_symbol_directories_are_pruning_only_and_date_hour_are_columns(tmp_path: Path) -> None:
    store = MemoryStore()
    rec = ParquetRecorder(store, policy=RotationPolicy(partition_by_symbol=True), dead_letter=lambda *a: None)
    rec.process([signal(0), signal(1, hour=1)])
    assert all("/symbol=BTC-USDT/" in key for key in store.objects)
    write_lake(tmp_path, store)
    root = tmp_path / "topic=trading-signals"
    table = ds.dataset(root, format="parquet", partitioning=PARTITIONING).to_table()
    assert sorted(table.column("hour").to_pylist()) == [16, 17]
    assert table.column("symbol").to_pylist() == ["BTC-USDT", "BTC-USDT"]  # the message's own column
    assert set(table.column("date").to_pylist()) == {"2025-11-24"}
