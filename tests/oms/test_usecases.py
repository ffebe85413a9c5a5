"""The OMS use cases, each without gRPC and without I/O: in-memory fakes of the store, the group-commit
writer, the rate limiter and a venue stand in for PostgreSQL, Redis and the network (the same flows run
against the real ones in the integration tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

import pytest
from aipx_oms.domain.ledger import AccountLedger
from aipx_oms.domain.model import (
    AccountState,
    EventType,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    RejectReason,
    Side,
    TimeInForce,
)
from aipx_oms.domain.risk import RateVerdict
from aipx_oms.errors import IdempotencyConflictError
from aipx_oms.events import EventBus
from aipx_oms.sending import NEVER_RECEIVED, VenueSender
from aipx_oms.settings import OmsSettings
from aipx_oms.store.admin import DEMO_INSTRUMENTS
from aipx_oms.store.errors import StoreUnavailableError
from aipx_oms.store.postgres import AccountRow, EventHead, RequestKeyRow, StoredEvent
from aipx_oms.store.writer import CommittedEvent, Mutation, WriteResult
from aipx_oms.usecases.books import BookCache
from aipx_oms.usecases.cancel_replace import CancelReplace
from aipx_oms.usecases.coalescing import Coalescer
from aipx_oms.usecases.committing import Committer
from aipx_oms.usecases.reports import ExecutionReports
from aipx_oms.usecases.streaming import EventStream
from aipx_oms.usecases.submit import SubmitOrders
from aipx_oms.venues.base import ExecutionReport, ReportKind, VenueUnavailableError
from aipx_oms.venues.market_data import MarketDataCache

INSTRUMENTS = {i.symbol: i for i in DEMO_INSTRUMENTS}


@dataclass
class FakeStore:
    """The store's reads, from dicts."""

    orders: dict[str, Order] = field(default_factory=dict)
    state: AccountState = AccountState.ACTIVE
    request_keys: dict[str, RequestKeyRow] = field(default_factory=dict)
    fills: set[str] = field(default_factory=set)
    loads: int = 0
    events: list[StoredEvent] = field(default_factory=list)
    heads: list[EventHead] = field(default_factory=list)

    async def instruments(self) -> dict[str, Any]:
        return INSTRUMENTS

    async def account(self, account_id: str) -> AccountRow:
        self.loads += 1
        return AccountRow(account_id, self.state, {}, {})

    async def open_orders(self, account_id: str | None = None) -> list[Order]:
        return [o for o in self.orders.values() if o.status.is_open]

    async def positions(self, account_id: str, symbols: Any = ()) -> list[Position]:
        return []

    async def account_ledger(self, account_id: str) -> AccountLedger:
        return AccountLedger(account_id, allow_negative=True)  # balances are test_money_path.py's subject

    async def order(self, account_id: str, *, order_id: str = "", client_order_id: str = "",
                    budget_s: float | None = None) -> Order | None:  # fmt: skip
        for o in self.orders.values():
            if o.order_id == order_id or (client_order_id and o.client_order_id == client_order_id):
                return o
        return None

    async def order_by_id(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    async def request_key(self, account_id: str, key: str) -> RequestKeyRow | None:
        return self.request_keys.get(key)

    async def fill_exists(self, fill_id: str) -> bool:
        return fill_id in self.fills

    async def events_after(self, account_id: str, after: int, limit: int, **_: Any) -> list[StoredEvent]:
        return [e for e in self.events if e.log_sequence > after][:limit]

    async def last_log_sequence(self) -> int:
        return 0

    async def recent_events(self, after: int, limit: int) -> list[EventHead]:
        return [h for h in self.heads if h.log_sequence > after][:limit]

    async def orders_to_venue(self, order_ids: list[str]) -> list[Order]:
        return [self.orders[i] for i in order_ids if i in self.orders]


@dataclass
class FakeWriter:
    """Commits into the FakeStore at once; `fail` makes the next commits fail as PostgreSQL down would."""

    store: FakeStore
    mutations: list[Mutation] = field(default_factory=list)
    fail: int = 0

    def enqueue(self, mutation: Mutation) -> asyncio.Future[WriteResult]:
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        if self.fail:
            self.fail -= 1
            future.set_exception(StoreUnavailableError("PostgreSQL unavailable during commit"))
            return future
        if mutation.new_order is not None:
            existing = next((o for o in self.store.orders.values()
                             if o.client_order_id == mutation.new_order.client_order_id), None)  # fmt: skip
            if existing is not None:
                future.set_result(WriteResult(False, existing_order=existing))
                return future
            self.store.orders[mutation.new_order.order_id] = mutation.new_order
        if mutation.request_key is not None:
            k = mutation.request_key
            self.store.request_keys[k.idempotency_key] = RequestKeyRow(
                k.account_id, k.idempotency_key, k.kind, k.order_id, k.outcome, k.reason, k.message,
                k.fingerprint,
            )  # fmt: skip
        for new, _ in mutation.updates:
            self.store.orders[new.order_id] = new
        self.store.fills.update(f.fill_id for f in mutation.fills)
        self.mutations.append(mutation)
        future.set_result(WriteResult(True))
        return future

    async def write(self, mutation: Mutation) -> WriteResult:
        return await self.enqueue(mutation)


class AllowAll:
    async def acquire(self, account_id: str, rate_per_s: Decimal, burst: int) -> RateVerdict:
        return RateVerdict.ALLOWED


@dataclass
class FakeSender:
    sent: list[Order] = field(default_factory=list)
    cancels: list[Order] = field(default_factory=list)

    def enqueue(self, order: Order) -> None:
        self.sent.append(order)

    async def cancel(self, order: Order) -> None:
        self.cancels.append(order)


def settings(**overrides: Any) -> OmsSettings:
    return OmsSettings(**{"cancel_wait_s": 0.0, **overrides})


@dataclass
class World:
    store: FakeStore
    writer: FakeWriter
    books: BookCache
    committer: Committer
    sender: FakeSender
    submits: SubmitOrders
    changes: CancelReplace
    reports: ExecutionReports


async def world(**overrides: Any) -> World:
    s = settings(**overrides)
    store = FakeStore()
    writer = FakeWriter(store)
    books = BookCache(s, cast(Any, store))
    books.instruments = INSTRUMENTS
    committer = Committer(cast(Any, writer), books)
    coalescer = Coalescer()
    sender = FakeSender()
    submits = SubmitOrders(
        s, books=books, committer=committer, coalescer=coalescer, limiter=AllowAll(),
        market=MarketDataCache(), sender=cast(Any, sender), venue_names=frozenset({"paper"}),
    )  # fmt: skip
    changes = CancelReplace(
        s, store=cast(Any, store), books=books, committer=committer, coalescer=coalescer,
        market=MarketDataCache(), venues={}, sender=cast(Any, sender),
    )  # fmt: skip
    reports = ExecutionReports(s, store=cast(Any, store), books=books, committer=committer)
    return World(store, writer, books, committer, sender, submits, changes, reports)


def request(coid: str = "c-1", side: Side = Side.BUY, quantity: str = "0.01") -> OrderRequest:
    return OrderRequest(
        coid, "BTC-USDT", side, OrderType.LIMIT, TimeInForce.GTC, Decimal(quantity), Decimal(20000)
    )


# --- coalescing / committing / books -------------------------------------------------------------------


async def test_coalescer_runs_concurrent_identical_work_once() -> None:
    runs = 0

    async def work() -> str:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.01)
        return "done"

    coalescer = Coalescer()
    results = await asyncio.gather(*(coalescer.run(("a", "k"), work) for _ in range(5)))
    assert runs == 1 and [r for r, _ in results] == ["done"] * 5
    assert sum(ran for _, ran in results) == 1


