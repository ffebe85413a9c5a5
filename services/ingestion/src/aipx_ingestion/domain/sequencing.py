"""Per-stream sequence tracking: gap and duplicate detection, and the per-instrument source sequence."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    """How an id relates to the stream so far."""

    NEXT = "next"
    GAP = "gap"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Check:
    verdict: Verdict
    expected: int = 0


_NEXT = Check(Verdict.NEXT)
_DUPLICATE = Check(Verdict.DUPLICATE)


class ContiguousIds:
    """A stream whose numeric ids increase by one per item (Binance trade ids, aggregate trade ids).

    Items may cover a range (first..last). Anything ending at or before the last seen id is a duplicate
    (e.g. replayed after a reconnect); a first id beyond last + 1 is a gap (items were lost upstream).
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: int | None = None

    def check(self, first: int, last: int | None = None) -> Check:
        """Classify an item covering ids first..last and, unless it is a duplicate, advance past it."""
        end = first if last is None else last
        if self.last is None:
            self.last = end
            return _NEXT
        if end <= self.last:
            return _DUPLICATE
        expected = self.last + 1
        self.last = end
        if first > expected:
            return Check(Verdict.GAP, expected)
        return _NEXT


class RecentIds:
    """Duplicate detection for opaque ids (e.g. Bybit trade UUIDs): remembers the last `capacity` ids."""

    __slots__ = ("_capacity", "_seen")

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def add(self, item_id: str) -> bool:
        """Remember `item_id`; False if it was already seen (a duplicate)."""
        if item_id in self._seen:
            return False
        self._seen[item_id] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return True


class SourceSequencer:
    """The envelope's source_sequence for one (venue, symbol): strictly increasing, contiguous per run.

    It starts at a value derived from the process start time (epoch microseconds), so sequences keep
    increasing across restarts of the service as long as it published less than one event per microsecond.
    """

    __slots__ = ("_next",)

    def __init__(self, start: int) -> None:
        if start < 1:
            raise ValueError("source sequence must start at 1 or above")
        self._next = start

    def next(self) -> int:
        value = self._next
        self._next = value + 1
        return value

    @property
    def peek(self) -> int:
        """The value the next call to next() returns."""
        return self._next
