"""The S3-compatible server stores and returns objects through boto3."""

from __future__ import annotations

import hashlib
import os
import uuid

import boto3
import pytest
from aipx_stack import S3Endpoint
from aipx_stack.pytest_plugin import BucketFactory
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration


async def test_object_round_trip_in_a_new_bucket(s3_endpoint: S3Endpoint, new_bucket: BucketFactory) -> None:
    bucket = await new_bucket()
    client = s3_endpoint.client()
    body = os.urandom(256 * 1024)
    client.put_object(Bucket=bucket, Key="raw/2026/11/22/part-0.bin", Body=body)

    got = client.get_object(Bucket=bucket, Key="raw/2026/11/22/part-0.bin")["Body"].read()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(body).hexdigest()
    listed = client.list_objects_v2(Bucket=bucket, Prefix="raw/")
    assert [o["Key"] for o in listed["Contents"]] == ["raw/2026/11/22/part-0.bin"]
    with pytest.raises(ClientError) as missing:
        client.get_object(Bucket=bucket, Key="raw/absent")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"


def test_default_bucket_exists_and_env_points_at_the_server(s3_endpoint: S3Endpoint) -> None:
    # boto3 configured only from the environment the session exported (as code using aipx.settings would be).
    client = boto3.client("s3", endpoint_url=os.environ["AIPX_S3_ENDPOINT_URL"])
    assert os.environ["AIPX_S3_BUCKET"] == s3_endpoint.bucket
    names = [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert s3_endpoint.bucket in names
    key = f"stack-test/{uuid.uuid4().hex}"
    client.put_object(Bucket=s3_endpoint.bucket, Key=key, Body=b"x")
    try:
        assert client.head_object(Bucket=s3_endpoint.bucket, Key=key)["ContentLength"] == 1
    finally:
        client.delete_object(Bucket=s3_endpoint.bucket, Key=key)
