"""The runner's settle() decisions, without I/O."""

from __future__ import annotations

import pytest
from aipx_runner.domain import Backoff, InvocationResult, PartitionState, Settlement, settle

BACKOFF = Backoff(base_s=1.0, max_s=5.0)


def run(
    offsets: list[int], failed: frozenset[int] | None, state: PartitionState, *, bisect_on_error: bool = False
) -> Settlement:
    return settle(offsets, failed, state, max_retries=2, bisect_on_error=bisect_on_error, backoff=BACKOFF)


def test_success_commits_past_the_last_record_and_clears_retries() -> None:
    state = PartitionState(position=3, attempts=2)
    d = run([3, 4, 5], frozenset(), state)
    assert (d.commit, d.seek, d.dead_letter) == (6, None, ())
    assert state == PartitionState()


def test_partial_failure_commits_below_the_lowest_failed_offset_and_seeks_back() -> None:
    state = PartitionState()
    d = run([10, 11, 12, 13], frozenset({12, 13}), state)
    assert (d.commit, d.seek, d.retry_in_s, d.attempts) == (12, 12, 1.0, 1)


def test_failure_of_the_first_record_commits_nothing() -> None:
    d = run([10, 11], frozenset({10}), PartitionState())
    assert (d.commit, d.seek) == (None, 10)


def test_retries_back_off_then_the_failed_records_go_to_the_on_failure_destination() -> None:
    state = PartitionState()
    delays = [run([5, 6, 7], frozenset({6}), state).retry_in_s for _ in range(2)]
    assert delays == [1.0, 2.0]
    final = run([6, 7], frozenset({6}), state)
    assert (final.dead_letter, final.commit, final.seek) == ((6,), 8, None)
    assert state == PartitionState()


def test_progress_starts_a_fresh_retry_budget() -> None:
    state = PartitionState()
    run([1, 2, 3], frozenset({2}), state)
    run([2, 3], frozenset({2}), state)
    d = run([2, 3, 4], frozenset({3}), state)  # 2 got through: new position, new budget
    assert (d.attempts, d.commit, d.dead_letter) == (1, 3, ())


def test_whole_failure_without_bisect_dead_letters_the_whole_batch_when_exhausted() -> None:
    state = PartitionState()
    for _ in range(2):
        assert run([1, 2, 3], None, state).seek == 1
    d = run([1, 2, 3], None, state)
    assert d.dead_letter == (1, 2, 3) and d.commit == 4


def test_bisect_halves_whole_failures_for_free_until_one_record_then_counts_retries() -> None:
    state = PartitionState()
    d = run([0, 1, 2, 3, 4], None, state, bisect_on_error=True)
    assert (d.window, d.seek, d.retry_in_s, d.attempts) == (3, 0, 0.0, 0)
    d = run([0, 1, 2], None, state, bisect_on_error=True)
    assert d.window == 2
    d = run([0, 1], None, state, bisect_on_error=True)
    assert d.window == 1
    d = run([0], None, state, bisect_on_error=True)
    assert (d.attempts, d.retry_in_s, d.window) == (1, 1.0, 1)
    run([0], None, state, bisect_on_error=True)
    d = run([0], None, state, bisect_on_error=True)
    assert d.dead_letter == (0,) and d.commit == 1 and d.window is None


def test_identifiers_outside_the_batch_are_ignored() -> None:
    d = run([5, 6], frozenset({99}), PartitionState())
    assert d.commit == 7 and d.seek is None


@pytest.mark.parametrize(
    "response",
    [
        "ok",
        {"batchItemFailures": [{"itemIdentifier": "abc"}]},
        {"batchItemFailures": [{"itemIdentifier": {"partition": "t-0"}}]},
        {"batchItemFailures": [{"itemIdentifier": {"partition": "t-0", "offset": "x"}}]},
    ],
)
def test_invalid_responses_fail_the_whole_batch(response: object) -> None:
    result = InvocationResult.from_response(response, ["t-0", "t-1"])
    assert result.failed == {"t-0": None, "t-1": None} and result.error


def test_valid_response_lists_failures_per_partition() -> None:
    resp = {
        "batchItemFailures": [
            {"itemIdentifier": {"partition": "t-0", "offset": 4}},
            {"itemIdentifier": {"partition": "t-0", "offset": 2}},
        ]
    }
    assert InvocationResult.from_response(resp, ["t-0", "t-1"]).failed == {"t-0": frozenset({2, 4})}
    assert InvocationResult.from_response(None, ["t-0"]).failed == {}
    assert InvocationResult.from_response({"batchItemFailures": []}, ["t-0"]).failed == {}


def test_backoff_is_exponential_and_capped() -> None:
    assert [Backoff(0.5, 3.0).delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_cli_offers_the_manifest_functions() -> None:
    from aipx_runner.__main__ import parse_args

    assert parse_args(["--function", "recorder", "--function", "strategy"]).functions == [
        "recorder",
        "strategy",
    ]
    assert parse_args([]).functions is None
    with pytest.raises(SystemExit):
        parse_args(["--function", "no-such-function"])


def test_config_from_the_manifest_with_overrides() -> None:
    from aipx_runner import RunnerConfig

    cfg = RunnerConfig.from_manifest(
        ["notification"],
        bootstrap_servers="example:9092",
        topics={"order-events": "t-orders", "order-events.dlq": "t-orders-dlq"},
        group_ids={"notification:order-events": "g1"},
        batching_window_s=0.1,
    )
    assert cfg.kafka.bootstrap_servers == "example:9092"
    orders, decisions = cfg.sources
    assert (orders.topic, orders.on_failure_topic, orders.group_id) == ("t-orders", "t-orders-dlq", "g1")
    assert (decisions.topic, decisions.group_id) == ("trading-decisions", "aipx-notification-decisions")
    assert orders.batching_window_s == decisions.batching_window_s == 0.1
    assert orders.auto_offset_reset == "latest" and orders.handler == "aipx_notification.handler.handler"
    recorder = RunnerConfig.from_manifest(["recorder"]).sources[0]
    assert recorder.auto_offset_reset == "earliest" and recorder.batch_size == 10_000
