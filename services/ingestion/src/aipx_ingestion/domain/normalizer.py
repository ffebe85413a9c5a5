"""Turns one instrument's venue events into market-data envelopes, enforcing sequence and book rules.

One `InstrumentNormalizer` per (venue, symbol). It assigns the envelope's source_sequence and deterministic
event_id, drops duplicates (replays after reconnects, overlapping connections), marks gaps with FeedGap
envelopes, and never publishes book data while the book is known to be inconsistent.
"""

from __future__ import annotations

from enum import Enum

import msgspec
from aipx.v1.common_pb2 import Decimal as PbDecimal
from aipx.v1.market_data_pb2 import (
    BookLevel,
    BookSnapshot,
    Candle,
    MarketDataEnvelope,
    Quote,
    Trade,
)

from aipx_ingestion.domain.book import BookSync, SyncResult, SyncState
from aipx_ingestion.domain.events import (
    CandleEvent,
    DepthDiff,
    DepthSnapshot,
    Kind,
    Level,
    MarketEvent,
    QuoteEvent,
    TradeEvent,
)
from aipx_ingestion.domain.sequencing import ContiguousIds, RecentIds, SourceSequencer, Verdict


class Stream(Enum):
    """Streams whose continuity is tracked; the value is FeedGap.stream."""

    TRADE = "trade"
    AGG_TRADE = "agg_trade"
    DEPTH = "depth"
    QUOTE = "quote"


class Drop(Enum):
    """Why an input produced nothing (a metric label)."""

    DUPLICATE = "duplicate"
    UNSYNCED = "unsynced"


class Outcome(msgspec.Struct, gc=False):
    """The envelopes to publish for one input, in order, and what else happened (a Struct: one per input,
    see events.py; its lists are tracked by the collector as usual, nothing refers back to it)."""

    envelopes: list[MarketDataEnvelope] = msgspec.field(default_factory=list)
    dropped: Drop | None = None
    gaps: list[Stream] = msgspec.field(default_factory=list)
    resync: Stream | None = None
    snapshot_applied: bool = False


# Enum members read once: `Kind.TRADE` through the class is a descriptor lookup on every access (Python 3.11).
_TRADE, _AGG_TRADE, _QUOTE = Kind.TRADE, Kind.AGG_TRADE, Kind.QUOTE
_DUPLICATE, _GAP = Verdict.DUPLICATE, Verdict.GAP
_DROP_DUPLICATE = Drop.DUPLICATE


def _levels(levels: tuple[Level, ...]) -> list[BookLevel]:
    return [BookLevel(price=PbDecimal(value=p), quantity=PbDecimal(value=q)) for p, q in levels]


