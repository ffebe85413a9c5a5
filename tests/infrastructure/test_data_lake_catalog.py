"""The data lake's Glue Data Catalog: one table per topic whose columns are the recorder's Parquet schema
(generated from the code, checked fresh) and whose partition projection reproduces the recorder's layout, so
Athena reads the lake without crawlers. Terraform itself evaluates the module's locals."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import pytest
from aipx.topics import catalogue
from aipx_recorder.layout import Directory, file_name

from tests.infrastructure.conftest import MODULES, ROOT, EvalLocals, module_resources

MODULE = MODULES / "data_lake"
TABLES = MODULE / "lake_tables.json"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_lake_catalog", ROOT / "scripts" / "gen_lake_catalog.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lake_locals(eval_locals: EvalLocals) -> dict[str, Any]:
    names = ["lake_tables", "table_names", "glue_database", "projection", "locations"]
    variables = {
        "name": "aipx-dev",
        "account_id": "123456789012",
        "tables_file": str(TABLES),
        "lake_prefix": "",
        "partition_by_symbol": False,
        "projection_start_date": "2024-01-01",
    }
    return eval_locals(MODULE, names, variables)


def test_the_table_columns_are_generated_from_the_recorders_schema_and_fresh() -> None:
    gen = _generator()
    assert gen.main(["--check"]) == 0, "run: uv run python scripts/gen_lake_catalog.py"
    tables = gen.tables()
    assert set(tables) == {t.name for t in catalogue().main_topics()}
    columns = {c["name"]: c["type"] for c in tables["market-data-raw"]["columns"]}
    assert columns["trade"].startswith("struct<trade_id:string,price:decimal(38,18),quantity:decimal(38,18)")
    assert columns["_partition"] == "int" and columns["_offset"] == "bigint"
    assert columns["_event_time"] == "timestamp"
    assert "date" not in columns and "hour" not in columns, "partition keys are not file columns"


def test_one_table_per_topic_with_projection_matching_the_recorder_layout(
    lake_locals: dict[str, Any],
) -> None:
    assert lake_locals["glue_database"] == "aipx_dev_lake"
    assert lake_locals["table_names"] == {t.name: t.name.replace("-", "_") for t in catalogue().main_topics()}
    projection = lake_locals["projection"]
    assert projection["projection.enabled"] == "true"
    assert (projection["projection.date.type"], projection["projection.date.format"]) == (
        "date",
        "yyyy-MM-dd",
    )
    assert projection["projection.date.range"] == "2024-01-01,NOW"
    assert (projection["projection.hour.range"], projection["projection.hour.digits"]) == ("0,23", "2")

    # The template, filled in for an hour, is the directory the recorder writes that hour's files to.
    bucket = "s3://aipx-dev-data-lake-123456789012/"
    for topic, location in lake_locals["locations"].items():
        directory = Directory(topic, 489_007)  # 2025-10-14T07:00Z, in hours since the epoch
        filled = location["template"].replace("${date}", directory.date).replace("${hour}", "07")
        assert filled == bucket + directory.path()
        assert location["root"] == f"{bucket}topic={topic}/"
        assert (filled + file_name(topic, 0, 1, 2)).startswith(location["root"])
    [table] = module_resources("data_lake", "aws_glue_catalog_table").values()
    assert table["for_each"] == "${local.lake_tables}"
    assert table["parameters"] is not None and "local.projection" in str(table["parameters"])
    partitions = [p["name"] for p in table["partition_keys"] if isinstance(p, dict)]
    assert partitions[:2] == ["date", "hour"]
    descriptor = table["storage_descriptor"]
    assert "ParquetHiveSerDe" in str(descriptor)
    [database] = module_resources("data_lake", "aws_glue_catalog_database").values()
    assert database["name"] == "${local.glue_database}"


def test_a_prefix_and_a_symbol_level_are_projected_too(eval_locals: EvalLocals) -> None:
    variables = {
        "name": "aipx-prod",
        "account_id": "123456789012",
        "tables_file": str(TABLES),
        "lake_prefix": "lake/",
        "partition_by_symbol": True,
        "projection_start_date": "2025-06-01",
    }
    got = eval_locals(MODULE, ["locations", "symbol_projection"], variables)
    assert got["symbol_projection"] == {"projection.symbol.type": "injected"}
    directory = Directory("market-data-raw", 489_007, symbol="BTC-USDT")
    template = got["locations"]["market-data-raw"]["template"]
    filled = (
        template.replace("${date}", directory.date).replace("${hour}", "07").replace("${symbol}", "BTC-USDT")
    )
    assert filled == "s3://aipx-prod-data-lake-123456789012/" + directory.path("lake/")