async def test_committer_applies_after_commit_and_marks_the_book_stale_when_the_outcome_is_unknown() -> None:
    w = await world()
    await w.books.book("a")
    applied: list[WriteResult] = []
    await w.committer.write("a", Mutation(), applied.append)
    assert applied == [WriteResult(True)]
    w.writer.fail = 1
    with pytest.raises(StoreUnavailableError):
        await w.committer.write("a", Mutation(), applied.append)
    loads = w.store.loads
    await w.books.book("a")
    assert w.store.loads == loads + 1, "a stale book is rebuilt from the store"
    assert w.books.order_lock("o-1") is w.books.order_lock("o-1")


# --- submit ---------------------------------------------------------------------------------------------


async def test_submit_accepts_reserves_and_hands_the_order_to_the_sender_after_commit() -> None:
    w = await world()
    order, created = await w.submits.submit("a", request(), None)
    assert created and order.status is OrderStatus.ACCEPTED
    assert w.sender.sent == [order], "sent only after its commit"
    book = w.books.loaded("a")
    assert book is not None and order.order_id in book.orders
    again, created = await w.submits.submit("a", request(quantity="0.010"), None)
    assert again.order_id == order.order_id and not created, "a true repeat returns the original"
    with pytest.raises(IdempotencyConflictError) as exc:
        await w.submits.submit("a", request(side=Side.SELL), None)
    assert exc.value.order_id == order.order_id and exc.value.fields == ["order.side"]
    assert len(w.sender.sent) == 1


