"""ParquetRecorder: Kafka records -> Parquet (zstd) files in the lake, every consumed record exactly once.

Durability contract (MSK partial batch response + the mapping's commit semantics)
    A record is reported processed only once the file holding it is uploaded (S3 acknowledged the PUT) or it
    was dead-lettered. Records still buffered in memory are listed in `batchItemFailures`, so the mapping
    commits below them and delivers them again: a crash (or a cold start) loses nothing, the next instance
    rebuilds the buffer from the redelivered records. Records redelivered after their upload (crash between
    upload and commit) are recognised and skipped: file names carry the partition and first/last offset and a
    file holds every record of its partition and directory in that range (aipx_recorder.layout), so the
    partition's files already in a directory (listed before every flush) say which offsets are durable.
    The lake holds each consumed record exactly once, whatever the batch boundaries of the redelivery, and
    also after a rebalance (another instance's files are in the listing too).

Buffering across invocations (rotation)
    Each Kafka partition has its own buffer. At the end of an invocation a partition's buffer is flushed
    (one file per directory = event date/hour [/symbol]) when any of these holds, else it is held:
      - records >= max_records, or value bytes >= max_bytes;
      - event time: the hour of its oldest on-time record has closed (the partition's event time passed the
        hour's end + late_grace_s): hourly files close with their hour;
      - age: its oldest record has waited max_age_s;
      - idle: the invocation brought no new record for the partition (the source is quiet, flush now);
      - backlog: the invocation was full (batch size or payload limit reached): holding would only make the
        next batches redeliver held records instead of new ones;
      - retry budget: it was held max_holds invocations in a row (a held record counts as a failed delivery
        for the mapping, whose retries are bounded by max_retries: we always flush before they run out);
      - first delivery of the partition to this process (after a cold start the mapping's retry count for
        it is unknown), or the first since another consumer moved the partition on (a rebalance).
    Late data (a record whose hour had already closed when it arrived) never triggers a flush: it waits in
    the buffer and is written into its own (closed) hour at the partition's next flush, so late stragglers
    ride along with regular flushes instead of each forcing a tiny file into a closed hour.

Bad input
    An undecodable record goes to the topic's DLQ with the error in headers (aipx.lambda_kit.dead_letter);
    so does a record whose aipx-event-time-ns header is not an int64 timestamp (e.g. >= 2^63), and a
    Decimal that decimal128(38, 18) cannot hold exactly (aipx.money.parse_decimal refuses it before
    pyarrow's cast sees it), never rounded.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
from aipx.functions import EventSource, manifest
from aipx.msk import MAX_EVENT_BYTES, MskRecord, item_failure, records_of
from aipx.numbers import InvalidNumberError
from aipx.serde import HEADER_EVENT_ID, HEADER_EVENT_TIME, DecodeError, event_time_header, message_type
from aipx.topics import catalogue
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from aipx_recorder.adapters.s3 import ObjectStore
from aipx_recorder.layout import NS_PER_HOUR, Directory, DurableIndex, file_name
from aipx_recorder.schema import ValueOutOfRangeError, arrow_schema, to_table
from aipx_recorder.settings import RotationPolicy

log = logging.getLogger(__name__)

DeadLetter = Callable[[MskRecord, BaseException, str], None]
"""(record, error, dlq topic) -> None: sends a record to a dead-letter topic (raises if it could not)."""

FUNCTION = "recorder"
# An event within this much of the payload limit had no room for another batch of typical records.
_FULL_MARGIN_BYTES = 256 * 1024
# Per-row record metadata. _timestamp is the Kafka record timestamp: the broker's append time on the
# catalogue topics (LogAppendTime); _event_time is the aipx-event-time-ns header (the event's own time).
META_FIELDS = [
    pa.field("_partition", pa.int32(), nullable=False),
    pa.field("_offset", pa.int64(), nullable=False),
    pa.field("_timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("_event_time", pa.timestamp("ns", tz="UTC"), nullable=False),
    pa.field("_event_id", pa.string()),
    pa.field("_key", pa.binary()),
]


def lake_schema(descriptor: Descriptor) -> pa.Schema:
    """Schema of a lake file: the message's columns, then the Kafka/record metadata columns."""
    base = arrow_schema(descriptor)
    return pa.schema([*base, *META_FIELDS], metadata=base.metadata)


