"""Order-book state and the venues' book synchronisation rules.

Two rule sets exist:
- `DiffDepthSync` (Binance diff-depth streams, documented "how to manage a local order book correctly"):
  buffer diffs, fetch a REST snapshot, drop buffered diffs with u <= lastUpdateId, the first applied diff must
  straddle lastUpdateId + 1 (U <= lastUpdateId + 1 <= u), and from then on each U must be the previous u + 1.
- `SnapshotDeltaSync` (Bybit v5 orderbook topics): the stream itself sends a snapshot on subscribe, then
  deltas whose update id u grows by one each push; a snapshot always resets the book.
A violated rule is a gap: the book is invalid (nothing is published) until a fresh snapshot is applied.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Protocol

from aipx_ingestion.domain.events import DepthDiff, DepthSnapshot, Level


def is_zero(quantity: str) -> bool:
    """True for a zero quantity in decimal text ("0", "0.00000000")."""
    return quantity.strip("0.") == ""


class OrderBook:
    """Price levels per side, keyed by exact price; keeps the venue's text for publishing."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[Decimal, Level] = {}
        self.asks: dict[Decimal, Level] = {}

    def load(self, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> None:
        """Replace the whole book."""
        self.bids = {Decimal(p): (p, q) for p, q in bids if not is_zero(q)}
        self.asks = {Decimal(p): (p, q) for p, q in asks if not is_zero(q)}

    def apply(self, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> None:
        """Apply absolute level updates (quantity 0 removes the level)."""
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, qty in levels:
                key = Decimal(price)
                if is_zero(qty):
                    side.pop(key, None)
                else:
                    side[key] = (price, qty)

    def top(self, depth: int) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """Best `depth` bids (high to low) and asks (low to high)."""
        bids = tuple(self.bids[p] for p in sorted(self.bids, reverse=True)[:depth])
        asks = tuple(self.asks[p] for p in sorted(self.asks)[:depth])
        return bids, asks

    def best(self) -> tuple[Level | None, Level | None]:
        """Best bid and best ask, None for an empty side."""
        bid = self.bids[max(self.bids)] if self.bids else None
        ask = self.asks[min(self.asks)] if self.asks else None
        return bid, ask

    def crossed(self) -> bool:
        """True if the best bid is at or above the best ask (a sign of an inconsistent book)."""
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))


class SyncState(Enum):
    UNSYNCED = "unsynced"
    SYNCED = "synced"


@dataclass(frozen=True, slots=True)
class BookGap:
    """The update id the book should have continued with, and the one received."""

    expected: int
    received: int


@dataclass(slots=True)
class SyncResult:
    """What one input did to the book: what to publish (in order), a gap, whether a snapshot is needed."""

    publish: list[DepthDiff | DepthSnapshot] = field(default_factory=list)
    gap: BookGap | None = None
    need_snapshot: bool = False
    duplicate: bool = False
    skipped: bool = False


class BookSync(Protocol):
    """The interface both rule sets implement."""

    state: SyncState
    last_update_id: int
    book: OrderBook

    def on_diff(self, diff: DepthDiff) -> SyncResult: ...

    def on_snapshot(self, snapshot: DepthSnapshot) -> SyncResult: ...

    def on_reconnect(self) -> SyncResult: ...