async def test_a_denied_order_is_stored_but_never_sent() -> None:
    w = await world()
    w.store.state = AccountState.HALTED
    order, _ = await w.submits.submit("a", request(), None)
    assert order.status is OrderStatus.DENIED and order.reject_reason is RejectReason.ACCOUNT_HALTED
    assert w.sender.sent == [] and order.order_id in w.store.orders


# --- cancel / replace -----------------------------------------------------------------------------------


async def test_cancel_commits_pending_cancel_then_asks_the_venue_and_refuses_a_reused_key() -> None:
    w = await world()
    first, _ = await w.submits.submit("a", request("c-1"), None)
    second, _ = await w.submits.submit("a", request("c-2"), None)
    pending = await w.changes.cancel("a", first.order_id, "", "k1", None)
    assert pending.status is OrderStatus.PENDING_CANCEL
    assert [o.order_id for o in w.sender.cancels] == [first.order_id]
    assert (await w.changes.cancel("a", first.order_id, "", "k1", None)).order_id == first.order_id
    with pytest.raises(IdempotencyConflictError) as exc:
        await w.changes.cancel("a", second.order_id, "", "k1", None)
    assert exc.value.order_id == first.order_id and exc.value.fields == ["order_id"]
    replaced = await w.changes.replace("a", order_id=second.order_id, client_order_id="", key="r1",
                                       quantity=None, price=Decimal(19990), deadline=None)  # fmt: skip
    assert replaced.price == Decimal(19990)
    with pytest.raises(IdempotencyConflictError) as exc:
        await w.changes.replace("a", order_id=second.order_id, client_order_id="", key="r1",
                                quantity=None, price=Decimal(19980), deadline=None)  # fmt: skip
    assert exc.value.fields == ["price"]


# --- execution reports ----------------------------------------------------------------------------------


def fill(order: Order, quantity: str, venue_fill_id: str, **kw: Any) -> ExecutionReport:
    return ExecutionReport(ReportKind.FILL, order.order_id, "paper", quantity=Decimal(quantity),
                           price=Decimal(20000), venue_fill_id=venue_fill_id, **kw)  # fmt: skip


async def test_a_fill_is_retried_until_stored_and_stored_once() -> None:
    w = await world(report_retry_max_s=0.05)
    order, _ = await w.submits.submit("a", request(quantity="0.03"), None)
    w.writer.fail = 3  # PostgreSQL down for three attempts
    await w.reports._apply_report(fill(order, "0.01", "f1"))
    stored = w.store.orders[order.order_id]
    assert stored.status is OrderStatus.PARTIALLY_FILLED and stored.filled_quantity == Decimal("0.01")
    [mutation] = [m for m in w.writer.mutations if m.fills]
    assert mutation.positions[0].quantity == Decimal("0.01")
    # Cumulative figures: an execution seen a second time (stream and query) is not stored again.
    await w.reports._apply_report(fill(order, "0.01", "q1", cumulative_quantity=Decimal("0.01")))
    await w.reports._apply_report(fill(order, "0.02", "q2", cumulative_quantity=Decimal("0.03"),
                                       cumulative_quote=Decimal("600")))  # fmt: skip
    assert w.store.orders[order.order_id].status is OrderStatus.FILLED
    assert len([m for m in w.writer.mutations if m.fills]) == 2


