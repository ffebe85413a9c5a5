"""Write the Glue Data Catalog columns of every lake table from the code that writes the lake.

    uv run python scripts/gen_lake_catalog.py           # regenerate
    uv run python scripts/gen_lake_catalog.py --check   # exit 1 if the file is stale (CI)

For each main topic of the catalogue (topics.yaml), the recorder's Parquet schema
(`aipx_recorder.recorder.lake_schema` of the topic's protobuf message) as Hive/Athena column types, into
infrastructure/terraform/modules/data_lake/lake_tables.json, which the data_lake module reads to create one
Glue table per topic (with partition projection). The partition columns (date, hour) are not in the files'
columns and are left out here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import cast

import pyarrow as pa
from aipx.serde import message_type
from aipx.topics import catalogue
from aipx_recorder.recorder import lake_schema
from google.protobuf.descriptor import Descriptor

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "infrastructure" / "terraform" / "modules" / "data_lake" / "lake_tables.json"


def hive_type(t: pa.DataType) -> str:
    """An Arrow type as a Hive/Athena (Glue) column type."""
    if pa.types.is_dictionary(t):
        return hive_type(t.value_type)
    simple = {
        pa.int8(): "tinyint", pa.int16(): "smallint", pa.int32(): "int", pa.int64(): "bigint",
        pa.uint8(): "smallint", pa.uint16(): "int", pa.uint32(): "bigint", pa.uint64(): "decimal(20,0)",
        pa.float32(): "float", pa.float64(): "double", pa.bool_(): "boolean", pa.string(): "string",
        pa.large_string(): "string", pa.binary(): "binary", pa.large_binary(): "binary",
    }  # fmt: skip
    if t in simple:
        return simple[t]
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{hive_type(f.type)}" for f in t) + ">"
    if pa.types.is_map(t):
        return f"map<{hive_type(t.key_type)},{hive_type(t.item_type)}>"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"array<{hive_type(t.value_type)}>"
    raise TypeError(f"no Hive type for Arrow {t}")


def tables() -> dict[str, dict[str, list[dict[str, str]]]]:
    out = {}
    for spec in catalogue().main_topics():
        if spec.payload == "raw":
            continue
        schema = lake_schema(cast(Descriptor, message_type(spec.payload).DESCRIPTOR))
        out[spec.name] = {"columns": [{"name": f.name, "type": hive_type(f.type)} for f in schema]}
    return out


def render() -> str:
    return json.dumps(tables(), indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is not up to date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run scripts/gen_lake_catalog.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
