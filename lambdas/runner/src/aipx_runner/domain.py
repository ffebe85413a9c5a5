"""What the event source mapping does after an invocation, per partition: commit, seek back, retry, bisect,
or give up and send records to the on-failure destination. Plain code, no I/O.

Semantics (those of an MSK event source mapping with ReportBatchItemFailures):

- success (no failure for the partition): commit past the partition's last record;
- failure: commit below the lowest failed offset `lo` (if that is progress) and seek back to `lo`;
- a handler that raised (or answered something that is not a partial batch response) failed every record;
- with `bisect_on_error`, a whole-batch failure of more than one record is split: the first half is retried
  alone (splits do not use up retries, as in AWS); single records and partial responses are retried as they
  are, each retry counting against `max_retries`, with exponential backoff;
- once `max_retries` is exhausted, the records that failed in the last attempt (all of them if it raised) go
  to the on-failure destination and the partition commits past that attempt;
- a retry budget belongs to a position: when the lowest failed offset moves (progress), it starts afresh.

In on-demand mode (AIPX_LAMBDA_ESM_MODE=on-demand, `EsmContract.ON_DEMAND`) AWS honours none of that: a
returned partial batch response counts as a success (the records it lists are committed past, i.e. lost),
and an invocation that raised is retried whole, without bisecting, until its records expire (here: forever,
with backoff). `contract(mode)` gives the settings `settle` runs with in each mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from aipx.lambda_kit.mode import ON_DEMAND, EsmMode
from aipx.msk import InvalidEventError, failed_offsets
from tenacity import RetryCallState, Retrying, wait_exponential

# On-demand mappings retry a failing batch until its records expire: no retry budget.
UNBOUNDED_RETRIES = 2**62


@dataclass
class PartitionState:
    """Retry bookkeeping of one partition between invocations."""

    position: int | None = None
    attempts: int = 0
    window: int | None = None

    def reset(self) -> None:
        self.position, self.attempts, self.window = None, 0, None


@dataclass(frozen=True)
class Backoff:
    """Exponential retry delay: base * 2**(attempt-1), capped (tenacity's `wait_exponential`, the retry
    library of the platform; the mapping schedules its retries itself, so only the wait is borrowed)."""

    base_s: float = 0.5
    max_s: float = 10.0

    @cached_property
    def _wait(self) -> wait_exponential:
        return wait_exponential(multiplier=self.base_s, max=self.max_s)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1 = the first retry)."""
        state = RetryCallState(_NO_RETRYING, None, (), {})
        state.attempt_number = max(1, attempt)
        return float(self._wait(state))


# The retry state a tenacity wait reads needs a retrying object; the mapping is its own retry loop.
_NO_RETRYING = Retrying()


@dataclass(frozen=True)
class Settlement:
    """The decision for one partition after an invocation."""

    commit: int | None = None
    seek: int | None = None
    retry_in_s: float | None = None
    dead_letter: tuple[int, ...] = ()
    window: int | None = None
    attempts: int = 0


@dataclass(frozen=True)
class InvocationResult:
    """Failed offsets per 'topic-partition' (None for a partition = every record failed)."""

    failed: Mapping[str, frozenset[int] | None] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def from_response(cls, response: Any, partitions: Sequence[str]) -> InvocationResult:
        """Read a handler's answer; anything but a valid partial batch response fails the whole batch."""
        if response is not None and not isinstance(response, Mapping):
            return cls.whole_failure(partitions, f"handler returned {type(response).__name__}, not a mapping")
        try:
            failed_offsets(response)  # validates every item identifier
        except (InvalidEventError, TypeError, ValueError) as exc:
            return cls.whole_failure(partitions, f"invalid partial batch response: {exc}")
        failed: dict[str, set[int]] = {}
        for item in (response or {}).get("batchItemFailures") or ():
            ident = item["itemIdentifier"]
            failed.setdefault(str(ident["partition"]), set()).add(int(ident["offset"]))
        return cls({tp: frozenset(offsets) for tp, offsets in failed.items()})

    @classmethod
    def whole_failure(cls, partitions: Sequence[str], error: str) -> InvocationResult:
        return cls(dict.fromkeys(partitions), error)


@dataclass(frozen=True)
class EsmContract:
    """What the mapping honours in a mode: partial responses, the retry budget, bisecting."""

    partial_responses: bool
    bounded_retries: bool
    bisect: bool

    def seen(self, result: InvocationResult) -> InvocationResult:
        """The invocation as the mapping sees it: without partial responses, only a raise is a failure."""
        if self.partial_responses or result.error or not result.failed:
            return result
        return InvocationResult()

    def max_retries(self, configured: int) -> int:
        return configured if self.bounded_retries else UNBOUNDED_RETRIES

    def bisect_on_error(self, configured: bool) -> bool:
        return configured and self.bisect


PROVISIONED_CONTRACT = EsmContract(partial_responses=True, bounded_retries=True, bisect=True)
ON_DEMAND_CONTRACT = EsmContract(partial_responses=False, bounded_retries=False, bisect=False)


def contract(mode: EsmMode) -> EsmContract:
    """The contract of an event source mapping mode."""
    return ON_DEMAND_CONTRACT if mode == ON_DEMAND else PROVISIONED_CONTRACT


def settle(
    offsets: Sequence[int],
    failed: frozenset[int] | None,
    state: PartitionState,
    *,
    max_retries: int,
    bisect_on_error: bool,
    backoff: Backoff,
) -> Settlement:
    """Decide commit/seek/retry/dead-letter for one partition's records (`offsets`, ascending) of a batch.

    `failed` is the set of offsets reported failed (empty: all succeeded; None: the whole batch failed).
    Updates `state` in place.
    """
    if not offsets:
        return Settlement()
    first, last = offsets[0], offsets[-1]
    if failed is not None:
        # Identifiers naming records that were not in this batch carry no information; ignore them.
        failed = frozenset(o for o in failed if first <= o <= last)
        if not failed:
            state.reset()
            return Settlement(commit=last + 1)
    lo = first if failed is None else min(failed)
    if state.position != lo:
        state.position, state.attempts, state.window = lo, 0, None
    commit = lo if lo > first else None
    pending = [o for o in offsets if o >= lo]
    if failed is None and bisect_on_error and len(pending) > 1:
        state.window = (len(pending) + 1) // 2
        return Settlement(commit=commit, seek=lo, retry_in_s=0.0, window=state.window)
    state.attempts += 1
    if state.attempts > max_retries:
        doomed = tuple(pending) if failed is None else tuple(sorted(failed))
        attempts = state.attempts
        state.reset()
        return Settlement(commit=last + 1, dead_letter=doomed, attempts=attempts)
    return Settlement(
        commit=commit,
        seek=lo,
        retry_in_s=backoff.delay(state.attempts),
        window=state.window,
        attempts=state.attempts,
    )