async def test_reports_apply_backpressure_beyond_the_queue_bound() -> None:
    w = await world(report_queue_max=2)
    order, _ = await w.submits.submit("a", request(), None)
    w.reports.on_report(
        ExecutionReport(ReportKind.ACKNOWLEDGED, order.order_id, "paper", venue_order_id="v1")
    )
    await asyncio.wait_for(w.reports.room(), 1)  # one pending: room
    w.reports.on_report(
        ExecutionReport(ReportKind.ACKNOWLEDGED, order.order_id, "paper", venue_order_id="v1")
    )
    waiting = asyncio.create_task(w.reports.room())
    await asyncio.sleep(0.01)
    assert not waiting.done(), "a venue waits while report_queue_max reports wait to be stored"
    w.reports.start()
    await asyncio.wait_for(waiting, 5)
    await w.reports.stop()
    assert w.store.orders[order.order_id].venue_order_id == "v1"


# --- streaming ------------------------------------------------------------------------------------------


async def test_event_stream_catches_up_from_the_store_then_follows_the_bus() -> None:
    store = FakeStore(events=[StoredEvent(i, "a", f"e{i}", i, b"%d" % i) for i in (1, 2, 3)])
    bus = EventBus()
    stream = EventStream(cast(Any, store), bus, page=2).events("a", 1)
    assert [await anext(stream) for _ in range(2)] == [(2, b"2"), (3, b"3")]
    w = await world()
    await w.submits.submit("a", request(), None)
    event = w.writer.mutations[0].events[0]

    async def next_live() -> tuple[int, bytes]:
        return await anext(stream)

    live = asyncio.create_task(next_live())
    await asyncio.sleep(0.01)
    bus.publish([CommittedEvent(3, event, b"old"), CommittedEvent(4, event, b"new")])
    assert await asyncio.wait_for(live, 1) == (4, b"new"), "no repeats, no gaps"
    await cast(AsyncGenerator[tuple[int, bytes], None], stream).aclose()


# --- sending --------------------------------------------------------------------------------------------


@dataclass
class FlakyVenue:
    """Submits fail with an unknown outcome; queries fail `query_failures` times, then answer `knows`."""

    name: str = "paper"
    reconcile_while_running: bool = False
    knows: bool = False
    query_failures: int = 0
    submits: int = 0
    queries: int = 0

    async def submit(self, order: Order) -> None:
        self.submits += 1
        raise VenueUnavailableError("timeout")

    async def query(self, order: Order) -> bool:
        self.queries += 1
        if self.query_failures:
            self.query_failures -= 1
            raise VenueUnavailableError("503")
        return self.knows


async def _sender(venue: FlakyVenue, store: FakeStore) -> tuple[VenueSender, list[ExecutionReport]]:
    reports: list[ExecutionReport] = []
    s = settings(venue_query_delay_s=0, venue_retry_max_s=0.01, send_sweep_grace_s=0)
    return VenueSender(s, {"paper": cast(Any, venue)}, cast(Any, store), reports.append), reports


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_unknown_outcome_is_rejected_only_when_the_venue_says_it_never_got_the_order() -> None:
    w = await world()
    order, _ = await w.submits.submit("a", request(), None)
    venue = FlakyVenue(query_failures=3)
    sender, reports = await _sender(venue, w.store)
    await sender.send(order)
    await _until(lambda: bool(reports))
    assert venue.queries == 4 and venue.submits == 1, "asked until it answered; never re-sent"
    assert reports[0].kind is ReportKind.REJECTED and reports[0].message == NEVER_RECEIVED
    known = FlakyVenue(knows=True)
    sender, reports = await _sender(known, w.store)
    await sender.send(order)
    await _until(lambda: known.queries == 1)
    await sender.stop()
    assert reports == [], "a venue that has the order reports it itself"


async def test_the_sweep_sends_committed_orders_this_process_never_handed_over() -> None:
    w = await world()
    order, _ = await w.submits.submit("a", request(), None)
    venue = FlakyVenue(knows=False)
    sender, _ = await _sender(venue, w.store)
    assert await sender.sweep() == 0  # the first pass only sets the watermark
    w.store.heads = [EventHead(1, "ACCEPTED", order.order_id, 0)]
    assert await sender.sweep() == 1
    await _until(lambda: venue.submits == 1)
    assert venue.queries >= 1, "the venue is asked before the order is sent"
    assert await sender.sweep() == 0, "each event is looked at once"
    await sender.stop()


