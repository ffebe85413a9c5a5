"""`aipx-ops` as an operator runs it (the installed console script, a real process) against the real broker
and the S3-compatible server: list, show, replay (idempotent, filtered), replay-s3 and tail."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aipx.kafka import DeadLetterPublisher
from aipx.msk import MskRecord
from aipx.serde import DecodeError, decode, encode, header
from aipx.v1.signals_pb2 import TradingSignal

from tests.ops.test_ops_unit import aws_failure_object

pytestmark = pytest.mark.integration

# The console script installed next to the interpreter running the tests (the workspace's environment).
AIPX_OPS = str(Path(sys.executable).parent / "aipx-ops")


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIPX_OPS, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def ops_env(kafka_bootstrap: str, s3_endpoint: Any, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIPX_")}
    env |= {
        "AIPX_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AIPX_S3_ENDPOINT_URL": s3_endpoint.endpoint_url,
        "AIPX_S3_REGION": s3_endpoint.region,
        "AIPX_S3_ACCESS_KEY_ID": s3_endpoint.access_key,
        "AIPX_S3_SECRET_ACCESS_KEY": s3_endpoint.secret_key,
    }
    return env


def signal_bytes(signal_id: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    enc = encode(
        TradingSignal(signal_id=signal_id, symbol="BTC-USDT"), event_id=f"ev-{signal_id}", event_time_ns=1
    )
    return enc.value, enc.headers


async def dead_letter(
    bootstrap: str, dlq: str, origin: str, items: list[tuple[bytes, bytes, Exception]]
) -> None:
    """Dead-letter (key, value, error) records as the platform does (aipx.kafka.DeadLetterPublisher)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        publisher = DeadLetterPublisher(producer, consumer="cognitive")
        for offset, (key, value, error) in enumerate(items):
            _, headers = signal_bytes(key.decode() + str(offset))
            await publisher.publish(
                dlq,
                key=key,
                value=value,
                headers=headers,
                error=error,
                topic=origin,
                partition=0,
                offset=offset,
            )
    finally:
        await producer.stop()


def decode_error(value: bytes) -> DecodeError:
    """The error the platform raises for this value (as a consumer would dead-letter it)."""
    _, headers = signal_bytes("x")
    try:
        decode(value, headers, TradingSignal, topic="t", partition=0, offset=1)
    except DecodeError as exc:
        return exc
    raise AssertionError("expected an undecodable value")


async def read(bootstrap: str, topic: str, n: int, within_s: float = 30) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    out: list[Any] = []
    try:
        async with asyncio.timeout(within_s):
            while len(out) < n:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    out.extend(records)
        # Anything more (a duplicate) would show up now.
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            out.extend(records)
    finally:
        await consumer.stop()
    return out


