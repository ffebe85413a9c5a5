"""One venue's feed: frames in, envelopes out, with the venue's books kept consistent.

`VenueFeed` parses each frame with the venue adapter, hands events to the per-instrument normalizers (pure
domain code), puts the resulting envelopes into the Kafka sink (waiting when it is full), and acts on what the
normalizers ask for: a REST snapshot or a resubscription to resynchronise a book. It also resubscribes
streams that fell silent and counts everything in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from aipx.aio import cancel_and_wait
from aipx.logs import SampledLogger
from aipx.topics import MARKET_DATA_RAW, catalogue
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from aipx_ingestion.adapters.kafka import KafkaSink, Outgoing
from aipx_ingestion.adapters.rest import SnapshotClient, SnapshotError
from aipx_ingestion.adapters.websocket import ConnectionPolicy, FeedConnection, equal_jitter
from aipx_ingestion.domain.errors import MalformedFrameError
from aipx_ingestion.domain.events import (
    CandleEvent,
    ControlEvent,
    DepthDiff,
    DepthSnapshot,
    QuoteEvent,
    TradeEvent,
)
from aipx_ingestion.domain.normalizer import Drop, InstrumentNormalizer, Outcome, Stream
from aipx_ingestion.metrics import IngestionMetrics
from aipx_ingestion.venues.base import FeedAdapter

log = logging.getLogger(__name__)

_EVENT_TYPES: dict[type, str] = {
    TradeEvent: "trade",
    QuoteEvent: "quote",
    DepthDiff: "book_delta",
    DepthSnapshot: "book_snapshot",
    CandleEvent: "candle",
}
_REPLIES = frozenset({"response", "subscribe", "unsubscribe"})
"""Control events answering our (un)subscribe requests (Binance "response", Bybit ops)."""
_RESYNC_RETRY_S = 10.0
_MAINTENANCE_S = 1.0
_SNAPSHOT_BACKOFF_CAP_S = 30.0
_HELD_GRACE_S = 5.0


class VenueFeed:
    """Connections, normalizers and book resynchronisation of one venue."""

    def __init__(
        self,
        adapter: FeedAdapter,
        *,
        sink: KafkaSink,
        metrics: IngestionMetrics,
        policy: ConnectionPolicy,
        snapshots: SnapshotClient | None,
        sequence_start: int,
        streams_per_connection: int = 200,
        stale_stream_after_s: float = 120.0,
        book_snapshot_interval_s: float = 60.0,
        snapshot_depth: int = 1000,
        log_sample_every: int = 1000,
    ) -> None:
        self.adapter = adapter
        self.venue = adapter.name
        self.sink = sink
        self.metrics = metrics
        self.policy = policy
        self.snapshots = snapshots
        self.stale_stream_after_s = stale_stream_after_s
        self._malformed_log = SampledLogger(log, every=log_sample_every)
        spec = catalogue().get(MARKET_DATA_RAW)
        self.normalizers: dict[str, InstrumentNormalizer] = {}
        self._keys: dict[str, bytes] = {}
        for symbol in adapter.symbols.canonical_symbols():
            venue_symbol = adapter.symbols.venue(symbol)
            self.normalizers[venue_symbol] = InstrumentNormalizer(
                self.venue,
                symbol,
                venue_symbol,
                book=adapter.book_sync(),
                bbo=adapter.bbo_sync(),
                sequence_start=sequence_start,
                snapshot_interval_ns=int(book_snapshot_interval_s * 1e9),
                snapshot_depth=snapshot_depth,
                reuse_envelopes=True,  # _offer serializes each outcome before the next event
            )
            self._keys[venue_symbol] = spec.key_for(venue=self.venue, symbol=symbol)
        self.streams = adapter.streams()
        self.connections = self._plan_connections(streams_per_connection)
        self._stream_connection = {s: c for c in self.connections for s in c.streams}
        self._last_seen: dict[str, float] = {}
        self._unsynced_since: dict[str, float] = {}
        self._resyncing: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        # Envelopes the full sink could not take yet, in order (reading is paused meanwhile), and the task
        # moving them into the sink.
        self._held: deque[Outgoing] = deque()
        self._drainer: asyncio.Task[None] | None = None
        # Events and duplicates counted per kind, added to the metrics once a second.
        self._in: dict[str, int] = dict.fromkeys(_EVENT_TYPES.values(), 0)
        self._dup: dict[str, int] = dict.fromkeys(_EVENT_TYPES.values(), 0)

    def _plan_connections(self, streams_per_connection: int) -> list[FeedConnection]:
        """Group streams into connections, all streams of one symbol on the same connection."""
        limit = max(1, min(streams_per_connection, self.adapter.max_streams_per_connection))
        by_symbol: dict[str, list[str]] = {}
        for stream, venue_symbol in self.streams.items():
            by_symbol.setdefault(venue_symbol, []).append(stream)
        groups: list[list[str]] = [[]]
        for streams in by_symbol.values():
            if groups[-1] and len(groups[-1]) + len(streams) > limit:
                groups.append([])
            groups[-1].extend(streams)
        return [
            FeedConnection(
                self.adapter,
                group,
                on_frame=self.on_frame,
                on_connect=self._on_connect,
                policy=self.policy,
                metrics=self.metrics,
                name=f"{self.venue}-{i}",
            )
            for i, group in enumerate(groups)
            if group
        ]

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the connections (staggered) and start the maintenance loop."""
        for i, connection in enumerate(self.connections):
            if i and self.policy.subscribe_interval_s:
                await asyncio.sleep(self.policy.subscribe_interval_s)
            self._tasks.append(asyncio.create_task(connection.run(), name=connection.name))
        self._tasks.append(asyncio.create_task(self._maintain(), name=f"{self.venue}-maintenance"))

    async def stop(self) -> None:
        self._stopping = True
        for connection in self.connections:
            connection.stop()
        background = [
            t
            for t in self._tasks
            if t.get_name().endswith("-maintenance") or t.get_name().startswith("resync-")
        ]
        await cancel_and_wait(*background, what="feed maintenance")
        await asyncio.gather(*self._tasks, return_exceptions=True)  # the connections end by themselves
        self._tasks.clear()
        drainer = self._drainer
        if drainer is not None:  # envelopes held back by a full sink: a grace to move them, then counted
            await asyncio.wait({drainer}, timeout=_HELD_GRACE_S)
            await cancel_and_wait(drainer, what="held envelopes")
        self._flush_counts()

    @property
    def connected(self) -> bool:
        return all(c.connected for c in self.connections)

    # -- frames ------------------------------------------------------------------------------------------

    def on_frame(self, frame: bytes, recv_ns: int) -> bool:
        """Handle one frame from any of this venue's connections, synchronously (in the connection's
        callback); True if it answered a (un)subscribe request."""
        try:
            parsed = self.adapter.parse(frame)
        except MalformedFrameError as exc:
            self._malformed(exc.reason, exc, frame)
            return False
        if parsed.stream is not None:
            self._last_seen[parsed.stream] = time.monotonic()
        reply = False
        for event in parsed.events:
            if isinstance(event, ControlEvent):
                reply = reply or event.kind in _REPLIES
                if not event.ok:
                    log.warning("%s: venue reported an error on %s: %s", self.venue, event.kind, event.detail)
                continue
            normalizer = self.normalizers.get(event.venue_symbol)
            if normalizer is None:
                self._malformed("unknown_symbol", f"symbol {event.venue_symbol[:40]!r} not subscribed", frame)
                continue
            kind = _EVENT_TYPES[type(event)]
            self._in[kind] += 1  # added to the metric once a second (_flush_counts)
            outcome = normalizer.on_event(event, recv_ns)
            self._emit(normalizer, outcome, kind)
            if outcome.resync is not None:
                self._start_resync(normalizer, outcome.resync, after_gap=bool(outcome.gaps))
        return reply

    def _malformed(self, reason: str, detail: object, frame: str | bytes) -> None:
        self.metrics.malformed.labels(self.venue, reason).inc()
        self._malformed_log.warning(
            "%s: skipped frame (%s): %s; frame starts %r", self.venue, reason, detail, frame[:120]
        )

    def _emit(self, normalizer: InstrumentNormalizer, outcome: Outcome, kind: str) -> None:
        """Count what the outcome says and buffer its envelopes, in order: straight into the sink while it
        has room; otherwise into the held list, and every connection of this venue stops reading until the
        held envelopes are in the sink (_drain). Whatever comes meanwhile (the rest of a read, a snapshot)
        queues behind them, so no instrument's envelopes are reordered."""
        envelopes = outcome.envelopes
        if outcome.dropped is not None or outcome.gaps or outcome.snapshot_applied:
            self._bookkeeping(normalizer, outcome, kind)
        if not envelopes:
            return
        key = self._keys[normalizer.venue_symbol]
        held = self._held
        # Serialized here, at once: the normalizer keeps one envelope per kind and overwrites it next time.
        for envelope in envelopes:
            item = self._outgoing(key, envelope)
            if held:
                held.append(item)
            elif not self.sink.offer(item):
                held.append(item)
                self._hold()

    def _bookkeeping(self, normalizer: InstrumentNormalizer, outcome: Outcome, kind: str) -> None:
        if outcome.dropped is Drop.DUPLICATE:
            self._dup[kind] += 1
        elif outcome.dropped is Drop.UNSYNCED:
            self.metrics.unsynced.labels(self.venue).inc()
        for stream in outcome.gaps:
            self.metrics.gaps.labels(self.venue, stream.value).inc()
            log.warning("%s %s: %s gap", self.venue, normalizer.symbol, stream.value)
        if outcome.snapshot_applied:
            self._unsynced_since.pop(normalizer.venue_symbol, None)

    def _outgoing(self, key: bytes, env: MarketDataEnvelope) -> Outgoing:
        kind = env.WhichOneof("payload") or "unknown"
        return Outgoing(key, env.SerializeToString(), env.exchange_time_ns or env.ingest_time_ns, self.venue,
                        kind, env.event_id, env.exchange_time_ns)  # fmt: skip

    def _hold(self) -> None:
        """The sink is full: stop reading and move the held envelopes into it as room frees up."""
        for connection in self.connections:
            connection.pause_reading()
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain(), name=f"{self.venue}-held")

    async def _drain(self) -> None:
        held = self._held
        sink = self.sink
        try:
            while held:
                if sink.offer(held[0]):
                    held.popleft()
                else:
                    await sink.room()
        except asyncio.CancelledError:
            # Cancelled while waiting for buffer space (shutdown past its grace): count, never silent.
            self.sink.count_dropped("cancelled", len(held))
            held.clear()
            raise
        finally:
            self._drainer = None
            for connection in self.connections:
                connection.resume_reading()

    async def _room(self) -> None:
        """Wait until nothing is held back (without cancelling the drain if the caller is cancelled)."""
        drainer = self._drainer
        if drainer is not None:
            await asyncio.wait({drainer})

    def _flush_counts(self) -> None:
        """Add the events counted since the last flush to the metrics (a counter per message is slow)."""
        for counts, metric in ((self._in, self.metrics.messages_in), (self._dup, self.metrics.duplicates)):
            for kind, n in counts.items():
                if n:
                    counts[kind] = 0
                    metric.labels(self.venue, kind).inc(n)

    # -- resynchronisation -------------------------------------------------------------------------------

    def _start_resync(self, normalizer: InstrumentNormalizer, stream: Stream, *, after_gap: bool) -> None:
        """Initialise or re-initialise a book (a REST snapshot or a resubscription), once at a time."""
        venue_symbol = normalizer.venue_symbol
        self._unsynced_since.setdefault(venue_symbol, time.monotonic())
        if venue_symbol in self._resyncing or self._stopping:
            return
        if after_gap:
            self.metrics.resyncs.labels(self.venue, stream.value).inc()
        self._resyncing.add(venue_symbol)
        if self.adapter.rest_snapshots and stream is Stream.DEPTH:
            task = asyncio.create_task(
                self._resync_rest(normalizer), name=f"resync-{self.venue}-{venue_symbol}"
            )
        else:
            task = asyncio.create_task(
                self._resubscribe(self.adapter.resync_streams(stream, venue_symbol), "resync"),
                name=f"resync-{self.venue}-{venue_symbol}",
            )
            task.add_done_callback(lambda _: self._resyncing.discard(venue_symbol))
        self._tasks.append(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    async def _resync_rest(self, normalizer: InstrumentNormalizer) -> None:
        """Fetch REST snapshots until the book is consistent again (rate-limited, with backoff on errors)."""
        venue_symbol = normalizer.venue_symbol
        try:
            while not self._stopping:
                snapshot = await self._fetch_snapshot(venue_symbol)
                outcome = normalizer.on_event(snapshot, time.time_ns())
                self._emit(normalizer, outcome, "book_snapshot")
                await self._room()
                if outcome.resync is None:
                    if normalizer.book_synced:
                        log.info(
                            "%s %s: book synchronised at %d",
                            self.venue,
                            venue_symbol,
                            snapshot.last_update_id,
                        )
                    return
                log.info("%s %s: snapshot %d older than buffered diffs; fetching again", self.venue,
                         venue_symbol, snapshot.last_update_id)  # fmt: skip
        finally:
            self._resyncing.discard(venue_symbol)

    async def _fetch_snapshot(self, venue_symbol: str) -> DepthSnapshot:
        """One valid REST snapshot, retried with backoff (tenacity) on errors and malformed bodies."""
        assert self.snapshots is not None, "a venue with REST snapshots needs a snapshot client"
        snapshots = self.snapshots

        def failed(state: RetryCallState) -> None:
            self.metrics.snapshots.labels(self.venue, "error").inc()
            error = state.outcome.exception() if state.outcome is not None else None
            log.warning("%s %s: snapshot failed (%s); retry in %.1fs", self.venue, venue_symbol, error,
                        state.upcoming_sleep)  # fmt: skip

        retrying = AsyncRetrying(
            wait=equal_jitter(self.policy.reconnect_initial_s, _SNAPSHOT_BACKOFF_CAP_S),
            retry=retry_if_exception_type((SnapshotError, MalformedFrameError)),
            before_sleep=failed,
            reraise=True,
        )
        snapshot: DepthSnapshot | None = None
        async for attempt in retrying:
            with attempt:
                body = await snapshots.fetch(self.adapter.snapshot_url(venue_symbol))
                snapshot = self.adapter.parse_snapshot(body, venue_symbol, time.time_ns())
        assert snapshot is not None  # the loop only ends with a snapshot (errors are retried forever)
        self.metrics.snapshots.labels(self.venue, "ok").inc()
        return snapshot

    async def _resubscribe(self, streams: list[str], reason: str) -> None:
        by_connection: dict[int, tuple[FeedConnection, list[str]]] = {}
        for stream in streams:
            connection = self._stream_connection.get(stream)
            if connection is not None:
                by_connection.setdefault(id(connection), (connection, []))[1].append(stream)
        for connection, group in by_connection.values():
            self.metrics.resubscribes.labels(self.venue, reason).inc(len(group))
            for message in self.adapter.subscribe_messages(group, unsubscribe=True):
                await connection.send(message)
            for message in self.adapter.subscribe_messages(group):
                await connection.send(message)

    def _on_connect(self, connection: FeedConnection) -> None:
        now = time.monotonic()
        for stream in connection.streams:
            self._last_seen[stream] = now
            normalizer = self.normalizers.get(self.streams[stream])
            if normalizer is not None:
                normalizer.on_reconnect()

    # -- maintenance -------------------------------------------------------------------------------------

    async def _maintain(self) -> None:
        """Every second: resubscribe silent streams, retry resyncs that did not complete."""
        while True:
            await asyncio.sleep(_MAINTENANCE_S)
            self._flush_counts()
            now = time.monotonic()
            stale = [
                s
                for s, c in self._stream_connection.items()
                if c.connected and now - self._last_seen.get(s, now) > self.stale_stream_after_s
            ]
            self.metrics.stale_streams.labels(self.venue).set(len(stale))
            if stale:
                log.warning("%s: %d stream(s) silent for %.0fs, resubscribing: %s", self.venue, len(stale),
                            self.stale_stream_after_s, stale[:5])  # fmt: skip
                for s in stale:
                    self._last_seen[s] = now
                await self._resubscribe(stale, "stale")
            for venue_symbol, since in list(self._unsynced_since.items()):
                normalizer = self.normalizers[venue_symbol]
                if normalizer.book_synced and (
                    normalizer.bbo is None or normalizer.bbo.state.value == "synced"
                ):
                    self._unsynced_since.pop(venue_symbol, None)
                elif now - since > _RESYNC_RETRY_S and venue_symbol not in self._resyncing:
                    self._unsynced_since[venue_symbol] = now
                    stream = Stream.DEPTH if not normalizer.book_synced else Stream.QUOTE
                    log.warning(
                        "%s %s: %s still unsynchronised, retrying", self.venue, venue_symbol, stream.value
                    )
                    self._start_resync(normalizer, stream, after_gap=False)
