"""The on-demand attempt counter against the real Redis: counts shared by every instance of a function, a
crash pinned on the record that was running, and the in-process fallback when Redis does not answer.
(Each `AttemptCounter` here stands for another instance; the runner tests crash real processes.)"""

from __future__ import annotations

import logging
import socket
import uuid

import pytest
import redis
from aipx.lambda_kit import AttemptCounter

from .test_kit_unit import envelope_record

pytestmark = pytest.mark.integration

TOPIC = "market-data-raw"
R0, R1, R2 = ((TOPIC, 0, n) for n in range(3))


def function() -> str:
    return f"attempts-{uuid.uuid4().hex[:6]}"


def test_failed_attempts_are_shared_by_instances_expire_and_are_forgotten_on_success(redis_url: str) -> None:
    name = function()
    first = AttemptCounter(name, url=redis_url, ttl_s=600)
    first.begin([R0, R1])
    assert first.durable and first.finish([R1]) == {R1: 1}
    second = AttemptCounter(name, url=redis_url, ttl_s=600)  # another warm instance, or a cold start
    second.begin([R0, R1])
    assert (second.prior(R0), second.prior(R1)) == (0, 1)
    assert second.finish([R1]) == {R1: 2}
    store = redis.Redis.from_url(redis_url)
    key = f"aipx:attempts:{{{name}:{TOPIC}:0}}"  # one hash per partition, a field per failing offset
    assert store.keys(f"aipx:attempts:{{{name}:*") == [key.encode()]
    assert 0 < store.ttl(key) <= 600 and store.hgetall(key) == {b"1": b"2"}
    third = AttemptCounter(name, url=redis_url)
    third.begin([R0, R1])
    assert third.finish([]) == {}  # R1 succeeded: its count and the in-flight marker are gone
    assert store.keys(f"aipx:attempts:{{{name}:*") == []


def test_a_crash_is_pinned_on_the_record_that_was_running(redis_url: str) -> None:
    name = function()
    AttemptCounter(name, url=redis_url).begin([R0, R1, R2])  # ... and the process dies inside the batch
    careful = AttemptCounter(name, url=redis_url)
    careful.begin([R0, R1, R2])
    assert [careful.prior(r) for r in (R0, R1, R2)] == [0, 0, 0]  # the first crash names no record
    careful.starting(envelope_record(0))
    careful.starting(envelope_record(1))  # ... and dies again, on offset 1
    after = AttemptCounter(name, url=redis_url)
    after.begin([R0, R1, R2])
    # Both crashes are offset 1's: the first was somewhere in the batch it was part of, the second on it.
    assert [after.prior(r) for r in (R0, R1, R2)] == [0, 2, 0]
    after.starting(envelope_record(1))  # dies a third time
    last = AttemptCounter(name, url=redis_url)
    last.begin([R1, R2])
    assert last.prior(R1) == 3
    last.forget([R1])  # dead-lettered
    assert last.finish([]) == {}
    assert redis.Redis.from_url(redis_url).keys(f"aipx:attempts:{{{name}:*") == []


def test_without_redis_the_batch_counts_in_this_process_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    counter = AttemptCounter(function(), url=url)
    with caplog.at_level(logging.WARNING, logger="aipx.lambda_kit.attempts"):
        counter.begin([R0, R1])
        counter.starting(envelope_record(0))  # no Redis: nothing to write, nothing raised
        assert not counter.durable and counter.finish([R1]) == {R1: 1}
    assert "counting in this process only" in caplog.text and caplog.text.count("unavailable") == 1
    counter.begin([R0, R1])
    assert counter.prior(R1) == 1
    assert counter.finish([R1]) == {R1: 2}
    counter.begin([R1])
    assert counter.finish([]) == {}
    counter.begin([R1])
    assert counter.prior(R1) == 0