async def test_list_show_and_replay_dead_letters_idempotently(
    kafka_bootstrap: str, new_topic: Any, ops_env: dict[str, str], tmp_path: Path
) -> None:
    origin, dlq, other = await new_topic(1), await new_topic(1), await new_topic(1)
    good, _ = signal_bytes("x")
    await dead_letter(
        kafka_bootstrap,
        dlq,
        origin,
        [
            (b"BTC-USDT", good, RuntimeError("OMS unavailable")),
            (b"ETH-USDT", b"\x0a\xff\xff", decode_error(b"\x0a\xff\xff")),
            (b"BTC-USDT", good, RuntimeError("OMS unavailable")),
        ],
    )
    listed = await asyncio.to_thread(run, ops_env, "dlq", "list", dlq)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("PARTITION:OFFSET") and len(lines) == 4
    assert "0:1\t" in lines[2] and "ETH-USDT\tDecodeError\t" + f"{origin}/0/1" in lines[2]
    assert "3 record(s)" in listed.stderr

    as_json = await asyncio.to_thread(
        run, ops_env, "dlq", "list", dlq, "--json", "--error-type", "DecodeError"
    )
    [poison] = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert poison["dlq"]["error_type"] == "DecodeError" and poison["dlq"]["original_topic"] == origin
    assert "invalid protobuf" in poison["payload"]["undecodable"]
    keyed = await asyncio.to_thread(
        run, ops_env, "dlq", "list", dlq, "--json", "--key", "BTC-USDT", "--since", "1h"
    )
    assert [json.loads(line)["offset"] for line in keyed.stdout.splitlines()] == [0, 2]
    none = await asyncio.to_thread(run, ops_env, "dlq", "list", dlq, "--json", "--until", "1h")
    assert none.stdout == "" and "0 record(s)" in none.stderr

    shown = await asyncio.to_thread(run, ops_env, "dlq", "show", dlq, "0:0")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["payload"]["message"] == {"signal_id": "x", "symbol": "BTC-USDT"}
    assert record["headers"]["aipx-dlq-error"] == "OMS unavailable"
    assert record["headers"]["aipx-event-id"] == "ev-BTC-USDT0"
    missing = await asyncio.to_thread(run, ops_env, "dlq", "show", dlq, "0:99")
    assert missing.returncode == 2 and "offsets 0..2; 99 is not there" in missing.stderr

    ledger = str(tmp_path / "ledger.jsonl")
    dry = await asyncio.to_thread(
        run, ops_env, "dlq", "replay", dlq, "--error-type", "RuntimeError", "--dry-run", "--ledger", ledger
    )
    assert dry.returncode == 0 and len(dry.stdout.splitlines()) == 2 and "would replay 2" in dry.stderr
    replayed = await asyncio.to_thread(
        run, ops_env, "dlq", "replay", dlq, "--error-type", "RuntimeError", "--ledger", ledger
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 2 record(s); 0 already replayed" in replayed.stderr
    again = await asyncio.to_thread(
        run, ops_env, "dlq", "replay", dlq, "--error-type", "RuntimeError", "--ledger", ledger
    )
    assert "replayed 0 record(s); 2 already replayed" in again.stderr
    back = await read(kafka_bootstrap, origin, 2)
    assert len(back) == 2, "replayed once, not twice"
    assert [header(list(r.headers), "aipx-event-id") for r in back] == ["ev-BTC-USDT0", "ev-BTC-USDT2"]
    assert all(not n.startswith("aipx-dlq-") for r in back for n, _ in r.headers)
    assert [header(list(r.headers), "aipx-replay-of") for r in back] == [
        f"kafka://{dlq}/0/0",
        f"kafka://{dlq}/0/2",
    ]
    assert TradingSignal.FromString(back[0].value).signal_id == "x"

    # The poison record, to another topic (e.g. a quarantine): --to.
    moved = await asyncio.to_thread(
        run, ops_env, "dlq", "replay", dlq, "--key", "ETH-USDT", "--to", other, "--ledger", ledger
    )
    assert "replayed 1 record(s)" in moved.stderr
    [quarantined] = await read(kafka_bootstrap, other, 1)
    assert quarantined.value == b"\x0a\xff\xff"
    entries = [json.loads(line) for line in (await asyncio.to_thread(Path(ledger).read_text)).splitlines()]
    assert [(e["source"], e["target"]) for e in entries] == [
        (f"kafka://{dlq}/0/0", origin),
        (f"kafka://{dlq}/0/2", origin),
        (f"kafka://{dlq}/0/1", other),
    ]


async def test_replay_s3_sends_the_records_of_aws_failure_objects_once(  # noqa: PLR0917 (fixtures)
    kafka_bootstrap: str,
    new_topic: Any,
    new_bucket: Any,
    s3_endpoint: Any,
    ops_env: dict[str, str],
    tmp_path: Path,
) -> None:
    target, bucket = await new_topic(1), await new_bucket()
    records = []
    for i in range(3):
        value, headers = signal_bytes(f"s3-{i}")
        records.append(
            MskRecord("trading-signals", 0, 40 + i, 1_700_000_000_000, b"BTC-USDT", value, headers)
        )
    client = s3_endpoint.client()
    key = "aws/lambda/esm/2026/12/04/failure-1.json"
    client.put_object(Bucket=bucket, Key=key, Body=aws_failure_object(records[:2], payload_as_string=True))
    client.put_object(
        Bucket=bucket,
        Key="aws/x/failure-2.json",
        Body=aws_failure_object(records[2:], payload_as_string=False),
    )
    client.put_object(Bucket=bucket, Key="aws/x/not-a-failure.json", Body=b"{}")
    ledger = str(tmp_path / "ledger.jsonl")
    args = ("dlq", "replay-s3", "--bucket", bucket, "--prefix", "aws/", "--to", target, "--ledger", ledger)
    first = await asyncio.to_thread(run, ops_env, *args)
    assert first.returncode == 1, "an unreadable object is reported in the exit code"
    assert "3 object(s): replayed 3 record(s); 0 already replayed; 1 unreadable" in first.stderr
    assert "s3 object aws/x/not-a-failure.json: no invocation payload" in first.stderr
    second = await asyncio.to_thread(run, ops_env, *args)
    assert "replayed 0 record(s); 3 already replayed" in second.stderr
    back = await read(kafka_bootstrap, target, 3)
    assert sorted(TradingSignal.FromString(r.value).signal_id for r in back) == ["s3-0", "s3-1", "s3-2"]
    assert {header(list(r.headers), "aipx-replay-of") for r in back} >= {
        f"s3://{bucket}/{key}#trading-signals-0@40"
    }


async def test_tail_decodes_a_topic_from_the_beginning_and_as_records_arrive(
    kafka_bootstrap: str, new_topic: Any, ops_env: dict[str, str]
) -> None:
    topic = await new_topic(2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        value, headers = signal_bytes("t-0")
        await (await producer.send(topic, value, key=b"BTC-USDT", headers=headers))
        proc = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
            [AIPX_OPS, "tail", topic, "--from-beginning", "--json", "--max", "2"],
            env=ops_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 180)
        value, headers = signal_bytes("t-1")
        await (await producer.send(topic, value, key=b"ETH-USDT", headers=headers))
        rest, err = await asyncio.wait_for(asyncio.to_thread(proc.communicate), 180)
    finally:
        await producer.stop()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in [first, *rest.splitlines()]]
    assert [line["payload"]["message"]["signal_id"] for line in lines] == ["t-0", "t-1"]
    assert lines[1]["key"] == "ETH-USDT" and lines[1]["headers"]["aipx-event-id"] == "ev-t-1"

    # A live tail (not from the beginning) stops cleanly on Ctrl-C (SIGINT).
    live = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
        [AIPX_OPS, "tail", topic], env=ops_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert live.stderr is not None
    started = await asyncio.wait_for(asyncio.to_thread(live.stderr.readline), 120)  # started, positioned
    assert started.decode().startswith(f"tailing {topic}")
    live.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(asyncio.to_thread(live.wait), 30) == 130


def test_a_missing_topic_or_broker_is_a_clear_error(ops_env: dict[str, str]) -> None:
    missing = run(ops_env, "dlq", "list", "no-such-topic.dlq")
    assert missing.returncode == 2 and "topic 'no-such-topic.dlq' does not exist" in missing.stderr
    down = run({**ops_env, "AIPX_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "dlq", "list", "x.dlq")
    assert down.returncode == 2 and "cannot reach Kafka at 127.0.0.1:1" in down.stderr
    bad = run(ops_env, "dlq", "list", "x.dlq", "--since", "yesterday")
    assert bad.returncode == 2 and "not a time: 'yesterday'" in bad.stderr