@dataclass(frozen=True)
class TopicInfo:
    """How the recorder treats one (actual) topic."""

    topic: str
    logical: str
    message: type[Message]
    dlq: str
    batch_size: int
    max_retries: int


@dataclass(slots=True)
class Pending:
    """A decoded record waiting in a buffer."""

    record: MskRecord
    message: Message
    event_time_ns: int
    directory: Directory
    event_id: str | None = None


@dataclass
class PartitionBuffer:
    """What the recorder holds of one partition between invocations."""

    topic: str
    partition: int
    pending: list[Pending] = field(default_factory=list)
    offsets: set[int] = field(default_factory=set)
    dead: set[int] = field(default_factory=set)
    handled_below: int = 0
    max_seen: int = -1
    size: int = 0
    holds: int = 0
    deliveries: int = 0
    oldest_at: float | None = None
    watermark_ns: int = 0
    open_hour: int | None = None

    def knows(self, offset: int) -> bool:
        """Already durable, dead-lettered or buffered (a redelivery)."""
        return offset < self.handled_below or offset in self.offsets or offset in self.dead

    def add(self, item: Pending, late: bool, now: float) -> None:
        self.pending.append(item)
        self.offsets.add(item.record.offset)
        self.size += len(item.record.value or b"")
        if self.oldest_at is None:
            self.oldest_at = now
        hour = item.directory.hour
        if not late and (self.open_hour is None or hour < self.open_hour):
            self.open_hour = hour

    def handled_all(self) -> None:
        """Everything seen so far is durable or dead-lettered."""
        self.handled_below = max(self.handled_below, self.max_seen + 1)
        self.pending, self.offsets, self.size = [], set(), 0
        self.dead = {o for o in self.dead if o >= self.handled_below}
        self.holds, self.oldest_at, self.open_hour = 0, None, None


@dataclass(frozen=True, slots=True)
class _File:
    directory: Directory
    key: str
    body: bytes
    first: int
    last: int
    records: int


@dataclass(frozen=True)
class WrittenFile:
    key: str
    partition: int
    first: int
    last: int
    records: int
    bytes: int


@dataclass
class RecordResult:
    """The outcome of one invocation."""

    failed: list[MskRecord] = field(default_factory=list)
    written: list[WrittenFile] = field(default_factory=list)
    dead_lettered: int = 0
    held: int = 0
    already_durable: int = 0
    flush_reasons: dict[str, list[str]] = field(default_factory=dict)

    def response(self) -> dict[str, list[dict[str, Any]]]:
        """The partial batch response: every record of the event that is not durable yet."""
        return {"batchItemFailures": [item_failure(r) for r in self.failed]}


