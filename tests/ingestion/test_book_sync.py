"""The venues' order-book synchronisation rules (pure domain logic)."""

from __future__ import annotations

from aipx_ingestion.domain.book import DiffDepthSync, SnapshotDeltaSync, SyncState, is_zero
from aipx_ingestion.domain.events import DepthDiff, DepthSnapshot, Level


def diff(first: int, final: int, bids: tuple[Level, ...] = (), asks: tuple[Level, ...] = ()) -> DepthDiff:
    return DepthDiff("BTCUSDT", 0, first, final, 0, bids, asks)


def snap(
    last: int, bids: tuple[Level, ...] = (("100", "1"),), asks: tuple[Level, ...] = (("101", "1"),)
) -> DepthSnapshot:
    return DepthSnapshot("BTCUSDT", 0, last, bids, asks, 10)


def test_zero_quantities() -> None:
    assert is_zero("0") and is_zero("0.00000000") and not is_zero("0.001") and not is_zero("10")


class TestBinanceDiffDepth:
    def test_diffs_are_buffered_and_one_snapshot_requested(self) -> None:
        sync = DiffDepthSync()
        first = sync.on_diff(diff(5, 8))
        assert first.need_snapshot and first.skipped and not first.publish
        second = sync.on_diff(diff(9, 12))
        assert not second.need_snapshot  # already requested
        assert sync.state is SyncState.UNSYNCED

    def test_snapshot_drops_old_diffs_and_applies_the_straddling_one(self) -> None:
        sync = DiffDepthSync()
        for d in (diff(1, 4), diff(5, 9, bids=(("100", "0"),)), diff(10, 12, bids=(("99", "3"),))):
            sync.on_diff(d)
        result = sync.on_snapshot(snap(7))  # u=4 <= 7 dropped; 5..9 straddles 8; then 10 == 9 + 1
        assert [type(p).__name__ for p in result.publish] == ["DepthSnapshot", "DepthDiff", "DepthDiff"]
        assert sync.state is SyncState.SYNCED and sync.last_update_id == 12
        assert sync.book.top(5) == ((("99", "3"),), (("101", "1"),))  # 100 removed by the diff

    def test_snapshot_older_than_the_buffer_is_refetched(self) -> None:
        sync = DiffDepthSync()
        sync.on_diff(diff(20, 25))
        result = sync.on_snapshot(snap(10))  # lastUpdateId + 1 = 11 < U = 20: too old
        assert result.need_snapshot and not result.publish and sync.state is SyncState.UNSYNCED
        assert [
            p.last_update_id for p in sync.on_snapshot(snap(21)).publish if isinstance(p, DepthSnapshot)
        ] == [21]

    def test_each_diff_must_continue_the_previous(self) -> None:
        sync = DiffDepthSync()
        sync.on_snapshot(snap(10))
        assert sync.on_diff(diff(9, 11)).publish  # first after the snapshot: straddles 11
        assert sync.on_diff(diff(12, 13)).publish  # U = previous u + 1
        assert sync.on_diff(diff(12, 13)).duplicate  # replay (e.g. after a reconnect): dropped
        assert sync.on_diff(diff(10, 13)).duplicate
        gap = sync.on_diff(diff(15, 16))  # 14 is missing
        assert gap.gap is not None and (gap.gap.expected, gap.gap.received) == (14, 15)
        assert gap.need_snapshot and not gap.publish and sync.state is SyncState.UNSYNCED
        # Nothing is published until a fresh snapshot: the book is known to be inconsistent.
        assert not sync.on_diff(diff(17, 18)).publish
        resync = sync.on_snapshot(snap(16))
        assert [type(p).__name__ for p in resync.publish] == ["DepthSnapshot", "DepthDiff"]
        assert sync.last_update_id == 18

    def test_overlap_in_steady_state_is_a_gap_but_allowed_after_reconnect(self) -> None:
        sync = DiffDepthSync()
        sync.on_snapshot(snap(10))
        sync.on_diff(diff(11, 12))
        assert sync.on_diff(diff(12, 14)).gap is not None  # U must be exactly previous u + 1
        sync = DiffDepthSync()
        sync.on_snapshot(snap(10))
        sync.on_diff(diff(11, 12))
        sync.on_reconnect()
        assert sync.on_diff(diff(12, 14)).publish  # after a reconnect the first diff may straddle
        assert sync.on_diff(diff(14, 15)).gap is not None  # ... but only the first

    def test_a_gap_inside_the_buffer_publishes_only_the_consistent_prefix(self) -> None:
        sync = DiffDepthSync()
        for d in (diff(5, 9), diff(10, 11), diff(13, 14)):
            sync.on_diff(d)
        result = sync.on_snapshot(snap(8))
        assert [type(p).__name__ for p in result.publish] == ["DepthSnapshot", "DepthDiff", "DepthDiff"]
        assert result.gap is not None and (result.gap.expected, result.gap.received) == (12, 13)
        assert result.need_snapshot and sync.state is SyncState.UNSYNCED

    def test_the_buffer_is_bounded(self) -> None:
        sync = DiffDepthSync(max_buffer=3)
        for i in range(10):
            sync.on_diff(diff(i * 2 + 1, i * 2 + 2))
        assert len(sync.buffer) == 3 and sync.buffer_overflows == 7

    def test_late_snapshot_for_a_synced_book_is_ignored(self) -> None:
        sync = DiffDepthSync()
        sync.on_snapshot(snap(10))
        assert sync.on_snapshot(snap(5)).duplicate


class TestBybitSnapshotDelta:
    def test_deltas_before_the_first_snapshot_are_skipped(self) -> None:
        sync = SnapshotDeltaSync()
        assert sync.on_diff(diff(5, 5)).skipped

    def test_deltas_continue_by_one_and_gaps_request_a_resubscription(self) -> None:
        sync = SnapshotDeltaSync()
        assert sync.on_snapshot(snap(100)).publish
        assert sync.on_diff(diff(101, 101, asks=(("101", "0"), ("102", "5")))).publish
        assert sync.book.best() == (("100", "1"), ("102", "5"))
        assert sync.on_diff(diff(101, 101)).duplicate
        gap = sync.on_diff(diff(104, 104))
        assert (
            gap.gap is not None and (gap.gap.expected, gap.gap.received) == (102, 104) and gap.need_snapshot
        )
        assert sync.on_diff(diff(105, 105)).skipped
        assert not sync.on_diff(diff(106, 106)).need_snapshot  # one resubscription at a time
        assert sync.on_snapshot(snap(106)).publish and sync.state is SyncState.SYNCED

    def test_stale_snapshot_is_a_duplicate_but_u_1_means_a_venue_restart(self) -> None:
        sync = SnapshotDeltaSync()
        sync.on_snapshot(snap(100))
        assert sync.on_snapshot(snap(100)).duplicate
        restart = sync.on_snapshot(snap(1, bids=(("50", "2"),)))
        assert restart.publish and sync.last_update_id == 1 and sync.book.best()[0] == ("50", "2")


def test_repeated_u_1_snapshot_is_a_duplicate_not_a_second_restart() -> None:
    sync = SnapshotDeltaSync()
    assert sync.on_snapshot(snap(1)).publish
    assert sync.on_snapshot(snap(1)).duplicate
