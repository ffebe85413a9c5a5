"""Normalizer: source sequence, deterministic ids, dedupe, gap marking, book publishing rules."""

from __future__ import annotations

from aipx.v1.common_pb2 import SIDE_BUY
from aipx_ingestion.domain.book import DiffDepthSync, SnapshotDeltaSync
from aipx_ingestion.domain.events import CandleEvent, DepthDiff, DepthSnapshot, QuoteEvent, TradeEvent
from aipx_ingestion.domain.normalizer import Drop, InstrumentNormalizer, Stream
from aipx_ingestion.domain.sequencing import ContiguousIds, RecentIds, SourceSequencer, Verdict


def make(snapshot_interval_ns: int = 0) -> InstrumentNormalizer:
    return InstrumentNormalizer(
        "binance", "BTC-USDT", "BTCUSDT", book=DiffDepthSync(), bbo=None, sequence_start=1_000,
        snapshot_interval_ns=snapshot_interval_ns, snapshot_depth=5,
    )  # fmt: skip


def trade(trade_id: int) -> TradeEvent:
    return TradeEvent("BTCUSDT", trade_id * 10, str(trade_id), trade_id, "100.5", "0.1", SIDE_BUY)


def diff(first: int, final: int) -> DepthDiff:
    return DepthDiff("BTCUSDT", first, first, final, 0, (("100", str(final)),), ())


def test_contiguous_ids() -> None:
    ids = ContiguousIds()
    assert ids.check(5).verdict is Verdict.NEXT
    assert ids.check(6).verdict is Verdict.NEXT
    assert ids.check(6).verdict is Verdict.DUPLICATE
    gap = ids.check(9)
    assert gap.verdict is Verdict.GAP and gap.expected == 7
    assert ids.check(8).verdict is Verdict.DUPLICATE  # late arrival after the gap was marked


def test_recent_ids_are_bounded() -> None:
    recent = RecentIds(capacity=2)
    assert recent.add("a") and recent.add("b") and not recent.add("b")
    assert recent.add("c") and recent.add("a")  # "a" was evicted


def test_source_sequence_is_strictly_increasing_and_positive() -> None:
    seq = SourceSequencer(7)
    assert [seq.next() for _ in range(3)] == [7, 8, 9] and seq.peek == 10


def test_trades_duplicates_and_gaps() -> None:
    norm = make()
    out = [norm.on_event(trade(i), 0) for i in (1, 2, 2, 5)]
    assert [len(o.envelopes) for o in out] == [1, 1, 0, 2]
    assert out[2].dropped is Drop.DUPLICATE
    gap_env, trade_env = out[3].envelopes
    assert gap_env.WhichOneof("payload") == "gap" and out[3].gaps == [Stream.TRADE]
    assert (gap_env.gap.stream, gap_env.gap.expected_id, gap_env.gap.received_id, gap_env.gap.action) == (
        "trade", 3, 5, "none",
    )  # fmt: skip
    assert gap_env.event_id == "binance:BTC-USDT:gap:trade:3-5"
    sequences = [e.source_sequence for o in out for e in o.envelopes]
    assert sequences == [1000, 1001, 1002, 1003]  # contiguous across payload kinds
    assert trade_env.event_id == "binance:BTC-USDT:trade:5"


def test_event_ids_are_deterministic() -> None:
    a, b = make(), make()
    assert a.on_event(trade(1), 1).envelopes[0].event_id == b.on_event(trade(1), 99).envelopes[0].event_id


def test_quotes_drop_older_update_ids() -> None:
    norm = make()
    q = QuoteEvent("BTCUSDT", 0, 50, "1", "1", "2", "1")
    assert norm.on_event(q, 0).envelopes
    assert norm.on_event(q, 0).dropped is Drop.DUPLICATE
    assert norm.on_event(QuoteEvent("BTCUSDT", 0, 49, "1", "1", "2", "1"), 0).dropped is Drop.DUPLICATE


def test_candle_updates_dedupe_on_open_time_and_event_time() -> None:
    norm = make()

    def candle(event_ms: int, closed: bool = False) -> CandleEvent:
        return CandleEvent("BTCUSDT", event_ms, "1m", 0, 59_999, "1", "2", "0.5", "1.5", "3", "4", 5, closed)

    assert norm.on_event(candle(10), 0).envelopes
    assert norm.on_event(candle(10), 0).dropped is Drop.DUPLICATE
    assert norm.on_event(candle(20), 0).envelopes
    assert norm.on_event(candle(20, closed=True), 0).envelopes  # the final version of the same update


