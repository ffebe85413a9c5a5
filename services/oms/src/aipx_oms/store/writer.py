"""GroupCommitWriter: every state change of the OMS, committed many at a time, acknowledged after commit.

Concurrent callers queue Mutations; one writer task takes everything queued while the previous commit was
running (up to batch_max_ops) and commits it as ONE transaction (synchronous_commit on), then resolves each
caller's future. Throughput grows with concurrency while each caller still waits only for its own durable
commit. A single writer also makes the global log_sequence follow commit order, which is what lets a stream
resume from a log sequence without missing events. The writer commits on the leader session
(store/leadership.py), which holds the PostgreSQL advisory lock: a second OMS process cannot write
concurrently, and a leader whose session is gone cannot commit (fencing). While idle the writer pings its
session, so a lost session is noticed within a heartbeat and a healthy idle one is not ended by
idle_session_timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from aipx.aio import cancel_and_wait
from aipx.ops import LATENCY_BUCKETS
from prometheus_client import Histogram

from aipx_oms.domain.ledger import Entry, LedgerError, Reservation
from aipx_oms.domain.model import Fill, Order, OrderEvent, Position
from aipx_oms.store import ledger
from aipx_oms.store.errors import (
    DeadlineExceededError,
    StoreUnavailableError,
    WriteConflictError,
    is_unavailable,
)
from aipx_oms.store.leadership import (
    FencedError,
    LeaderLockHeldError,
    LeaderSession,
    SessionLimits,
    SessionState,
)
from aipx_oms.store.postgres import RequestKeyRow
from aipx_oms.store.rows import ORDER_COLUMNS, order_columns, order_from_row

log = logging.getLogger(__name__)

BATCH_SIZE = Histogram(
    "aipx_oms_commit_batch_operations",
    "Operations committed per transaction by the group-commit writer",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
COMMIT_SECONDS = Histogram("aipx_oms_commit_seconds", "Duration of one group commit", buckets=LATENCY_BUCKETS)

_ORDER_TYPES = (
    "text[]", "text[]", "text[]", "text[]", "text[]", "text[]", "text[]", "numeric[]", "numeric[]",
    "numeric[]", "bool[]", "bool[]", "text[]", "text[]", "text[]", "numeric[]", "numeric[]", "text[]",
    "text[]", "jsonb[]", "int8[]", "int8[]", "int8[]",
)  # fmt: skip
_INSERT_ORDERS = (
    f"INSERT INTO orders ({ORDER_COLUMNS}) SELECT * FROM unnest("
    + ", ".join(f"${i + 1}::{t}" for i, t in enumerate(_ORDER_TYPES))
    + ") ON CONFLICT (account_id, client_order_id) DO NOTHING RETURNING order_id"
)
_UPDATE_ORDERS = (
    "UPDATE orders o SET quantity = u.quantity, price = u.price, venue_order_id = u.venue_order_id,"
    " status = u.status, filled_quantity = u.filled_quantity, average_fill_price = u.average_fill_price,"
    " reject_reason = u.reject_reason, reject_message = u.reject_message, sequence = u.sequence,"
    " updated_time_ns = u.updated_time_ns"
    " FROM unnest($1::text[], $2::numeric[], $3::numeric[], $4::text[], $5::text[], $6::numeric[],"
    " $7::numeric[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::int8[])"
    " AS u(order_id, quantity, price, venue_order_id, status, filled_quantity, average_fill_price,"
    " reject_reason, reject_message, sequence, updated_time_ns, expected_sequence)"
    " WHERE o.order_id = u.order_id AND o.sequence = u.expected_sequence RETURNING o.order_id"
)
_INSERT_EVENTS = (
    "WITH ev AS (INSERT INTO order_events"
    " (log_sequence, event_id, account_id, order_id, sequence, type, symbol, event_time_ns, payload)"
    " SELECT * FROM unnest($1::int8[], $2::uuid[], $3::text[], $4::text[], $5::int8[], $6::text[],"
    " $7::text[], $8::int8[], $9::bytea[]) RETURNING log_sequence)"
    " INSERT INTO outbox (log_sequence) SELECT log_sequence FROM ev"
)
# The hot path: a batch of new orders with their events as ONE statement (hence one implicit transaction and
# one round trip). Events of orders that already existed (idempotent repeats) are not inserted.
_INSERT_NEW_ORDERS_AND_EVENTS = (
    f"WITH o AS (INSERT INTO orders ({ORDER_COLUMNS}) SELECT * FROM unnest("
    + ", ".join(f"${i + 1}::{t}" for i, t in enumerate(_ORDER_TYPES))
    + ") ON CONFLICT (account_id, client_order_id) DO NOTHING RETURNING order_id),"
    " e AS (INSERT INTO order_events"
    " (log_sequence, event_id, account_id, order_id, sequence, type, symbol, event_time_ns, payload)"
    " SELECT v.* FROM unnest($24::int8[], $25::uuid[], $26::text[], $27::text[], $28::int8[], $29::text[],"
    " $30::text[], $31::int8[], $32::bytea[]) AS v(log_sequence, event_id, account_id, order_id, sequence,"
    " type, symbol, event_time_ns, payload) WHERE v.order_id IN (SELECT order_id FROM o)"
    " RETURNING log_sequence),"
    " x AS (INSERT INTO outbox (log_sequence) SELECT log_sequence FROM e),"
    " r AS (INSERT INTO balance_reservations (order_id, account_id, asset, amount)"
    " SELECT v.* FROM unnest($33::text[], $34::text[], $35::text[], $36::numeric[])"
    " AS v(order_id, account_id, asset, amount) WHERE v.order_id IN (SELECT order_id FROM o))"
    " SELECT order_id FROM o"
)
# Funds held by new or replaced orders (a replace holds a new amount of the same asset).
_UPSERT_RESERVATIONS = (
    "INSERT INTO balance_reservations (order_id, account_id, asset, amount)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[])"
    " ON CONFLICT (order_id, asset) DO UPDATE SET amount = EXCLUDED.amount"
)
_INSERT_FILLS = (
    "INSERT INTO fills (fill_id, order_id, account_id, symbol, side, quantity, price, fee, fee_currency,"
    " liquidity, venue, venue_fill_id, fill_time_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
    " $12, $13)"
)
_UPSERT_POSITIONS = (
    "INSERT INTO positions (account_id, symbol, quantity, average_price, realized_pnl, updated_time_ns)"
    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, symbol) DO UPDATE SET"
    " quantity = EXCLUDED.quantity, average_price = EXCLUDED.average_price,"
    " realized_pnl = EXCLUDED.realized_pnl, updated_time_ns = EXCLUDED.updated_time_ns"
)


@dataclass(frozen=True, slots=True)
class RequestKey:
    """Idempotency record of a cancel/replace request."""

    account_id: str
    idempotency_key: str
    kind: str
    order_id: str
    outcome: str
    reason: str | None = None
    message: str = ""
    fingerprint: str = ""  # what the request asked for (domain.idempotency): a reuse must match it


@dataclass(slots=True)
class Mutation:
    """One caller's atomic change: all of it commits, or none of it.

    `new_order` and `request_key` are idempotent inserts: if the row already exists the whole mutation is
    skipped and the result carries the existing order / request outcome instead.
    """

    new_order: Order | None = None
    request_key: RequestKey | None = None
    updates: list[tuple[Order, int]] = field(default_factory=list)  # (new version, expected old sequence)
    fills: list[Fill] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    events: list[OrderEvent] = field(default_factory=list)
    # Funds held by a new or replaced order: (account id, reservation), written with the order.
    reservations: list[tuple[str, Reservation]] = field(default_factory=list)
    # A fill's ledger entries (base, quote, fee) and whether its order is now finished: posted with the fill
    # (store.ledger.post_fill, idempotent per fill). An order that becomes terminal releases its funds.
    ledger_fills: list[tuple[tuple[Entry, Entry, Entry], bool]] = field(default_factory=list)
    # More of the same change, run in the commit's transaction after everything above (e.g. an operator's
    # ledger entry with its audit record); what it returns is the result's `in_commit`. A LedgerError it
    # raises fails this mutation alone, with that error.
    in_commit: Callable[[ledger.Conn], Awaitable[Any]] | None = None
    deadline: float | None = None  # loop.time() after which the caller no longer waits


@dataclass(frozen=True, slots=True)
class WriteResult:
    """created=False: the idempotent insert found an existing row (nothing of the mutation was written)."""

    created: bool
    existing_order: Order | None = None
    existing_request: RequestKeyRow | None = None
    log_sequences: tuple[int, ...] = ()
    in_commit: Any = None  # what the mutation's in_commit returned


@dataclass(frozen=True, slots=True)
class CommittedEvent:
    log_sequence: int
    event: OrderEvent
    payload: bytes


CommitListener = Callable[[Sequence[CommittedEvent]], None]


class CommitWatcher(Protocol):
    """Follows what the writer commits, in log-sequence order (e.g. the durable send path, in memory)."""

    def committed(self, events: Sequence[CommittedEvent]) -> None:
        """`events` were committed (consecutive log sequences)."""

    def outcome_unknown(self, first_log_sequence: int) -> None:
        """A commit's outcome was never learned (the connection broke during it): its events, from
        `first_log_sequence` on, may be in the log although `committed` never names them."""


# The stored (and published) bytes of an event at its log sequence. The wire format is the caller's: the
# store does not know protobuf (the server passes aipx_oms.wire.event_payload).
EventEncoder = Callable[[OrderEvent, int], bytes]
SessionListener = Callable[[SessionState], None]


def _event_columns(events: Sequence[CommittedEvent]) -> list[list[Any]]:
    """The order_events columns of `events` for unnest(), in the INSERT's column order."""
    return [
        [c.log_sequence for c in events],
        [c.event.event_id for c in events],
        [c.event.order.account_id for c in events],
        [c.event.order.order_id for c in events],
        [c.event.order.sequence for c in events],
        [c.event.type.value for c in events],
        [c.event.order.symbol for c in events],
        [c.event.event_time_ns for c in events],
        [c.payload for c in events],
    ]


