"""Where records land in the lake: Hive-style directories and offset-named files. Plain code, no I/O.

    <prefix>topic=<topic>/date=YYYY-MM-DD/hour=HH/[symbol=<symbol>/]<topic>-<partition>-<first>-<last>.<inc>.parquet

Date and hour are the record's event time (UTC). A file holds records of ONE Kafka partition of ONE
incarnation of its topic and ONE directory, and every record of that partition and directory whose offset
lies in [first, last]: so the name says exactly which records are durable, a redelivered batch rewrites the
same object, and after a crash the objects already in a directory tell which redelivered records to skip (see
`DurableIndex`). `<inc>` is the topic's incarnation: the first 16 hex digits of its Kafka topic id. A topic
deleted and re-created gets a new id and starts its offsets at 0 again; its new records are not mistaken
for the old incarnation's files of the same hour. Files without `.<inc>` (written before incarnations, or
by a recorder that has no topic ids) belong to an unknown incarnation of their own.
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


_INCARNATION = re.compile(r"^[0-9a-f]{16}$")


def incarnation_of(topic_id: str) -> str:
    """The incarnation tag of a Kafka topic id (UUID text): its first 16 hex digits."""
    return topic_id.replace("-", "").lower()[:16]


def file_name(topic: str, partition: int, first: int, last: int, incarnation: str | None = None) -> str:
    """'<topic>-<partition>-<first>-<last>.<incarnation>.parquet' ('...-<last>.parquet' without one)."""
    tag = f".{incarnation}" if incarnation else ""
    return f"{topic}-{partition}-{first}-{last}{tag}.parquet"


@dataclass(frozen=True, slots=True)
class FileRange:
    """What a lake file's name says: records [first, last] of one partition of one topic incarnation."""

    topic: str
    partition: int
    first: int
    last: int
    incarnation: str | None = None


def parse_file_name(name: str) -> FileRange | None:
    """The inverse of `file_name` (None for a name that is not one of ours)."""
    if not name.endswith(".parquet"):
        return None
    stem = name[: -len(".parquet")]
    incarnation: str | None = None
    head, dot, tail = stem.rpartition(".")
    if dot and _INCARNATION.match(tail):
        stem, incarnation = head, tail
    parts = stem.rsplit("-", 3)
    if len(parts) != 4:
        return None
    topic, partition, first, last = parts
    if not (partition.isdigit() and first.isdigit() and last.isdigit()) or int(first) > int(last):
        return None
    return FileRange(topic, int(partition), int(first), int(last), incarnation)


class DurableIndex:
    """Which offsets of which partition of which topic incarnation are already in which directory: learned
    from our own uploads and from listings of the store (re-read before every flush, so files another
    instance wrote after a rebalance are seen too). Keyed by the incarnation (topic id), not the file name
    alone: a re-created topic's records are never taken for the old topic's."""

    def __init__(self) -> None:
        self._ranges: dict[tuple[str, str | None, int, Directory], set[tuple[int, int]]] = {}

    def learn_listing(self, directory: Directory, names: list[str]) -> None:
        """Record the files named in a listing of `directory`."""
        for name in names:
            parsed = parse_file_name(name)
            if parsed is not None and parsed.topic == directory.topic:
                self.add(directory, parsed.partition, parsed.first, parsed.last, parsed.incarnation)

    def add(
        self, directory: Directory, partition: int, first: int, last: int, incarnation: str | None = None
    ) -> None:
        key = (directory.topic, incarnation, partition, directory)
        self._ranges.setdefault(key, set()).add((first, last))

    def covers(
        self, directory: Directory, partition: int, offset: int, incarnation: str | None = None
    ) -> bool:
        """Whether a file of `directory` already holds this partition's record at `offset`."""
        key = (directory.topic, incarnation, partition, directory)
        return any(a <= offset <= b for a, b in self._ranges.get(key, ()))

    def covering(
        self, directory: Directory, partition: int, lo: int, hi: int, incarnation: str | None = None
    ) -> Callable[[int], bool] | None:
        """`covers` for one directory and partition, for offsets in [lo, hi], as a function of the offset;
        None when no known file of theirs overlaps [lo, hi] (nothing is covered: callers skip the per-record
        check, the usual case once the files written so far lie below the new records)."""
        key = (directory.topic, incarnation, partition, directory)
        ranges = tuple((a, b) for a, b in self._ranges.get(key, ()) if a <= hi and b >= lo)
        if not ranges:
            return None
        return lambda offset: any(a <= offset <= b for a, b in ranges)

    def forget_before(self, hour: int) -> None:
        """Drop knowledge of directories older than `hour` (bounded memory in long-lived processes)."""
        for key in [k for k in self._ranges if k[3].hour < hour]:
            del self._ranges[key]
