"""Where records land in the lake: Hive-style directories and offset-named files. Plain code, no I/O.

    <prefix>topic=<topic>/date=YYYY-MM-DD/hour=HH/[symbol=<symbol>/]<topic>-<partition>-<first>-<last>.parquet

Date and hour are the record's event time (UTC). A file holds records of ONE Kafka partition and ONE
directory, and every record of that partition and directory whose offset lies in [first, last]: so the name
says exactly which records are durable, a redelivered batch rewrites the same object, and after a crash the
objects already in a directory tell which redelivered records to skip (see `DurableIndex`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

NS_PER_HOUR = 3600 * 1_000_000_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, order=True, slots=True)
class Directory:
    """One Hive partition directory of a topic."""

    topic: str
    hour: int  # event hours since the epoch
    symbol: str | None = None

    @property
    def date(self) -> str:
        return datetime.fromtimestamp(self.hour * 3600, tz=UTC).strftime("%Y-%m-%d")

    @property
    def hour_of_day(self) -> int:
        return self.hour % 24

    def path(self, prefix: str = "") -> str:
        """The directory's key prefix, ending with '/'."""
        base = f"{prefix}topic={self.topic}/date={self.date}/hour={self.hour_of_day:02d}/"
        if self.symbol is not None:
            base += f"symbol={safe_segment(self.symbol)}/"
        return base


def safe_segment(value: str) -> str:
    """A path segment made of [A-Za-z0-9._-] only (anything else -> '_'); empty -> '_'."""
    return _UNSAFE.sub("_", value) or "_"


def file_name(topic: str, partition: int, first: int, last: int) -> str:
    """'<topic>-<partition>-<first>-<last>.parquet'."""
    return f"{topic}-{partition}-{first}-{last}.parquet"


@dataclass(frozen=True, slots=True)
class FileRange:
    """What a lake file's name says: records [first, last] of one partition."""

    topic: str
    partition: int
    first: int
    last: int


def parse_file_name(name: str) -> FileRange | None:
    """The inverse of `file_name` (None for a name that is not one of ours)."""
    if not name.endswith(".parquet"):
        return None
    parts = name[: -len(".parquet")].rsplit("-", 3)
    if len(parts) != 4:
        return None
    topic, partition, first, last = parts
    if not (partition.isdigit() and first.isdigit() and last.isdigit()) or int(first) > int(last):
        return None
    return FileRange(topic, int(partition), int(first), int(last))


class DurableIndex:
    """Which offsets of which partition are already in which directory: learned from our own uploads and
    from listings of the store (re-read before every flush, so files another instance wrote after a
    rebalance are seen too)."""

    def __init__(self) -> None:
        self._ranges: dict[tuple[str, int, Directory], set[tuple[int, int]]] = {}

    def learn_listing(self, directory: Directory, names: list[str]) -> None:
        """Record the files named in a listing of `directory`."""
        for name in names:
            parsed = parse_file_name(name)
            if parsed is not None and parsed.topic == directory.topic:
                self.add(directory, parsed.partition, parsed.first, parsed.last)

    def add(self, directory: Directory, partition: int, first: int, last: int) -> None:
        self._ranges.setdefault((directory.topic, partition, directory), set()).add((first, last))

    def covers(self, directory: Directory, partition: int, offset: int) -> bool:
        """Whether a file of `directory` already holds this partition's record at `offset`."""
        return any(a <= offset <= b for a, b in self._ranges.get((directory.topic, partition, directory), ()))

    def covering(
        self, directory: Directory, partition: int, lo: int, hi: int
    ) -> Callable[[int], bool] | None:
        """`covers` for one directory and partition, for offsets in [lo, hi], as a function of the offset;
        None when no known file of theirs overlaps [lo, hi] (nothing is covered: callers skip the per-record
        check, the usual case once the files written so far lie below the new records)."""
        ranges = tuple(
            (a, b)
            for a, b in self._ranges.get((directory.topic, partition, directory), ())
            if a <= hi and b >= lo
        )
        if not ranges:
            return None
        return lambda offset: any(a <= offset <= b for a, b in ranges)

    def forget_before(self, hour: int) -> None:
        """Drop knowledge of directories older than `hour` (bounded memory in long-lived processes)."""
        for key in [k for k in self._ranges if k[2].hour < hour]:
            del self._ranges[key]