class InstrumentNormalizer:
    """Sequence, dedupe and book state of one (venue, symbol); pure: time comes in with each event."""

    def __init__(
        self,
        venue: str,
        symbol: str,
        venue_symbol: str,
        *,
        book: BookSync,
        bbo: BookSync | None,
        sequence_start: int,
        snapshot_interval_ns: int,
        snapshot_depth: int,
        reuse_envelopes: bool = False,
    ) -> None:
        """`reuse_envelopes`: keep one trade and one quote envelope and overwrite them for each event (about
        half the cost of building one); only for a caller that serializes each outcome before the next."""
        self.venue = venue
        self.symbol = symbol
        self.venue_symbol = venue_symbol
        self.book = book
        self.bbo = bbo
        self.sequencer = SourceSequencer(sequence_start)
        self.snapshot_interval_ns = snapshot_interval_ns
        self.snapshot_depth = snapshot_depth
        self._id_prefixes = {kind: f"{venue}:{symbol}:{kind.value}:" for kind in Kind}
        self._trade_ids = {Kind.TRADE: ContiguousIds(), Kind.AGG_TRADE: ContiguousIds()}
        self._recent_trades = RecentIds()
        self._last_quote_id = 0
        self._last_candle: dict[str, tuple[int, int, bool]] = {}
        self._last_snapshot_ns = 0
        self._reuse = reuse_envelopes
        self._kept: dict[Kind, MarketDataEnvelope] = {}

    # -- envelope construction -------------------------------------------------------------------------

    def _envelope(self, kind: Kind, venue_id: object, exchange_ns: int, ingest_ns: int) -> MarketDataEnvelope:
        return MarketDataEnvelope(
            venue=self.venue,
            symbol=self.symbol,
            venue_symbol=self.venue_symbol,
            exchange_time_ns=exchange_ns,
            ingest_time_ns=ingest_ns,
            source_sequence=self.sequencer.next(),
            event_id=f"{self._id_prefixes[kind]}{venue_id}",
        )

    def _kept_envelope(
        self, kind: Kind, venue_id: object, exchange_ns: int, ingest_ns: int
    ) -> MarketDataEnvelope:
        """The envelope kept for `kind`, its per-event fields overwritten (the payload's by the caller)."""
        env = self._kept.get(kind)
        if env is None:
            env = self._kept[kind] = MarketDataEnvelope(
                venue=self.venue, symbol=self.symbol, venue_symbol=self.venue_symbol
            )
        env.exchange_time_ns = exchange_ns
        env.ingest_time_ns = ingest_ns
        env.source_sequence = self.sequencer.next()
        env.event_id = f"{self._id_prefixes[kind]}{venue_id}"
        return env

    def _gap(
        self,
        out: Outcome,
        stream: Stream,
        *,
        expected: int,
        received: int,
        action: str,
        ev_ns: int,
        ingest_ns: int,
    ) -> None:
        env = self._envelope(Kind.GAP, f"{stream.value}:{expected}-{received}", ev_ns, ingest_ns)
        gap = env.gap
        gap.stream = stream.value
        gap.expected_id = expected
        gap.received_id = received
        gap.action = action
        out.envelopes.append(env)
        out.gaps.append(stream)

    def _delta_envelope(self, diff: DepthDiff, ingest_ns: int) -> MarketDataEnvelope:
        env = self._envelope(
            Kind.BOOK_DELTA,
            f"{diff.first_update_id}-{diff.final_update_id}",
            diff.exchange_time_ns,
            ingest_ns,
        )
        delta = env.book_delta
        delta.first_update_id = diff.first_update_id
        delta.final_update_id = diff.final_update_id
        delta.previous_final_update_id = diff.previous_final_update_id
        delta.bids.extend(_levels(diff.bids))
        delta.asks.extend(_levels(diff.asks))
        return env

    def _snapshot_envelope(
        self,
        last_update_id: int,
        bids: tuple[Level, ...],
        asks: tuple[Level, ...],
        *,
        depth: int,
        ev_ns: int,
        ingest_ns: int,
    ) -> MarketDataEnvelope:
        env = self._envelope(Kind.BOOK_SNAPSHOT, last_update_id, ev_ns, ingest_ns)
        env.book_snapshot.CopyFrom(
            BookSnapshot(last_update_id=last_update_id, bids=_levels(bids), asks=_levels(asks), depth=depth)
        )
        return env

    # -- inputs ------------------------------------------------------------------------------------------

    def on_event(self, event: MarketEvent, ingest_ns: int) -> Outcome:
        """Process one parsed event of this instrument."""
        if isinstance(event, TradeEvent):
            return self._on_trade(event, ingest_ns)
        if isinstance(event, QuoteEvent):
            return self._on_quote(event, ingest_ns)
        if isinstance(event, DepthDiff):
            return self._on_depth(event, None, ingest_ns)
        if isinstance(event, DepthSnapshot):
            return self._on_depth(None, event, ingest_ns)
        return self._on_candle(event, ingest_ns)

    def on_reconnect(self) -> None:
        """A connection carrying this instrument was (re)established."""
        self.book.on_reconnect()
        if self.bbo is not None:
            self.bbo.on_reconnect()

    def _on_trade(self, ev: TradeEvent, ingest_ns: int) -> Outcome:
        out = Outcome()
        kind = _AGG_TRADE if ev.aggregated else _TRADE
        if ev.sequence_id is not None:
            check = self._trade_ids[kind].check(ev.sequence_id)
            verdict = check.verdict
            if verdict is _DUPLICATE:
                out.dropped = _DROP_DUPLICATE
                return out
            if verdict is _GAP:
                stream = Stream.AGG_TRADE if ev.aggregated else Stream.TRADE
                self._gap(
                    out,
                    stream,
                    expected=check.expected,
                    received=ev.sequence_id,
                    action="none",
                    ev_ns=ev.exchange_time_ns,
                    ingest_ns=ingest_ns,
                )
        elif not self._recent_trades.add(ev.trade_id):
            out.dropped = Drop.DUPLICATE
            return out
        make = self._kept_envelope if self._reuse else self._envelope
        env = make(kind, ev.trade_id, ev.exchange_time_ns, ingest_ns)
        trade: Trade = env.trade  # every field set below: nothing of the previous trade stays
        trade.trade_id = ev.trade_id
        trade.price.value = ev.price
        trade.quantity.value = ev.quantity
        trade.aggressor_side = ev.aggressor_side
        trade.first_trade_id = ev.first_trade_id
        trade.last_trade_id = ev.last_trade_id
        out.envelopes.append(env)
        return out

    def _quote_envelope(self, out: Outcome, ev: QuoteEvent, ingest_ns: int, *, reuse: bool = False) -> None:
        make = self._kept_envelope if reuse and self._reuse else self._envelope
        env = make(_QUOTE, ev.update_id or ev.exchange_time_ns, ev.exchange_time_ns, ingest_ns)
        quote: Quote = env.quote  # every field set below
        quote.bid_price.value = ev.bid_price
        quote.bid_size.value = ev.bid_size
        quote.ask_price.value = ev.ask_price
        quote.ask_size.value = ev.ask_size
        quote.update_id = ev.update_id
        out.envelopes.append(env)

    def _on_quote(self, ev: QuoteEvent, ingest_ns: int) -> Outcome:
        out = Outcome()
        if ev.update_id and ev.update_id <= self._last_quote_id:
            out.dropped = Drop.DUPLICATE
            return out
        self._last_quote_id = ev.update_id
        self._quote_envelope(out, ev, ingest_ns, reuse=True)  # the outcome's only envelope
        return out

    def _on_depth(self, diff: DepthDiff | None, snap: DepthSnapshot | None, ingest_ns: int) -> Outcome:
        event: DepthDiff | DepthSnapshot
        if diff is not None:
            event = diff
        elif snap is not None:
            event = snap
        else:
            raise ValueError("a depth input needs a diff or a snapshot")
        sync = self.bbo if event.bbo and self.bbo is not None else self.book
        stream = Stream.QUOTE if sync is self.bbo else Stream.DEPTH
        result: SyncResult = sync.on_diff(event) if isinstance(event, DepthDiff) else sync.on_snapshot(event)
        ev_ns = event.exchange_time_ns
        out = Outcome()
        if result.duplicate:
            out.dropped = Drop.DUPLICATE
        elif result.skipped and not result.publish:
            out.dropped = Drop.UNSYNCED
        if stream is Stream.QUOTE:
            if result.publish:
                self._bbo_quote(out, sync, ev_ns, ingest_ns)
        else:
            for item in result.publish:
                if isinstance(item, DepthSnapshot):
                    # The snapshot's own levels: the book may already include diffs replayed after it.
                    out.envelopes.append(
                        self._snapshot_envelope(
                            item.last_update_id,
                            item.bids,
                            item.asks,
                            depth=item.depth,
                            ev_ns=ev_ns,
                            ingest_ns=ingest_ns,
                        )
                    )
                    out.snapshot_applied = True
                    self._last_snapshot_ns = ingest_ns
                else:
                    out.envelopes.append(self._delta_envelope(item, ingest_ns))
        if result.gap is not None:
            self._gap(
                out,
                stream,
                expected=result.gap.expected,
                received=result.gap.received,
                action="resync",
                ev_ns=ev_ns,
                ingest_ns=ingest_ns,
            )
        if result.need_snapshot:
            out.resync = stream
        if (
            stream is Stream.DEPTH
            and not out.snapshot_applied
            and result.publish
            and self.snapshot_interval_ns > 0
            and ingest_ns - self._last_snapshot_ns >= self.snapshot_interval_ns
        ):
            self._periodic_snapshot(out, ev_ns, ingest_ns)
        return out

    def _bbo_quote(self, out: Outcome, sync: BookSync, ev_ns: int, ingest_ns: int) -> None:
        bid, ask = sync.book.best()
        if bid is None or ask is None:
            return
        # The book sync already dropped duplicates; a venue restart may legitimately lower the update id.
        quote = QuoteEvent(self.venue_symbol, ev_ns, sync.last_update_id, bid[0], bid[1], ask[0], ask[1])
        self._quote_envelope(out, quote, ingest_ns)

    def _periodic_snapshot(self, out: Outcome, ev_ns: int, ingest_ns: int) -> None:
        if self.book.state is not SyncState.SYNCED:
            return
        bids, asks = self.book.book.top(self.snapshot_depth)
        out.envelopes.append(
            self._snapshot_envelope(
                self.book.last_update_id,
                bids,
                asks,
                depth=self.snapshot_depth,
                ev_ns=ev_ns,
                ingest_ns=ingest_ns,
            )
        )
        self._last_snapshot_ns = ingest_ns

    def _on_candle(self, ev: CandleEvent, ingest_ns: int) -> Outcome:
        out = Outcome()
        position = (ev.open_time_ns, ev.exchange_time_ns, ev.closed)
        last = self._last_candle.get(ev.interval)
        if last is not None and position <= last:
            out.dropped = Drop.DUPLICATE
            return out
        self._last_candle[ev.interval] = position
        env = self._envelope(
            Kind.CANDLE,
            f"{ev.interval}:{ev.open_time_ns}:{ev.exchange_time_ns}",
            ev.exchange_time_ns,
            ingest_ns,
        )
        c: Candle = env.candle
        c.interval = ev.interval
        c.open_time_ns = ev.open_time_ns
        c.close_time_ns = ev.close_time_ns
        c.open.value = ev.open
        c.high.value = ev.high
        c.low.value = ev.low
        c.close.value = ev.close
        c.volume.value = ev.volume
        c.quote_volume.value = ev.quote_volume
        c.trade_count = ev.trade_count
        c.closed = ev.closed
        out.envelopes.append(env)
        return out

    @property
    def book_synced(self) -> bool:
        return self.book.state is SyncState.SYNCED
