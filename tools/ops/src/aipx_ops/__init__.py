"""aipx-ops: what an operator needs on the data path, from a shell.

    aipx-ops dlq list DLQ [--since 2h] [--until ...] [--key K] [--error-type T] [--json]
    aipx-ops dlq show DLQ PARTITION:OFFSET [--json]
    aipx-ops dlq replay DLQ [--to TOPIC] [filters] [--dry-run]
    aipx-ops dlq replay-s3 --bucket FAILURE_BUCKET [--prefix P] [--to TOPIC] [--dry-run]
    aipx-ops tail TOPIC [--from-beginning] [--json] [--max N]

Plain logic (records, filters, decoding, the S3 failure format, the ledger) is in `records`, `s3_failures` and
`ledger`; Kafka and S3 I/O in `io`; the command line in `cli`.
"""
