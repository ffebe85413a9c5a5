"""The on-failure records AWS Lambda writes to an S3 destination for Kafka event source mappings. No I/O.

For a Kafka (MSK / self-managed) mapping, each object is one JSON document: the failure metadata
(`requestContext` with `condition` such as RetryAttemptsExhausted and `approximateInvokeCount`,
`responseContext`, `version`, `timestamp`, `KafkaBatchInfo` with `batchSize`, `eventSourceArn`,
`bootstrapServers`, `payloadSize` and `recordsInfo`/`recordInfo`) and, for S3 destinations, `payload`: the
whole invocation event (`eventSource: aws:kafka`, `records: {"<topic>-<partition>": [...]}`, values and keys
base64). The payload may arrive as an object or as a JSON string; both are read. See "Capturing discarded
batches for Amazon MSK and self-managed Apache Kafka event sources" in the Lambda developer guide.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aipx.msk import InvalidEventError, MskRecord, records_of

from aipx_ops.records import OpsError


@dataclass(frozen=True)
class FailedBatch:
    """One S3 failure object: why the batch failed and its records (as the function received them)."""

    key: str
    condition: str | None
    invoke_count: int | None
    timestamp: str | None
    records: list[MskRecord]


def parse_failure(key: str, body: bytes | str) -> FailedBatch:
    """Parse one failure object (OpsError naming the object when it is not one)."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OpsError(f"s3 object {key}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise OpsError(f"s3 object {key}: not a failure record (a JSON object is expected)")
    payload = doc.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise OpsError(f"s3 object {key}: payload is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise OpsError(
            f"s3 object {key}: no invocation payload (only S3 destinations carry the records; "
            "SQS/SNS records hold metadata only: find the records by the offsets in KafkaBatchInfo)"
        )
    try:
        records = records_of(payload)
    except InvalidEventError as exc:
        raise OpsError(f"s3 object {key}: payload is not a Kafka event: {exc}") from None
    context = doc.get("requestContext") or {}
    count = context.get("approximateInvokeCount")
    return FailedBatch(
        key=key,
        condition=context.get("condition"),
        invoke_count=int(count) if isinstance(count, int | str) and str(count).isdigit() else None,
        timestamp=doc.get("timestamp"),
        records=records,
    )