class DiffDepthSync:
    """Binance's diff-depth rules (see module docstring). Snapshots come from REST, on request."""

    def __init__(self, max_buffer: int = 2_000) -> None:
        self.state = SyncState.UNSYNCED
        self.last_update_id = 0
        self.book = OrderBook()
        self.buffer: deque[DepthDiff] = deque()
        self.max_buffer = max_buffer
        self.buffer_overflows = 0
        self.snapshot_pending = False
        # True until the first diff after a snapshot or a reconnect was applied: that diff must straddle
        # lastUpdateId + 1 instead of continuing it exactly.
        self._straddle = True

    def _request_snapshot(self, result: SyncResult) -> None:
        if not self.snapshot_pending:
            self.snapshot_pending = True
            result.need_snapshot = True

    def _invalidate(self, result: SyncResult, diff: DepthDiff) -> None:
        result.gap = BookGap(self.last_update_id + 1, diff.first_update_id)
        self.state = SyncState.UNSYNCED
        self.buffer.clear()
        self.buffer.append(diff)
        self._request_snapshot(result)

    def _fits(self, diff: DepthDiff) -> bool:
        nxt = self.last_update_id + 1
        if self._straddle:
            return diff.first_update_id <= nxt <= diff.final_update_id
        return diff.first_update_id == nxt

    def on_diff(self, diff: DepthDiff) -> SyncResult:
        """Apply or buffer a diff; a diff that does not continue the book is a gap."""
        result = SyncResult()
        if self.state is SyncState.UNSYNCED:
            self.buffer.append(diff)
            if len(self.buffer) > self.max_buffer:
                # The snapshot will tell whether the oldest diffs were needed; if so it is fetched again.
                self.buffer.popleft()
                self.buffer_overflows += 1
            result.skipped = True
            self._request_snapshot(result)
            return result
        if diff.final_update_id <= self.last_update_id:
            result.duplicate = True
            return result
        if not self._fits(diff):
            self._invalidate(result, diff)
            return result
        self.book.apply(diff.bids, diff.asks)
        self.last_update_id = diff.final_update_id
        self._straddle = False
        result.publish.append(diff)
        return result

    def on_snapshot(self, snapshot: DepthSnapshot) -> SyncResult:
        """Initialise from a REST snapshot and replay the buffered diffs that follow it."""
        result = SyncResult()
        self.snapshot_pending = False
        if self.state is SyncState.SYNCED:
            result.duplicate = True  # a late answer to an earlier request; the book is already consistent
            return result
        while self.buffer and self.buffer[0].final_update_id <= snapshot.last_update_id:
            self.buffer.popleft()
        if self.buffer and self.buffer[0].first_update_id > snapshot.last_update_id + 1:
            # The snapshot is older than the oldest diff we still hold: fetch a newer one.
            self._request_snapshot(result)
            result.skipped = True
            return result
        self.book.load(snapshot.bids, snapshot.asks)
        self.last_update_id = snapshot.last_update_id
        self.state = SyncState.SYNCED
        self._straddle = True
        result.publish.append(snapshot)
        pending = list(self.buffer)
        self.buffer.clear()
        for i, diff in enumerate(pending):
            if diff.final_update_id <= self.last_update_id:
                continue  # buffered twice (a duplicate frame): already applied
            if not self._fits(diff):
                result.gap = BookGap(self.last_update_id + 1, diff.first_update_id)
                # Publish nothing past the gap: the snapshot and the diffs before it are consistent.
                self.state = SyncState.UNSYNCED
                self.buffer.extend(pending[i:])
                self._request_snapshot(result)
                return result
            self.book.apply(diff.bids, diff.asks)
            self.last_update_id = diff.final_update_id
            self._straddle = False
            result.publish.append(diff)
        return result

    def on_reconnect(self) -> SyncResult:
        """After a reconnect the next diff may overlap what was applied: it must straddle, not continue."""
        self._straddle = True
        return SyncResult()


class SnapshotDeltaSync:
    """Bybit v5 orderbook rules: stream snapshot resets, deltas continue u + 1, u = 1 means venue restart."""

    def __init__(self) -> None:
        self.state = SyncState.UNSYNCED
        self.last_update_id = 0
        self.book = OrderBook()
        self.resubscribe_pending = False

    def on_snapshot(self, snapshot: DepthSnapshot) -> SyncResult:
        """A snapshot replaces the book unless it is older than what was applied (a duplicate)."""
        result = SyncResult()
        # u = 1 after a higher u: the venue restarted its book service (documented); a second u = 1
        # snapshot is a duplicate.
        restart = snapshot.last_update_id == 1 and self.last_update_id > 1
        if self.state is SyncState.SYNCED and snapshot.last_update_id <= self.last_update_id and not restart:
            result.duplicate = True
            return result
        self.book.load(snapshot.bids, snapshot.asks)
        self.last_update_id = snapshot.last_update_id
        self.state = SyncState.SYNCED
        self.resubscribe_pending = False
        result.publish.append(snapshot)
        return result

    def on_diff(self, diff: DepthDiff) -> SyncResult:
        """Apply a delta that continues the book; anything else is a duplicate, skipped, or a gap."""
        result = SyncResult()
        if self.state is SyncState.UNSYNCED:
            result.skipped = True
            return result
        if diff.final_update_id <= self.last_update_id:
            result.duplicate = True
            return result
        if diff.first_update_id != self.last_update_id + 1:
            result.gap = BookGap(self.last_update_id + 1, diff.first_update_id)
            self.state = SyncState.UNSYNCED
            if not self.resubscribe_pending:
                self.resubscribe_pending = True
                result.need_snapshot = True
            return result
        self.book.apply(diff.bids, diff.asks)
        self.last_update_id = diff.final_update_id
        result.publish.append(diff)
        return result

    def on_reconnect(self) -> SyncResult:
        """The venue sends a fresh snapshot on (re)subscribe; deltas until then continue the old book."""
        return SyncResult()