def _estimated_event_bytes(records: Sequence[MskRecord]) -> int:
    """The event's size from a sample of its records (a heuristic for "the event was full")."""
    if not records:
        return 0
    step = max(1, len(records) // 64)
    sample = records[::step]
    return sum(r.event_bytes for r in sample) * len(records) // len(sample)


def _by_directory(buf: PartitionBuffer) -> dict[Directory, list[Pending]]:
    """The buffer's records per directory, in buffer order."""
    groups: dict[Directory, list[Pending]] = {}
    current: Directory | None = None
    items: list[Pending] = []
    for item in buf.pending:
        if item.directory is not current:  # runs share one Directory object (ParquetRecorder._directory)
            current = item.directory
            items = groups.setdefault(current, [])
        items.append(item)
    return groups


def buf_key(buf: PartitionBuffer) -> tuple[str, int]:
    return buf.topic, buf.partition


def event_time_ns(record: MskRecord) -> int:
    """The aipx-event-time-ns header, else the Kafka timestamp."""
    return event_time_and_id(record)[0]


def event_time_and_id(record: MskRecord) -> tuple[int, str | None]:
    """(event time: the aipx-event-time-ns header, else the Kafka timestamp; the aipx-event-id header)."""
    time_text: bytes | None = None
    event_id: bytes | None = None
    for name, value in record.headers:
        if name == HEADER_EVENT_TIME:
            time_text = value
        elif name == HEADER_EVENT_ID:
            event_id = value
    ident = event_id.decode("utf-8", errors="replace") if event_id is not None else None
    if time_text is not None:  # present: it must be an int64 timestamp (InvalidNumberError: dead-lettered)
        return event_time_header(time_text), ident
    return record.timestamp_ms * 1_000_000, ident


@cache
def _recorder_sources() -> dict[str, EventSource]:
    return {s.topic: s for s in manifest().get(FUNCTION).event_sources}


class ParquetRecorder:
    """Buffers records per partition and writes them as Parquet files to an object store."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        policy: RotationPolicy | None = None,
        dead_letter: DeadLetter | None = None,
        topics: Mapping[str, str] | None = None,
        dlqs: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.policy = policy or RotationPolicy()
        self._dead_letter = dead_letter or _kafka_dead_letter
        self._topics = dict(topics or {})
        self._dlqs = dict(dlqs or {})
        self._clock = clock
        self._info: dict[str, TopicInfo] = {}
        self.buffers: dict[tuple[str, int], PartitionBuffer] = {}
        self.index = DurableIndex()
        self._directories: dict[tuple[str, int, str | None], Directory] = {}
        self._pool = ThreadPoolExecutor(
            max_workers=self.policy.upload_concurrency, thread_name_prefix="recorder"
        )
        self._lock = threading.Lock()

    def topic_info(self, topic: str) -> TopicInfo:
        """Payload type, DLQ and event source settings of `topic` (actual name, maybe a test alias)."""
        info = self._info.get(topic)
        if info is None:
            logical = self._topics.get(topic, topic)
            spec = catalogue().get(logical)
            source = _recorder_sources().get(logical)
            if source is None:
                raise KeyError(f"the recorder has no event source for topic {logical!r} in the manifest")
            info = TopicInfo(
                topic=topic,
                logical=logical,
                message=message_type(spec.payload),
                dlq=self._dlqs.get(topic) or catalogue().dlq_for(logical).name,
                batch_size=source.batch_size,
                max_retries=source.max_retries,
            )
            self._info[topic] = info
        return info

    def process_event(self, event: Mapping[str, Any]) -> RecordResult:
        """Handle one MSK invocation event (aipx.msk.InvalidEventError if it is not one)."""
        return self.process(records_of(event))

    def process(self, records: Sequence[MskRecord]) -> RecordResult:
        """Buffer the records, flush what the policy says, and report what is not durable yet."""
        with self._lock:  # one invocation at a time, as in Lambda
            return self._process(records)

    def _process(self, records: Sequence[MskRecord]) -> RecordResult:
        now = self._clock()
        result = RecordResult()
        by_partition: dict[tuple[str, int], list[MskRecord]] = {}
        for record in records:
            by_partition.setdefault((record.topic, record.partition), []).append(record)
        # A full event (batch size reached, or the payload limit nearly so): the source has a backlog.
        per_topic: dict[str, int] = {}
        for (topic, _), recs in by_partition.items():
            per_topic[topic] = per_topic.get(topic, 0) + len(recs)
        payload_full = _estimated_event_bytes(records) >= MAX_EVENT_BYTES - _FULL_MARGIN_BYTES

        to_flush: list[PartitionBuffer] = []
        for (topic, partition), recs in by_partition.items():
            info = self.topic_info(topic)
            buf = self.buffers.setdefault((topic, partition), PartitionBuffer(topic, partition))
            if buf.deliveries and not buf.pending and recs[0].offset > buf.handled_below:
                # Someone else moved this partition on since we last had it (a rebalance): what we knew
                # about it and about the lake's directories may be stale. Start over as after a cold start.
                buf = self.buffers[(topic, partition)] = PartitionBuffer(topic, partition)
            first_delivery = buf.deliveries == 0
            buf.deliveries += 1
            gap = bool(buf.pending) and recs[0].offset > buf.pending[0].record.offset
            new = self._take(buf, recs, info, now, result)
            backlog = payload_full or per_topic[topic] >= info.batch_size
            reasons = self._flush_reasons(
                buf, info, new=new, first=first_delivery, backlog=backlog, gap=gap, now=now
            )
            if not buf.pending:
                buf.handled_all()
            elif reasons:
                result.flush_reasons[f"{topic}-{partition}"] = reasons
                to_flush.append(buf)
            else:
                buf.holds += 1
        self._flush(to_flush, result)
        for (topic, partition), recs in by_partition.items():
            buf = self.buffers[(topic, partition)]
            held = [r for r in recs if r.offset in buf.offsets]
            result.failed.extend(held)
            result.held += len(held)
        return result

    def _take(
        self,
        buf: PartitionBuffer,
        records: list[MskRecord],
        info: TopicInfo,
        now: float,
        result: RecordResult,
    ) -> int:
        # Hot loop (every record): buffer state and policy read into locals once per partition, and the
        # directory of the previous record reused while the hour and symbol stay the same.
        grace_ns = int(self.policy.late_grace_s * 1e9)
        by_symbol = self.policy.partition_by_symbol
        message_type = info.message
        handled_below, offsets, dead = buf.handled_below, buf.offsets, buf.dead
        last: tuple[int, str | None] | None = None
        directory: Directory | None = None
        new = 0
        top = max((r.offset for r in records), default=-1)
        buf.max_seen = max(buf.max_seen, top)
        for record in records:
            offset = record.offset
            if offset < handled_below or offset in offsets or offset in dead:  # buf.knows(offset)
                continue
            new += 1
            try:
                message = record.decode(message_type)
                et, event_id = event_time_and_id(record)
            except (DecodeError, InvalidNumberError) as exc:
                self._dead_letter(record, exc, info.dlq)
                dead.add(offset)
                result.dead_lettered += 1
                continue
            hour = et // NS_PER_HOUR
            late = buf.watermark_ns >= (hour + 1) * NS_PER_HOUR + grace_ns
            buf.watermark_ns = max(buf.watermark_ns, et)
            symbol = getattr(message, "symbol", None) if by_symbol else None
            if not isinstance(symbol, str):
                symbol = None
            if directory is None or last != (hour, symbol):
                last = (hour, symbol)
                directory = self._directory(record.topic, hour, symbol)
            buf.add(Pending(record, message, et, directory, event_id), late, now)
        return new

    def _directory(self, topic: str, hour: int, symbol: str | None) -> Directory:
        key = (topic, hour, symbol)
        directory = self._directories.get(key)
        if directory is None:
            if len(self._directories) > 10_000:
                self._directories.clear()
            directory = self._directories[key] = Directory(topic, hour, symbol)
        return directory

    def _flush_reasons(
        self,
        buf: PartitionBuffer,
        info: TopicInfo,
        *,
        new: int,
        first: bool,
        backlog: bool,
        gap: bool,
        now: float,
    ) -> list[str]:
        p = self.policy
        max_holds = p.max_holds if p.max_holds is not None else max(0, info.max_retries - 1)
        grace_ns = int(p.late_grace_s * 1e9)
        checks = {
            "records": len(buf.pending) >= p.max_records,
            "bytes": buf.size >= p.max_bytes,
            "hour-closed": buf.open_hour is not None
            and buf.watermark_ns >= (buf.open_hour + 1) * NS_PER_HOUR + grace_ns,
            "age": buf.oldest_at is not None and now - buf.oldest_at >= p.max_age_s,
            "idle": new == 0,
            "backlog": backlog,
            "holds": buf.holds >= max_holds,
            "first-delivery": first,
            "gap": gap,
        }
        return [name for name, hit in checks.items() if hit]

    # --- writing ------------------------------------------------------------------------------------------

    def _flush(self, buffers: list[PartitionBuffer], result: RecordResult) -> None:
        """Encode every buffer's files here (CPU: one thread, no GIL contention), upload them all at once
        (I/O: in parallel); a buffer is handled once all of its files are stored."""
        try:
            self._refresh_index(buffers)
        except Exception:
            for buf in buffers:  # cannot tell what is durable: keep everything unacknowledged, retry later
                buf.holds += 1
            return
        uploads: list[tuple[PartitionBuffer, list[_File]]] = []
        for buf in buffers:
            try:
                files, dead, durable = self._prepare(buf)
            except Exception:
                log.exception("flush of %s-%d failed; its records stay unacknowledged", *buf_key(buf))
                buf.holds += 1
                continue
            result.dead_lettered += dead
            result.already_durable += durable
            uploads.append((buf, files))
        futures = [
            (buf, [(f, self._pool.submit(self.store.put, f.key, f.body)) for f in files])
            for buf, files in uploads
        ]
        for buf, puts in futures:
            stored = True
            for f, future in puts:
                try:
                    future.result()
                except Exception:
                    log.exception("upload of %s failed; its records stay unacknowledged", f.key)
                    stored = False
                    continue
                self.index.add(f.directory, buf.partition, f.first, f.last)
                result.written.append(
                    WrittenFile(f.key, buf.partition, f.first, f.last, f.records, len(f.body))
                )
            if stored:
                buf.handled_all()
            else:
                buf.holds += 1

    def _refresh_index(self, buffers: list[PartitionBuffer]) -> None:
        """List, in parallel, the files each flushing partition already has in the directories it writes."""
        wanted = {
            (buf.topic, buf.partition, directory) for buf in buffers for directory in _by_directory(buf)
        }
        listings = []
        for topic, partition, directory in wanted:
            start = f"{topic}-{partition}-"
            prefix = directory.path(self.policy.prefix) + start
            listings.append((directory, start, self._pool.submit(self.store.list_names, prefix)))
        for directory, start, future in listings:
            try:
                names = future.result()
            except Exception:
                log.exception("listing %s failed; its partition is not flushed now", directory.path())
                raise
            self.index.learn_listing(directory, [start + name for name in names])

    def _prepare(self, buf: PartitionBuffer) -> tuple[list[_File], int, int]:
        """The files of a buffer, one per directory, without the records already in the lake; returns
        (files, records dead-lettered, records already durable)."""
        info = self.topic_info(buf.topic)
        files: list[_File] = []
        dead = durable = 0
        for directory, items in sorted(_by_directory(buf).items()):
            prefix = directory.path(self.policy.prefix)
            offsets = [i.record.offset for i in items]
            covers = self.index.covering(directory, buf.partition, min(offsets), max(offsets))
            keep = items if covers is None else [i for i in items if not covers(i.record.offset)]
            durable += len(items) - len(keep)
            body: bytes | None = None
            while keep and body is None:
                try:
                    body = encode_parquet(cast(Descriptor, info.message.DESCRIPTOR), keep)
                except ValueOutOfRangeError as exc:
                    bad = {keep[row].record.offset for row in exc.rows}
                    for item in keep:
                        if item.record.offset in bad:
                            self._dead_letter(item.record, exc, info.dlq)
                            dead += 1
                    keep = [i for i in keep if i.record.offset not in bad]
            if not keep or body is None:
                continue
            first, last = keep[0].record.offset, keep[-1].record.offset
            key = prefix + file_name(buf.topic, buf.partition, first, last)
            files.append(_File(directory, key, body, first, last, len(keep)))
        return files, dead, durable

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def encode_parquet(descriptor: Descriptor, items: Sequence[Pending]) -> bytes:
    """The records as one Parquet file (zstd): message columns plus metadata columns."""
    table = lake_table(descriptor, items)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=max(1, len(items)))
    return sink.getvalue()


def lake_table(descriptor: Descriptor, items: Sequence[Pending]) -> pa.Table:
    """The Arrow table of buffered records as they are stored."""
    table = to_table(descriptor, [i.message for i in items])
    records = [i.record for i in items]
    meta = [
        pa.array([r.partition for r in records], pa.int32()),
        pa.array([r.offset for r in records], pa.int64()),
        pa.array([r.timestamp_ms for r in records], pa.timestamp("ms", tz="UTC")),
        pa.array([i.event_time_ns for i in items], pa.timestamp("ns", tz="UTC")),
        pa.array([i.event_id for i in items], pa.string()),
        pa.array([r.key for r in records], pa.binary()),
    ]
    return pa.Table.from_arrays([*table.columns, *meta], schema=lake_schema(descriptor))


def _kafka_dead_letter(record: MskRecord, error: BaseException, dlq: str) -> None:
    from aipx.lambda_kit import dead_letter, default_runtime

    dead_letter(default_runtime(), record, error, consumer=FUNCTION, dlq=dlq)
