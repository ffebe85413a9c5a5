"""The recorder under an on-demand event source mapping (partial batch responses ignored): it holds
nothing, and an invocation whose records are not all durable fails as a whole, so nothing is lost. Real
broker and S3."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aipx.lambda_kit import ON_DEMAND, PROVISIONED, BatchFailedError
from aipx.settings import KafkaSettings
from aipx.topics import TRADING_SIGNALS
from aipx_recorder.adapters.s3 import S3Store
from aipx_recorder.reader import read_topic
from aipx_recorder.recorder import ParquetRecorder, RecordResult
from aipx_recorder.settings import RotationPolicy
from aipx_runner import Backoff, Runner, RunnerConfig

from .test_recorder_lake import messages, publish, s3_settings, wait_rows

pytestmark = pytest.mark.integration


async def test_on_demand_recorder_writes_every_batch_and_fails_the_invocation_until_it_can(
    kafka_bootstrap: str, new_topic: Any, new_bucket: Any, s3_endpoint: Any
) -> None:
    topic, dlq = await new_topic(1), await new_topic(1)
    settings = s3_settings(s3_endpoint)
    # The bucket does not exist yet: every upload fails (a real S3 error), until the test creates it.
    bucket = f"rec-ondemand-{uuid.uuid4().hex[:10]}"
    recorder = ParquetRecorder(
        S3Store(settings, bucket=bucket),
        # A policy that would hold records for a long time in provisioned mode.
        policy=RotationPolicy(max_records=100_000, max_age_s=3600, max_holds=1000),
        topics={topic: TRADING_SIGNALS},
        dlqs={topic: dlq},
        mode=ON_DEMAND,
    )
    results: list[RecordResult] = []
    raised: list[BatchFailedError] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        result = recorder.process_event(event)
        results.append(result)
        try:
            return result.respond(recorder.mode, sum(len(g) for g in event["records"].values()))
        except BatchFailedError as exc:
            raised.append(exc)
            raise

    config = RunnerConfig.from_manifest(
        ["recorder"],
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        topics={TRADING_SIGNALS: topic, "trading-signals.dlq": dlq},
        group_ids={f"recorder:{TRADING_SIGNALS}": f"rec-od-{uuid.uuid4().hex[:8]}"},
        handlers={"recorder": handler},
        backoff=Backoff(base_s=0.05, max_s=0.3),
        batching_window_s=0.05,
        mode=ON_DEMAND,
    )
    config = config.__class__(
        tuple(s for s in config.sources if s.topic == topic), config.kafka, config.backoff, mode=ON_DEMAND
    )
    n = 30
    await publish(kafka_bootstrap, topic, messages(TRADING_SIGNALS, n))
    runner = Runner(config)
    task = asyncio.create_task(runner.run())
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while len(raised) < 2:  # failed and retried (whole) at least once
            assert asyncio.get_running_loop().time() < deadline, "no failed invocation"
            await asyncio.sleep(0.05)
        assert runner.pollers[0].stats.committed.get(f"{topic}-0") is None, "nothing committed yet"
        await asyncio.to_thread(_create_bucket, new_bucket, bucket)
        table = await wait_rows(lambda: read_topic(topic, settings=settings, bucket=bucket), n, within_s=60)
        deadline = asyncio.get_running_loop().time() + 30
        while runner.pollers[0].stats.committed.get(f"{topic}-0") != n:
            assert asyncio.get_running_loop().time() < deadline, "not committed"
            await asyncio.sleep(0.05)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)
    assert table.num_rows == n
    assert sorted(table.column("_offset").to_pylist()) == list(range(n))  # none lost, none twice
    # Records stay unacknowledged only when their upload failed, and then the invocation failed as a whole.
    assert sum(1 for r in results if r.held) == len(raised) >= 2
    assert all("on-demand" in reasons for r in results for reasons in r.flush_reasons.values())
    assert runner.pollers[0].stats.ignored_failures == 0


def _create_bucket(factory: Any, name: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if factory.s3.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": factory.s3.region}
    factory.client.create_bucket(**kwargs)
    factory.created.append(name)


def test_provisioned_recorder_still_reports_held_records(new_bucket: Any, s3_endpoint: Any) -> None:
    result = RecordResult()
    assert result.respond(PROVISIONED, 0) == {"batchItemFailures": []}
    assert ParquetRecorder(
        S3Store(s3_settings(s3_endpoint), bucket=new_bucket.sync()), mode=PROVISIONED
    ).mode == (PROVISIONED)
