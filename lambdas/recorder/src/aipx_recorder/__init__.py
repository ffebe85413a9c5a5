"""The recorder function: Kafka topics -> Parquet (zstd) files in the S3 data lake, each record exactly once.

handler.py (Lambda entry, `aipx_recorder.handler.handler`), recorder.py (buffering, rotation, durability),
schema.py (protobuf -> Arrow), layout.py (paths and file names), adapters/s3.py (the object store),
reader.py (the lake back as tables).
"""