def test_no_book_data_is_published_between_a_gap_and_the_next_snapshot() -> None:
    norm = make()
    assert norm.on_event(diff(1, 2), 0).resync is Stream.DEPTH
    out = norm.on_event(DepthSnapshot("BTCUSDT", 0, 2, (("100", "1"),), (("101", "1"),), 5), 0)
    assert [e.WhichOneof("payload") for e in out.envelopes] == ["book_snapshot"] and out.snapshot_applied
    assert norm.on_event(diff(3, 4), 0).envelopes[0].WhichOneof("payload") == "book_delta"
    gap = norm.on_event(diff(7, 8), 0)
    assert [e.WhichOneof("payload") for e in gap.envelopes] == ["gap"]
    assert gap.envelopes[0].gap.action == "resync" and gap.resync is Stream.DEPTH
    assert norm.on_event(diff(9, 10), 0).envelopes == []
    assert norm.on_event(diff(9, 10), 0).dropped is Drop.UNSYNCED
    resync = norm.on_event(DepthSnapshot("BTCUSDT", 0, 9, (("100", "1"),), (("101", "1"),), 5), 0)
    assert [e.WhichOneof("payload") for e in resync.envelopes] == ["book_snapshot", "book_delta"]


def test_periodic_snapshots_come_from_the_local_book() -> None:
    norm = make(snapshot_interval_ns=100)
    norm.on_event(diff(1, 2), 0)
    norm.on_event(DepthSnapshot("BTCUSDT", 0, 2, (("100", "1"),), (("101", "1"),), 5), 10)
    assert len(norm.on_event(diff(3, 3), 50).envelopes) == 1
    out = norm.on_event(diff(4, 4), 200)
    assert [e.WhichOneof("payload") for e in out.envelopes] == ["book_delta", "book_snapshot"]
    periodic = out.envelopes[1].book_snapshot
    assert periodic.last_update_id == 4 and [lvl.quantity.value for lvl in periodic.bids] == ["4"]


def test_bbo_gap_is_marked_on_the_quote_stream() -> None:
    norm = InstrumentNormalizer(
        "bybit", "BTC-USDT", "BTCUSDT", book=SnapshotDeltaSync(), bbo=SnapshotDeltaSync(), sequence_start=1,
        snapshot_interval_ns=0, snapshot_depth=1,
    )  # fmt: skip
    top = DepthSnapshot("BTCUSDT", 0, 10, (("100", "1"),), (("101", "1"),), 1, bbo=True)
    assert norm.on_event(top, 0).envelopes[0].WhichOneof("payload") == "quote"
    out = norm.on_event(DepthDiff("BTCUSDT", 0, 12, 12, 0, (), (), bbo=True), 0)
    assert out.gaps == [Stream.QUOTE] and out.resync is Stream.QUOTE
    assert out.envelopes[0].gap.stream == "quote"


def test_reused_envelopes_serialize_exactly_like_new_ones() -> None:
    """One trade and one quote envelope kept and overwritten (the feed serializes each outcome at once):
    the bytes of every outcome equal those of a normalizer building a new envelope each time."""
    fresh = make()
    reused = InstrumentNormalizer(
        "binance", "BTC-USDT", "BTCUSDT", book=DiffDepthSync(), bbo=None, sequence_start=1_000,
        snapshot_interval_ns=0, snapshot_depth=5, reuse_envelopes=True,
    )  # fmt: skip
    events: list[TradeEvent | QuoteEvent] = [
        trade(1),
        QuoteEvent("BTCUSDT", 0, 7, "100.1", "2", "100.2", "3"),
        TradeEvent("BTCUSDT", 20, "2", 2, "101", "0.5", SIDE_BUY, True, 2, 2),  # aggregated: other kind
        trade(2),
        trade(2),  # duplicate: nothing
        QuoteEvent("BTCUSDT", 5, 8, "99", "1", "100", "4"),
        trade(5),  # a gap envelope (new) then the trade (kept)
        QuoteEvent("BTCUSDT", 0, 9, "98.5", "0.001", "99.5", "0.002"),
    ]
    kept: set[int] = set()
    for event in events:
        a, b = fresh.on_event(event, 123), reused.on_event(event, 123)
        assert [e.SerializeToString() for e in a.envelopes] == [e.SerializeToString() for e in b.envelopes]
        assert a.dropped == b.dropped and a.gaps == b.gaps
        kept.update(id(e) for e in b.envelopes if e.WhichOneof("payload") in ("trade", "quote"))
    assert len(kept) == 3  # trade, agg_trade and quote: one envelope each, overwritten