@dataclass(slots=True)
class _Pending:
    mutation: Mutation
    future: asyncio.Future[WriteResult]


class GroupCommitWriter:
    """Single-writer group commit over one dedicated connection (see the module docstring)."""

    def __init__(
        self,
        dsn: str,
        *,
        encode_event: EventEncoder,
        max_ops: int = 512,
        linger_s: float = 0.0,
        on_commit: CommitListener | None = None,
        session: LeaderSession | None = None,
        on_session: SessionListener | None = None,
    ) -> None:
        self.dsn = dsn
        self.encode_event = encode_event
        self.max_ops = max_ops
        self.linger_s = linger_s
        self.on_commit = on_commit
        self.session = session or LeaderSession(dsn, holder="aipx-oms", limits=SessionLimits())
        self.on_session = on_session
        self._fenced = False
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._conn: asyncpg.Connection | None = None
        self._next_log_sequence = 0
        self._last_batch = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._watchers: list[CommitWatcher] = []

    def watch(self, watcher: CommitWatcher) -> None:
        """Tell `watcher` about every commit from now on (and every commit whose outcome is unknown)."""
        self._watchers.append(watcher)

    async def start(self) -> None:
        """Connect and take the leader lock (LeaderLockHeldError when another process leads,
        StoreUnavailableError when PostgreSQL is down), then start the writer task."""
        await self._connect()
        self._task = asyncio.create_task(self._run(), name="group-commit-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop and release the leader lock (a standby takes over)."""
        self._closing = True
        if self._task is not None:
            await self._queue.join()
            await cancel_and_wait(self._task, what="order writer")
        self._conn = None
        await self.session.release()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def fenced(self) -> bool:
        """Another process led since this writer's term began: it will never commit again."""
        return self._fenced

    def enqueue(self, mutation: Mutation) -> asyncio.Future[WriteResult]:
        """Queue a mutation; the future resolves once it is durably committed (or refused). The writer never
        cancels it, so a caller that is cancelled meanwhile can still learn (by callback) what happened."""
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        if self._closing:
            future.set_exception(StoreUnavailableError("the OMS is shutting down"))
        else:
            self._queue.put_nowait(_Pending(mutation, future))
        return future

    async def write(self, mutation: Mutation) -> WriteResult:
        """Queue a mutation and wait until it is durably committed (or refused)."""
        return await asyncio.shield(self.enqueue(mutation))

    async def _connect(self) -> asyncpg.Connection:
        """The leader session: taken at start, re-established after a loss only while the term is ours."""
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        if self._fenced:
            raise FencedError("this OMS process is no longer the leader")
        conn = self.session.connection
        if conn is None:
            if self.session.term is None:
                if not await self.session.acquire():
                    raise LeaderLockHeldError("another OMS process holds the writer lock of this database")
                conn = self.session.connection
                assert conn is not None
            else:
                try:
                    conn = await self.session.reconnect()
                except FencedError:
                    self._fenced = True
                    self._notify(SessionState.FENCED)
                    raise
        try:
            # Resume the log where the committed log ends (anything after was never committed).
            self._next_log_sequence = (
                int(await conn.fetchval("SELECT coalesce(max(log_sequence), 0) FROM order_events")) + 1
            )
        except Exception as exc:
            self.session.close_session()
            if is_unavailable(exc):
                raise StoreUnavailableError(f"PostgreSQL unavailable: {exc}") from exc
            raise
        self._conn = conn
        self._notify(SessionState.LEADING)
        return conn

    def _drop_connection(self) -> None:
        self.session.close_session()
        if self._conn is not None:
            self._conn = None
            self._notify(SessionState.LOST)

    def _notify(self, state: SessionState) -> None:
        if self.on_session is not None:
            try:
                self.on_session(state)
            except Exception:  # a listener's failure must not stop the writer
                log.exception("session listener failed")

    async def _next(self) -> _Pending:
        """The next queued mutation; while none comes, keep the leader session alive (or re-establish it)."""
        while True:
            if not self._queue.empty():
                return self._queue.get_nowait()
            try:
                # asyncio.timeout, not wait_for: no task wrapped around each wait (one per batch when idle).
                async with asyncio.timeout(self.session.limits.heartbeat_s):
                    return await self._queue.get()
            except TimeoutError:
                await self._keep_session()

    async def _keep_session(self) -> None:
        if self._fenced:
            return
        try:
            if self.connected:
                await self.session.heartbeat()
            else:
                await self._connect()
        except FencedError:
            pass  # notified by _connect
        except StoreUnavailableError as exc:
            if self._conn is not None:
                log.warning("leader session lost: %s", exc)
            self._drop_connection()
        except Exception:
            log.exception("leader session check failed")
            self._drop_connection()

    async def _run(self) -> None:
        while True:
            first = await self._next()
            batch = [first]
            if self.linger_s and self._last_batch > 1 and self._queue.qsize() < self.max_ops:
                # Concurrent writers are about: wait a moment for more of them (fewer, larger commits).
                await asyncio.sleep(self.linger_s)
            else:
                # Let requests already received by this process reach the queue before committing: yield to
                # the event loop while the queue keeps growing (a lone request waits one loop iteration).
                seen = -1
                for _ in range(16):
                    size = self._queue.qsize()
                    if size == seen or size >= self.max_ops:
                        break
                    seen = size
                    await asyncio.sleep(0)
            while len(batch) < self.max_ops and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._last_batch = len(batch)
            try:
                await self._process(batch)
            except Exception:  # never let the writer die: every caller has its answer by now
                log.exception("group commit failed unexpectedly")
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(StoreUnavailableError("internal writer error"))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _process(self, batch: list[_Pending]) -> None:
        now = asyncio.get_running_loop().time()
        live: list[_Pending] = []
        for pending in batch:
            deadline = pending.mutation.deadline
            if pending.future.cancelled():
                continue
            if deadline is not None and deadline <= now:
                pending.future.set_exception(DeadlineExceededError("deadline passed before the write"))
            else:
                live.append(pending)
        if not live:
            return
        try:
            conn = await self._connect()
        except StoreUnavailableError as exc:
            for pending in live:
                pending.future.set_exception(exc)
            return
        first_log_sequence = self._next_log_sequence
        try:
            results, committed = await self._commit(conn, [p.mutation for p in live])
        except Exception as exc:
            if is_unavailable(exc) or (self._conn is not None and self._conn.is_closed()):
                # The outcome of an interrupted COMMIT is unknown: callers retry idempotently.
                self._drop_connection()
                error = StoreUnavailableError(f"PostgreSQL unavailable during commit: {exc}")
                for pending in live:
                    pending.future.set_exception(error)
                for watcher in self._watchers:
                    self._tell(watcher.outcome_unknown, first_log_sequence)
                return
            if len(live) == 1:
                live[0].future.set_exception(
                    exc if isinstance(exc, WriteConflictError | LedgerError) else WriteConflictError(str(exc))
                )
                return
            # One bad mutation must not fail its neighbours: retry each alone.
            log.warning("group commit of %d failed (%s); retrying one by one", len(live), exc)
            for pending in live:
                await self._process([pending])
            return
        for pending, result in zip(live, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)
        if committed:
            if self.on_commit is not None:
                self.on_commit(committed)
            for watcher in self._watchers:
                self._tell(watcher.committed, committed)

    @staticmethod
    def _tell(call: Callable[[Any], None], what: object) -> None:
        try:
            call(what)
        except Exception:  # a watcher's failure must not stop the writer (every caller has its answer)
            log.exception("commit watcher failed")

    async def _commit(
        self, conn: asyncpg.Connection, mutations: list[Mutation]
    ) -> tuple[list[WriteResult], list[CommittedEvent]]:
        started = time.perf_counter()
        first_log_sequence = self._next_log_sequence
        try:
            if all(_is_plain_submit(m) for m in mutations):
                results, committed = await self._apply_submits(conn, mutations)
            else:
                async with conn.transaction():
                    results, committed = await self._apply(conn, mutations)
        except BaseException:
            self._next_log_sequence = first_log_sequence
            raise
        COMMIT_SECONDS.observe(time.perf_counter() - started)
        BATCH_SIZE.observe(len(mutations))
        return results, committed

    def _encode(self, events: list[OrderEvent]) -> tuple[list[CommittedEvent], list[int]]:
        committed: list[CommittedEvent] = []
        sequences: list[int] = []
        for event in events:
            log_sequence = self._next_log_sequence
            self._next_log_sequence += 1
            committed.append(CommittedEvent(log_sequence, event, self.encode_event(event, log_sequence)))
            sequences.append(log_sequence)
        return committed, sequences

    async def _apply_submits(
        self, conn: asyncpg.Connection, mutations: list[Mutation]
    ) -> tuple[list[WriteResult], list[CommittedEvent]]:
        """New orders only: one statement inserts the orders, their events and outbox rows."""
        orders = [m.new_order for m in mutations if m.new_order is not None]
        encoded = [self._encode(m.events) for m in mutations]
        events = [c for committed, _ in encoded for c in committed]
        columns = [list(c) for c in zip(*(order_columns(o) for o in orders), strict=True)]
        held = [(a, r) for m in mutations for a, r in m.reservations]
        rows = await conn.fetch(
            _INSERT_NEW_ORDERS_AND_EVENTS, *columns, *_event_columns(events), *_reservation_columns(held)
        )
        inserted = {r[0] for r in rows}
        existing: dict[tuple[str, str], Order] = {}
        missing = [o for o in orders if o.order_id not in inserted]
        if missing:
            found = await conn.fetch(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE (account_id, client_order_id) IN"
                " (SELECT * FROM unnest($1::text[], $2::text[]))",
                [o.account_id for o in missing],
                [o.client_order_id for o in missing],
            )
            existing = {(r["account_id"], r["client_order_id"]): order_from_row(r) for r in found}
        results: list[WriteResult] = []
        committed: list[CommittedEvent] = []
        for mutation, (mutation_events, sequences) in zip(mutations, encoded, strict=True):
            order = mutation.new_order
            assert order is not None
            if order.order_id in inserted:
                committed.extend(mutation_events)
                results.append(WriteResult(True, log_sequences=tuple(sequences)))
            else:
                results.append(
                    WriteResult(False, existing_order=existing[(order.account_id, order.client_order_id)])
                )
        return results, committed

    async def _apply(
        self, conn: asyncpg.Connection, mutations: list[Mutation]
    ) -> tuple[list[WriteResult], list[CommittedEvent]]:
        skipped: dict[int, WriteResult] = {}

        keyed = [(i, m.request_key) for i, m in enumerate(mutations) if m.request_key is not None]
        if keyed:
            inserted = {
                (r[0], r[1])
                for r in await conn.fetch(
                    "INSERT INTO request_keys (account_id, idempotency_key, kind, order_id, outcome, reason,"
                    " message, fingerprint) SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
                    " $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) ON CONFLICT DO NOTHING"
                    " RETURNING account_id, idempotency_key",
                    *(
                        list(col)
                        for col in zip(
                            *[
                                (
                                    k.account_id,
                                    k.idempotency_key,
                                    k.kind,
                                    k.order_id,
                                    k.outcome,
                                    k.reason,
                                    k.message,
                                    k.fingerprint,
                                )
                                for _, k in keyed
                            ],
                            strict=True,
                        )
                    ),
                )
            }
            for i, key in keyed:
                if (key.account_id, key.idempotency_key) not in inserted:
                    row = await conn.fetchrow(
                        "SELECT account_id, idempotency_key, kind, order_id, outcome, reason, message,"
                        " fingerprint FROM request_keys WHERE account_id = $1 AND idempotency_key = $2",
                        key.account_id,
                        key.idempotency_key,
                    )
                    assert row is not None
                    skipped[i] = WriteResult(False, existing_request=RequestKeyRow(*row.values()))

        new = [
            (i, m.new_order) for i, m in enumerate(mutations) if m.new_order is not None and i not in skipped
        ]
        if new:
            columns = list(zip(*(order_columns(o) for _, o in new), strict=True))
            inserted_ids = {r[0] for r in await conn.fetch(_INSERT_ORDERS, *(list(c) for c in columns))}
            missing = [(i, o) for i, o in new if o.order_id not in inserted_ids]
            if missing:
                rows = await conn.fetch(
                    f"SELECT {ORDER_COLUMNS} FROM orders WHERE (account_id, client_order_id) IN"
                    " (SELECT * FROM unnest($1::text[], $2::text[]))",
                    [o.account_id for _, o in missing],
                    [o.client_order_id for _, o in missing],
                )
                existing = {(r["account_id"], r["client_order_id"]): order_from_row(r) for r in rows}
                for i, order in missing:
                    skipped[i] = WriteResult(
                        False, existing_order=existing[(order.account_id, order.client_order_id)]
                    )

        active = [(i, m) for i, m in enumerate(mutations) if i not in skipped]
        updates = [u for _, m in active for u in m.updates]
        if updates:
            rows = await conn.fetch(
                _UPDATE_ORDERS,
                [o.order_id for o, _ in updates],
                [o.quantity for o, _ in updates],
                [o.price for o, _ in updates],
                [o.venue_order_id for o, _ in updates],
                [o.status.value for o, _ in updates],
                [o.filled_quantity for o, _ in updates],
                [o.average_fill_price for o, _ in updates],
                [o.reject_reason.value if o.reject_reason else None for o, _ in updates],
                [o.reject_message for o, _ in updates],
                [o.sequence for o, _ in updates],
                [o.updated_time_ns for o, _ in updates],
                [expected for _, expected in updates],
            )
            if len(rows) != len(updates):
                changed = {r[0] for r in rows}
                stale = [o.order_id for o, _ in updates if o.order_id not in changed]
                raise WriteConflictError(f"orders changed concurrently (stale version): {stale}")
        fills = [f for _, m in active for f in m.fills]
        if fills:
            await conn.executemany(
                _INSERT_FILLS,
                [
                    (f.fill_id, f.order_id, f.account_id, f.symbol, f.side.value, f.quantity, f.price, f.fee,
                     f.fee_currency, f.liquidity.value, f.venue, f.venue_fill_id, f.fill_time_ns)
                    for f in fills
                ],
            )  # fmt: skip
        positions = [p for _, m in active for p in m.positions]
        if positions:
            await conn.executemany(
                _UPSERT_POSITIONS,
                [(p.account_id, p.symbol, p.quantity, p.average_price, p.realized_pnl, p.updated_time_ns)
                 for p in positions],
            )  # fmt: skip
        for _, m in active:
            for entries, final in m.ledger_fills:
                # A fill already happened at the venue: posted even if it overdraws (check=False).
                await ledger.post_fill(conn, entries, final=final, check=False)
        finished = [o.order_id for o, _ in updates if o.status.is_terminal]
        if finished:
            await conn.execute("DELETE FROM balance_reservations WHERE order_id = ANY($1::text[])", finished)
        held = [(a, r) for _, m in active for a, r in m.reservations]
        if held:
            await conn.execute(_UPSERT_RESERVATIONS, *_reservation_columns(held))
        # After every reservation of the batch: an operator's debit is checked against all of them.
        extra = {i: await m.in_commit(conn) for i, m in active if m.in_commit is not None}

        results: list[WriteResult] = []
        committed: list[CommittedEvent] = []
        for i, mutation in enumerate(mutations):
            if i in skipped:
                results.append(skipped[i])
                continue
            sequences: list[int] = []
            for event in mutation.events:
                log_sequence = self._next_log_sequence
                self._next_log_sequence += 1
                payload = self.encode_event(event, log_sequence)
                committed.append(CommittedEvent(log_sequence, event, payload))
                sequences.append(log_sequence)
            results.append(WriteResult(True, log_sequences=tuple(sequences), in_commit=extra.get(i)))
        if committed:
            await conn.execute(_INSERT_EVENTS, *_event_columns(committed))
        return results, committed


def _reservation_columns(held: Sequence[tuple[str, Reservation]]) -> list[list[Any]]:
    return [
        [r.order_id for _, r in held],
        [account_id for account_id, _ in held],
        [r.asset for _, r in held],
        [r.amount for _, r in held],
    ]


def _is_plain_submit(mutation: Mutation) -> bool:
    """A new order, its own events and funds, nothing else (the one-statement path applies)."""
    order = mutation.new_order
    return (
        order is not None
        and mutation.request_key is None
        and not mutation.updates
        and not mutation.fills
        and not mutation.positions
        and not mutation.ledger_fills
        and mutation.in_commit is None
        and all(e.order.order_id == order.order_id for e in mutation.events)
        and all(r.order_id == order.order_id for _, r in mutation.reservations)
    )
