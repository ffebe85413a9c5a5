"""ParquetRecorder buffering, rotation and durability decisions, with an in-memory object store (no I/O)."""

from __future__ import annotations

import io
from typing import Any

import pyarrow.parquet as pq
from aipx.msk import MskRecord, build_event, failed_offsets
from aipx.serde import encode
from aipx.topics import ORDER_EVENTS, TRADING_SIGNALS
from aipx.v1.orders_pb2 import OrderEvent
from aipx.v1.signals_pb2 import TradingSignal
from aipx_recorder.layout import NS_PER_HOUR, parse_file_name
from aipx_recorder.recorder import ParquetRecorder
from aipx_recorder.settings import RotationPolicy

HOUR0 = 490_000 * NS_PER_HOUR  # 2025-11-24T16:00Z


class MemoryStore:
    """A dict standing in for the bucket (the S3 adapter itself is covered by the integration tests)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail_puts = 0

    def put(self, key: str, body: bytes) -> None:
        if self.fail_puts:
            self.fail_puts -= 1
            raise ConnectionError("store unavailable")
        self.objects[key] = body

    def list_names(self, prefix: str) -> list[str]:
        return [
            k[len(prefix) :] for k in self.objects if k.startswith(prefix) and "/" not in k[len(prefix) :]
        ]

    def rows(self) -> list[dict[str, Any]]:
        return [row for body in self.objects.values() for row in pq.read_table(io.BytesIO(body)).to_pylist()]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def signal(
    offset: int, *, partition: int = 0, hour: int = 0, minute: int = 0, topic: str = TRADING_SIGNALS
) -> MskRecord:
    t = HOUR0 + hour * NS_PER_HOUR + minute * 60 * 1_000_000_000
    enc = encode(
        TradingSignal(signal_id=f"s{offset}", symbol="BTC-USDT"), event_id=f"s{offset}", event_time_ns=t
    )
    return MskRecord(topic, partition, offset, t // 1_000_000, b"BTC-USDT", enc.value, enc.headers)


def recorder(
    store: MemoryStore, clock: Clock | None = None, **policy: Any
) -> tuple[ParquetRecorder, list[Any]]:
    dead: list[Any] = []
    rec = ParquetRecorder(
        store,
        policy=RotationPolicy(**{"max_holds": 2, **policy}),
        dead_letter=lambda record, error, dlq: dead.append((record.offset, str(error), dlq)),
        clock=clock or Clock(),
    )
    return rec, dead


def offsets_failed(result: Any) -> list[int]:
    return [item["itemIdentifier"]["offset"] for item in result.response()["batchItemFailures"]]


def test_first_delivery_flushes_then_buffers_are_held_and_reported_until_idle() -> None:
    store = MemoryStore()
    rec, _ = recorder(store)
    first = rec.process([signal(0), signal(1)])
    assert offsets_failed(first) == [] and len(store.objects) == 1
    held = rec.process([signal(2), signal(3)])
    assert offsets_failed(held) == [2, 3] and held.held == 2 and len(store.objects) == 1
    # The mapping redelivers from 2 (nothing new arrived): the source is idle -> flush, all acknowledged.
    idle = rec.process([signal(2), signal(3)])
    assert offsets_failed(idle) == [] and idle.flush_reasons == {"trading-signals-0": ["idle"]}
    assert sorted(store.objects) == [
        "topic=trading-signals/date=2025-11-24/hour=16/trading-signals-0-0-1.parquet",
        "topic=trading-signals/date=2025-11-24/hour=16/trading-signals-0-2-3.parquet",
    ]
    assert [r["signal_id"] for r in store.rows()] == ["s0", "s1", "s2", "s3"]


def test_a_held_buffer_is_flushed_before_the_retry_budget_runs_out() -> None:
    store = MemoryStore()
    rec, _ = recorder(store, max_holds=2)
    rec.process([signal(0)])
    assert offsets_failed(rec.process([signal(1)])) == [1]
    assert offsets_failed(rec.process([signal(1), signal(2)])) == [1, 2]
    third = rec.process([signal(1), signal(2), signal(3)])
    assert offsets_failed(third) == [] and "holds" in third.flush_reasons["trading-signals-0"]


def test_records_bytes_age_and_backlog_rotate() -> None:
    store, clock = MemoryStore(), Clock()
    rec, _ = recorder(store, clock, max_records=3, max_age_s=30, max_holds=100)
    rec.process([signal(0)])
    assert offsets_failed(rec.process([signal(1), signal(2)])) == [1, 2]
    assert rec.process([signal(1), signal(2), signal(3)]).flush_reasons["trading-signals-0"] == ["records"]
    assert offsets_failed(rec.process([signal(4)])) == [4]
    clock.now += 31
    assert "age" in rec.process([signal(4), signal(5)]).flush_reasons["trading-signals-0"]
    rec_bytes, _ = recorder(MemoryStore(), max_bytes=1, max_holds=100)
    rec_bytes.process([signal(0)])
    assert rec_bytes.process([signal(1)]).flush_reasons["trading-signals-0"] == ["bytes"]
    full, _ = recorder(MemoryStore(), max_holds=100)
    full.topic_info(TRADING_SIGNALS)
    object.__setattr__(full.topic_info(TRADING_SIGNALS), "batch_size", 2)
    full.process([signal(0)])
    assert "backlog" in full.process([signal(1), signal(2)]).flush_reasons["trading-signals-0"]


def test_an_event_at_the_payload_limit_is_a_backlog_too() -> None:
    big = [signal(1001 + i) for i in range(40)]
    big = [
        MskRecord(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, r.headers * 500)
        for r in big
    ]
    assert sum(r.event_bytes for r in big) > 6 * 1024 * 1024 - 256 * 1024
    rec, _ = recorder(MemoryStore(), max_holds=100)
    rec.process([signal(1000)])  # first delivery
    result = rec.process(big)
    assert offsets_failed(result) == [] and "backlog" in result.flush_reasons["trading-signals-0"]


def test_hour_boundary_closes_files_and_late_data_rides_along() -> None:
    store = MemoryStore()
    rec, _ = recorder(store, late_grace_s=300, max_holds=100)
    rec.process([signal(0, minute=50)])
    assert offsets_failed(rec.process([signal(1, minute=55), signal(2, hour=1, minute=1)])) == [1, 2]
    # Event time passes 17:05 (hour 16 end + grace): hour 16 is closed, its on-time records are flushed.
    closed = rec.process([signal(1, minute=55), signal(2, hour=1, minute=1), signal(3, hour=1, minute=6)])
    assert closed.flush_reasons["trading-signals-0"] == ["hour-closed"]
    # A late record for hour 16 does not force a flush of its own ...
    late = rec.process([signal(4, minute=59), signal(5, hour=1, minute=10)])
    assert offsets_failed(late) == [4, 5]
    # ... it is written into its own hour at the partition's next regular flush.
    rec.process([signal(4, minute=59), signal(5, hour=1, minute=10)])
    names = sorted(k.split("/", 3)[2] + "/" + k.rsplit("/", 1)[1] for k in store.objects)
    assert names == [
        "hour=16/trading-signals-0-0-0.parquet",
        "hour=16/trading-signals-0-1-1.parquet",
        "hour=16/trading-signals-0-4-4.parquet",
        "hour=17/trading-signals-0-2-3.parquet",
        "hour=17/trading-signals-0-5-5.parquet",
    ]


def test_interleaved_symbols_and_hours_each_land_in_their_own_directory() -> None:
    store = MemoryStore()
    rec, _ = recorder(store, partition_by_symbol=True)
    records = []
    for offset in range(12):  # symbol alternates every record, the hour every third
        t = HOUR0 + (offset // 3 % 2) * NS_PER_HOUR + offset * 1_000_000_000
        sym = ["BTC-USDT", "ETH-USDT"][offset % 2]
        enc = encode(
            TradingSignal(signal_id=f"s{offset}", symbol=sym), event_id=f"s{offset}", event_time_ns=t
        )
        records.append(
            MskRecord(TRADING_SIGNALS, 0, offset, t // 1_000_000, sym.encode(), enc.value, enc.headers)
        )
    assert offsets_failed(rec.process(records)) == []
    files = {}
    for key, body in store.objects.items():
        directory = "/".join(key.split("/")[2:4])
        files[directory] = sorted(r["_offset"] for r in pq.read_table(io.BytesIO(body)).to_pylist())
        assert {r["symbol"] for r in pq.read_table(io.BytesIO(body)).to_pylist()} == {directory[-8:]}
    assert files == {
        "hour=16/symbol=BTC-USDT": [0, 2, 6, 8],
        "hour=16/symbol=ETH-USDT": [1, 7],
        "hour=17/symbol=BTC-USDT": [4, 10],
        "hour=17/symbol=ETH-USDT": [3, 5, 9, 11],
    }
    # Redelivered after the upload (commit lost): recognised per directory from the listing, nothing twice.
    again, _ = recorder(store, partition_by_symbol=True)
    assert again.process(records).already_durable == 12 and len(store.objects) == 4


def test_crash_after_upload_redelivery_with_other_boundaries_lands_once() -> None:
    store = MemoryStore()
    rec, _ = recorder(store)
    rec.process([signal(i) for i in range(0, 5)])  # uploaded 0-4 ... and the commit never happened
    fresh, _ = recorder(store)  # a new process: empty buffers, same bucket
    result = fresh.process([signal(i) for i in range(0, 8)])
    assert offsets_failed(result) == [] and result.already_durable == 5
    assert sorted(r["_offset"] for r in store.rows()) == list(range(8))
    assert parse_file_name(sorted(store.objects)[1].rsplit("/", 1)[1]) is not None


def test_partition_moved_on_by_another_consumer_is_relisted_and_not_duplicated() -> None:
    store = MemoryStore()
    rec, _ = recorder(store)
    rec.process([signal(i) for i in range(3)])  # we own partition 0: 0-2 durable, committed
    other, _ = recorder(store)  # a rebalance: another instance writes 3-6 (uploaded, commit lost)
    other.process([signal(i) for i in range(3, 7)])
    back = [signal(i) for i in range(3, 9)]  # the partition comes back from offset 3
    assert offsets_failed(rec.process(back)) == [3, 4, 5, 6, 7, 8]  # held (it continues where we were)
    flushed = rec.process(back)  # redelivered, nothing new: idle flush; the fresh listing shows 3-6
    assert offsets_failed(flushed) == [] and flushed.already_durable == 4
    assert sorted(r["_offset"] for r in store.rows()) == list(range(9))


def test_partition_that_moved_past_us_starts_over_as_after_a_cold_start() -> None:
    store = MemoryStore()
    rec, _ = recorder(store)
    rec.process([signal(i) for i in range(3)])
    resumed = rec.process([signal(i) for i in range(7, 9)])  # 3-6 were handled and committed elsewhere
    assert offsets_failed(resumed) == [] and resumed.flush_reasons["trading-signals-0"] == ["first-delivery"]


def test_failed_upload_keeps_records_unacknowledged_and_the_retry_does_not_duplicate() -> None:
    store = MemoryStore()
    rec, _ = recorder(store)
    store.fail_puts = 1
    failed = rec.process([signal(0), signal(1), signal(2, partition=1)])
    assert failed_offsets(failed.response()) in ({"trading-signals-0": 0}, {"trading-signals-1": 2})
    again = rec.process([signal(0), signal(1), signal(2, partition=1)])
    assert offsets_failed(again) == []
    assert sorted((r["_partition"], r["_offset"]) for r in store.rows()) == [(0, 0), (0, 1), (1, 2)]


def test_undecodable_records_are_dead_lettered_once_and_never_block_the_partition() -> None:
    store = MemoryStore()
    rec, dead = recorder(store)
    bad = MskRecord(TRADING_SIGNALS, 0, 1, 0, None, b"\xff\xff", [])
    rec.process([signal(0)])
    assert offsets_failed(rec.process([bad, signal(2)])) == [2]
    rec.process([bad, signal(2)])  # redelivered with the held record: not dead-lettered twice
    assert [(o, q) for o, _, q in dead] == [(1, "trading-signals.dlq")]
    assert "invalid protobuf encoding" in dead[0][1]
    assert sorted(r["_offset"] for r in store.rows()) == [0, 2]


def test_decimal_out_of_range_is_dead_lettered_not_rounded() -> None:
    store = MemoryStore()
    rec, dead = recorder(store)
    ok, huge = OrderEvent(event_id="a"), OrderEvent(event_id="b")
    ok.fill.price.value = "1.5"
    huge.fill.price.value = "0.0000000000000000000001"
    recs = [
        MskRecord(ORDER_EVENTS, 0, i, HOUR0 // 1_000_000, b"acct", m.SerializeToString(), [])
        for i, m in enumerate([ok, huge])
    ]
    assert offsets_failed(rec.process(recs)) == []
    assert [(o, q) for o, _, q in dead] == [(1, "order-events.dlq")] and "decimal128" in dead[0][1]
    assert [r["event_id"] for r in store.rows()] == ["a"]


def test_meta_columns_and_the_event_shape_entry_point() -> None:
    store = MemoryStore()
    rec, _ = recorder(store)
    result = rec.process_event(build_event([signal(0, partition=3)]))
    assert offsets_failed(result) == []
    [row] = store.rows()
    assert (row["_partition"], row["_offset"], row["_event_id"], row["_key"]) == (3, 0, "s0", b"BTC-USDT")
    assert row["_event_time"].hour == 16 and row["_timestamp"].tzinfo is not None


def test_durable_index_covering_matches_covers() -> None:
    from aipx_recorder.layout import Directory, DurableIndex

    index = DurableIndex()
    here, other = Directory(TRADING_SIGNALS, 490_000), Directory(TRADING_SIGNALS, 490_001)
    assert index.covering(here, 0, 0, 100) is None  # nothing known: no per-record check needed
    index.learn_listing(here, ["trading-signals-0-5-9.parquet", "trading-signals-0-20-20.parquet", "junk"])
    covers = index.covering(here, 0, 0, 24)
    assert covers is not None
    assert [o for o in range(25) if covers(o)] == [5, 6, 7, 8, 9, 20]
    assert all(covers(o) == index.covers(here, 0, o) for o in range(25))
    assert (
        index.covering(here, 0, 10, 19) is None and index.covering(here, 0, 21, 99) is None
    )  # in between, above
    partial = index.covering(here, 0, 9, 12)
    assert partial is not None and [o for o in range(9, 13) if partial(o)] == [9]
    assert index.covering(here, 1, 0, 99) is None and index.covering(other, 0, 0, 99) is None