@dataclass
class HeldVenue:
    """Submits wait for `release`; a cancel of an order it has not received is refused (as venues do)."""

    name: str = "paper"
    reconcile_while_running: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    received: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def submit(self, order: Order) -> None:
        self.calls.append(("submit", order.order_id))
        await self.release.wait()
        self.received.add(order.order_id)

    async def cancel(self, order: Order) -> None:
        known = order.order_id in self.received
        self.calls.append(("cancel" if known else "cancel-unknown", order.order_id))


async def test_a_cancel_never_overtakes_its_order_on_the_way_to_the_venue() -> None:
    w = await world()
    first, _ = await w.submits.submit("a", request("c-1"), None)
    second, _ = await w.submits.submit("a", request("c-2"), None)
    venue = HeldVenue()
    reports: list[ExecutionReport] = []
    sender = VenueSender(settings(), {"paper": cast(Any, venue)}, cast(Any, w.store), reports.append)
    await sender.start()
    sender.enqueue(first)  # being sent (held at the venue's door)
    sender.enqueue(second)  # queued behind it
    await _until(lambda: venue.calls == [("submit", first.order_id)])
    await sender.cancel(first)
    await sender.cancel(second)
    assert venue.calls == [("submit", first.order_id)], "both cancels wait for their orders"
    venue.release.set()
    await _until(lambda: len(venue.calls) == 4)
    await sender.stop()
    for order in (first, second):
        assert venue.calls.index(("cancel", order.order_id)) > venue.calls.index(("submit", order.order_id))
    assert reports == []


@dataclass
class CountingStore(FakeStore):
    """Counts the event-log reads of the send sweep."""

    log_reads: int = 0

    async def recent_events(self, after: int, limit: int) -> list[EventHead]:
        self.log_reads += 1
        return await super().recent_events(after, limit)


async def test_the_sweep_follows_the_commits_in_memory_and_reads_the_log_only_for_what_it_missed() -> None:
    w = await world()
    store = CountingStore(orders=w.store.orders)  # the orders the submits commit
    orders = [(await w.submits.submit("a", request(f"m{i}"), None))[0] for i in range(4)]
    accepted = [CommittedEvent(i + 1, m.events[0], b"") for i, m in enumerate(w.writer.mutations)]
    assert all(c.event.type is EventType.ACCEPTED for c in accepted)
    venue = FlakyVenue(knows=False)
    sender, _ = await _sender(venue, store)
    await sender.begin_sweep()  # the log is empty: its watermark is 0
    sender.enqueue(orders[0])  # handed over by the fast path (the send loop is not started here)
    sender.committed(accepted[:2])
    assert await sender.sweep() == 1, "the committed order that was never handed over"
    assert store.log_reads == 0, "memory knew every commit since the watermark: the log is not read"
    await _until(lambda: venue.submits == 1)
    assert venue.queries >= 1, "the venue is asked before the order is sent"
    assert await sender.sweep() == 0, "each event is looked at once"

    # A commit whose outcome the writer never learned (log sequence 3 on): read from the log up to the next
    # commit seen in memory (sequence 4), which memory judges itself.
    sender.outcome_unknown(3)
    store.heads = [EventHead(3, "ACCEPTED", orders[2].order_id, 0)]
    sender.committed(accepted[3:])
    assert await sender.sweep() == 2
    assert store.log_reads == 1
    await _until(lambda: venue.submits == 3)
    assert await sender.sweep() == 0
    assert store.log_reads == 1, "the range memory missed is read once"

    # A gap memory notices by itself: the next commit does not start where the last one ended.
    event = w.writer.mutations[0].events[0]
    store.heads.append(EventHead(6, "PENDING_CANCEL", "gone", 0))
    sender.committed([CommittedEvent(7, event, b"")])
    await sender.sweep()
    assert store.log_reads == 2, "sequences 5-6 read from the log"
    await sender.stop()
