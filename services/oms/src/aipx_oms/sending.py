"""VenueSender: the order path from the database to the venues, including when calls fail.

- Fast path: an order is handed over right after its commit (`enqueue`), and sent by one task per venue in
  commit order.
- Outcome unknown: a submit that raised (timeout, connection error, 5xx: `VenueUnavailableError`, or any
  other error) leaves the order ACCEPTED and is resolved by asking the venue (`query`) with backoff until it
  answers: the venue's own state is reported (acknowledgement, fills, final state). The order is REJECTED
  only when the venue answers that it never received it. The order id is the venue's client order id, so
  nothing is ever sent twice as two live orders; the resolution never re-sends.
- Durable send path: what must reach a venue is derived from what was committed. Every
  `send_sweep_interval_s` the events committed since the previous sweep (in commit order, by log sequence)
  are looked at; an ACCEPTED order without a venue acknowledgement, or a PENDING_CANCEL, that this process
  has not handed to its venue (a request cut short between its commit and its hand-over) is sent now: the
  venue is asked first, and only an order the venue does not know is submitted. The events come from the
  writer's commits in memory (`committed`, a CommitWatcher); the event log in PostgreSQL is read only for
  what memory cannot know: the events committed before this term's first commit (after a takeover or a
  restart, from the watermark `begin_sweep` sets) and those of a commit whose outcome the writer never
  learned (`outcome_unknown`: the connection broke during the COMMIT), up to the next commit it saw.
- Reconciliation: at startup and every `reconcile_interval_s`, the open orders of the database are compared
  with each venue (missed fills and final states are reported; orders the venue never got are sent).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from aipx.aio import cancel_and_wait
from aipx.ids import now_ns
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from aipx_oms import metrics
from aipx_oms.domain.model import EventType, Order, OrderStatus, RejectReason
from aipx_oms.settings import OmsSettings
from aipx_oms.store.errors import StoreUnavailableError
from aipx_oms.store.postgres import OmsStore
from aipx_oms.store.writer import CommittedEvent
from aipx_oms.venues.base import ExecutionReport, ExecutionVenue, ReportHandler, ReportKind

log = logging.getLogger(__name__)
T = TypeVar("T")
_SWEEP_PAGE = 5000
NEVER_RECEIVED = "the venue answered that it never received the order"


class VenueSender:
    """See the module docstring. `report` is where venue outcomes go (the OrderService's report queue)."""

    def __init__(
        self,
        settings: OmsSettings,
        venues: dict[str, ExecutionVenue],
        store: OmsStore,
        report: ReportHandler,
    ) -> None:
        self.settings = settings
        self.venues = venues
        self.store = store
        self.report = report
        self._queues: dict[str, asyncio.Queue[Order]] = {name: asyncio.Queue() for name in venues}
        # Orders / cancels this process handed to a venue since the sweep last passed them: the sweep leaves
        # them alone. Entries go when the sweep passes their event (bounded by the sweep window).
        self._sent: dict[str, None] = {}
        self._cancels: dict[str, None] = {}
        self.resolving: set[str] = set()  # orders whose venue outcome is being resolved
        # Orders queued or being sent by this process; each event is set once its send returned.
        self._in_flight: dict[str, asyncio.Event] = {}
        self._watermark: int | None = None  # set by begin_sweep (or the first sweep)
        # The durable send path's events from memory: (commit time, order id, ACCEPTED?) of each committed
        # ACCEPTED / PENDING_CANCEL event, in commit order, until the sweep has judged it.
        self._committed: deque[tuple[int, str, bool]] = deque()
        self._next_committed: int | None = None  # the log sequence the next commit should start at
        # Log-sequence ranges [first, last] memory does not know (last None: up to the next commit seen):
        # the sweep reads them from the event log.
        self._unknown: list[list[int | None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._workers: list[asyncio.Task[None]] = []

    # --- lifecycle ------------------------------------------------------------------------------------

    async def begin_sweep(self) -> None:
        """The sweep starts after the log as it is now; call before the startup reconciliation reads the open
        orders, so that every order is covered by one or the other."""
        self._start_sweep(await self.store.last_log_sequence())

    def _start_sweep(self, watermark: int) -> None:
        self._watermark = watermark
        # Until the first commit seen here, memory knows nothing after the watermark: the log is read.
        self._unknown = [[watermark + 1, None]]
        self._next_committed = None
        self._committed.clear()

    # --- the writer's commits (CommitWatcher) ---------------------------------------------------------

    def committed(self, events: Sequence[CommittedEvent]) -> None:
        """Events the writer committed (consecutive log sequences, in commit order)."""
        first = events[0].log_sequence
        expected = self._next_committed
        for gap in self._unknown:
            if gap[1] is None:  # the log up to this commit is what memory does not know
                assert gap[0] is not None
                if gap[0] < first:
                    gap[1] = first - 1
                else:
                    self._unknown.remove(gap)  # nothing in between
                break
        else:
            if expected is not None and first > expected:  # a commit memory missed (never learned of)
                self._unknown.append([expected, first - 1])
        self._next_committed = events[-1].log_sequence + 1
        now = now_ns()
        for c in events:
            kind = c.event.type
            if kind is EventType.ACCEPTED or kind is EventType.PENDING_CANCEL:
                self._committed.append((now, c.event.order.order_id, kind is EventType.ACCEPTED))

    def outcome_unknown(self, first_log_sequence: int) -> None:
        """A commit from `first_log_sequence` may have happened unseen: read the log from there until the
        next commit seen here."""
        if not any(gap[1] is None for gap in self._unknown):
            self._unknown.append([first_log_sequence, None])

    async def start(self) -> None:
        for name, queue in self._queues.items():
            self._workers.append(asyncio.create_task(self._send_loop(queue), name=f"venue-{name}-sender"))
        self._workers.append(asyncio.create_task(self._sweep_loop(), name="venue-send-sweep"))
        if self.settings.reconcile_interval_s > 0:
            self._workers.append(asyncio.create_task(self._reconcile_loop(), name="venue-reconcile"))

    async def stop(self) -> None:
        await cancel_and_wait(*self._workers, *self._tasks, what="venue sender")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sending --------------------------------------------------------------------------------------

    def enqueue(self, order: Order) -> None:
        """A committed ACCEPTED order: send it (in commit order per venue)."""
        self._sent[order.order_id] = None
        self._in_flight.setdefault(order.order_id, asyncio.Event())
        self._queues[order.venue].put_nowait(order)

    async def _send_loop(self, queue: asyncio.Queue[Order]) -> None:
        while True:
            await self.send(await queue.get())

    async def send(self, order: Order) -> None:
        """Submit; when the outcome is unknown, resolve it by asking the venue (never by re-sending)."""
        self._in_flight.setdefault(order.order_id, asyncio.Event())
        try:
            await self.venues[order.venue].submit(order)
        except Exception as exc:  # the venue may or may not have the order: ask it
            log.warning("venue %s: outcome of order %s unknown (%s); asking the venue", order.venue,
                        order.order_id, exc)  # fmt: skip
            metrics.VENUE_ERRORS.labels(order.venue, "submit_unknown").inc()
            self.resolving.add(order.order_id)
            self._spawn(self._resolve_submit(order))
        finally:
            sent = self._in_flight.pop(order.order_id, None)
            if sent is not None:
                sent.set()

    async def _resolve_submit(self, order: Order) -> None:
        self.resolving.add(order.order_id)
        try:
            await asyncio.sleep(self.settings.venue_query_delay_s)
            known = await self._until_answered(order, "query", lambda: self.venues[order.venue].query(order))
            if not known:
                log.warning("venue %s never received order %s: REJECTED", order.venue, order.order_id)
                self.report(
                    ExecutionReport(
                        ReportKind.REJECTED,
                        order.order_id,
                        order.venue,
                        reason=RejectReason.VENUE_REJECTED,
                        message=NEVER_RECEIVED,
                    )
                )
        finally:
            self.resolving.discard(order.order_id)

    async def _recover(self, order: Order) -> None:
        """An order this process never handed over: ask the venue; submit only if it does not know it."""
        self.resolving.add(order.order_id)
        try:
            known = await self._until_answered(order, "query", lambda: self.venues[order.venue].query(order))
        finally:
            self.resolving.discard(order.order_id)
        if not known:
            log.info("order %s never reached venue %s: sending it now", order.order_id, order.venue)
            metrics.VENUE_ERRORS.labels(order.venue, "recovered_send").inc()
            await self.send(order)

    # --- cancels --------------------------------------------------------------------------------------

    async def cancel(self, order: Order) -> None:
        """Ask the venue to cancel a committed PENDING_CANCEL order; an unknown outcome is retried. An order
        still on its way to its venue (queued or being sent) is cancelled once its send returned: a cancel
        that overtook its order would be refused as unknown and the order would then go live."""
        self._cancels[order.order_id] = None
        sending = self._in_flight.get(order.order_id)
        if sending is not None:
            self._spawn(self._cancel_after(sending, order))
            return
        try:
            await self.venues[order.venue].cancel(order)
        except (
            ConnectionError
        ) as exc:  # VenueUnavailableError, a broken connection: the cancel may not be there
            log.warning("venue %s: cancel of %s unanswered (%s); retrying", order.venue, order.order_id, exc)
            metrics.VENUE_ERRORS.labels(order.venue, "cancel_unknown").inc()
            self._spawn(self._retry_cancel(order))
        except Exception as exc:
            log.warning("venue %s cancel of %s failed: %s", order.venue, order.order_id, exc)
            metrics.VENUE_ERRORS.labels(order.venue, "cancel").inc()
            self.report(
                ExecutionReport(ReportKind.CANCEL_REJECTED, order.order_id, order.venue, message=str(exc))
            )

    async def _cancel_after(self, sent: asyncio.Event, order: Order) -> None:
        await sent.wait()
        await self.cancel(order)

    async def _retry_cancel(self, order: Order) -> None:
        """Cancels are idempotent at the venue (by our order id): send until the venue answers."""
        self.resolving.add(order.order_id)
        try:
            await self._until_answered(order, "cancel", lambda: self.venues[order.venue].cancel(order))
        finally:
            self.resolving.discard(order.order_id)

    # --- retries --------------------------------------------------------------------------------------

    async def _until_answered(self, order: Order, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call` again with jittered exponential backoff until the venue answers (no give-up: an order whose
        outcome is unknown stays open, and counted, until its venue says what happened)."""

        def before_sleep(state: RetryCallState) -> None:
            metrics.VENUE_ERRORS.labels(order.venue, f"{what}_retry").inc()
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            log.warning("venue %s: %s of %s failed (%s), attempt %d", order.venue, what, order.order_id,
                        error, state.attempt_number)  # fmt: skip

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential_jitter(multiplier=0.2, jitter=0.2, max=self.settings.venue_retry_max_s),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call()
        raise AssertionError("unreachable: retries never stop")  # pragma: no cover

    # --- the durable send path ------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.send_sweep_interval_s)
            try:
                await self.sweep()
            except StoreUnavailableError as exc:
                log.warning("send sweep skipped: %s", exc)
            except Exception:  # a bug must not stop the durable send path: the next pass tries again
                metrics.VENUE_ERRORS.labels("*", "sweep_failed").inc()
                log.exception("send sweep failed")

    async def sweep(self) -> int:
        """One pass over the events committed since the last one; returns how many orders it sent."""
        if self._watermark is None:  # earlier orders are covered by the startup reconciliation
            self._start_sweep(await self.store.last_log_sequence())
            return 0
        cutoff = now_ns() - int(self.settings.send_sweep_grace_s * 1e9)
        handled = 0
        for gap in list(self._unknown):
            handled += await self._sweep_log(gap, cutoff)
        candidates: dict[str, str] = {}
        committed = self._committed
        while committed and committed[0][0] < cutoff:  # the fast path has had its time to hand them over
            _, order_id, accepted = committed.popleft()
            handed = self._sent if accepted else self._cancels
            if order_id in handed:
                del handed[order_id]  # this process handed it over: the sweep is done with it
            else:
                candidates[order_id] = "ACCEPTED" if accepted else "PENDING_CANCEL"
        if candidates:
            handled += await self._hand_over(candidates)
        return handled

    async def _sweep_log(self, gap: list[int | None], cutoff: int) -> int:
        """The events of a range memory does not know, read from the log page by page (up to those too
        recent to judge); the range goes once it is read to its end."""
        handled = 0
        while True:
            first = gap[0]
            assert first is not None
            heads = await self.store.recent_events(first - 1, _SWEEP_PAGE)
            candidates: dict[str, str] = {}
            done = recent = False
            for head in heads:
                last = gap[1]  # (a commit seen meanwhile may have closed the range)
                if last is not None and head.log_sequence > last:
                    done = True
                    break
                if head.event_time_ns >= cutoff:
                    recent = True  # the fast path may still be handing this one over: next pass
                    break
                gap[0] = head.log_sequence + 1
                handed = self._sent if head.type == "ACCEPTED" else self._cancels
                if head.type not in ("ACCEPTED", "PENDING_CANCEL"):
                    continue
                if head.order_id in handed:
                    del handed[head.order_id]
                else:
                    candidates[head.order_id] = head.type
            if candidates:
                handled += await self._hand_over(candidates)
            if not done and not recent and len(heads) == _SWEEP_PAGE:
                continue
            if done or (gap[1] is not None and not recent):  # read to the range's end, or the log's
                self._unknown.remove(gap)
            return handled

    async def _hand_over(self, candidates: dict[str, str]) -> int:
        """Send the candidates that still need their venue (per the database); how many."""
        handled = 0
        for order in await self.store.orders_to_venue(list(candidates)):
            if order.order_id in self.resolving or order.venue not in self.venues:
                continue
            wanted = candidates[order.order_id]
            if wanted == "ACCEPTED" and order.status is OrderStatus.ACCEPTED:
                metrics.VENUE_ERRORS.labels(order.venue, "unsent_order").inc()
                self._spawn(self._recover(order))
                handled += 1
            elif wanted == "PENDING_CANCEL" and order.status is OrderStatus.PENDING_CANCEL:
                metrics.VENUE_ERRORS.labels(order.venue, "unsent_cancel").inc()
                self._spawn(self.cancel(order))
                handled += 1
        return handled

    # --- reconciliation -------------------------------------------------------------------------------

    async def reconcile(
        self, orders: list[Order], *, startup: bool = False, venues: Sequence[str] = ()
    ) -> None:
        """Compare open orders with their venues (and `venues` even without open orders: the venue may have
        orders the OMS does not count as open); send what a venue never got; re-send pending cancels."""
        by_venue: dict[str, list[Order]] = {name: [] for name in venues}
        for order in orders:
            by_venue.setdefault(order.venue, []).append(order)
        for name, venue_orders in by_venue.items():
            venue = self.venues.get(name)
            if venue is None:
                log.error("%d open orders on venue %s, which is not enabled", len(venue_orders), name)
                continue
            log.info("reconciling %d open orders with venue %s", len(venue_orders), name)
            try:
                unknown = await venue.reconcile(venue_orders)
            except Exception as exc:  # the venue did not answer: the next round tries again
                metrics.VENUE_ERRORS.labels(name, "reconcile").inc()
                log.warning("reconciliation with venue %s failed: %s", name, exc)
                continue
            settled = now_ns() - int(self.settings.send_sweep_grace_s * 1e9)
            for order in unknown:
                if order.order_id in self.resolving or order.order_id in self._in_flight:
                    continue  # on its way or being resolved: not lost
                if not startup and order.updated_time_ns >= settled:
                    continue  # just committed: the fast path or the sweep has it
                if order.status is OrderStatus.ACCEPTED and order.filled_quantity == 0:
                    log.info("order %s never reached venue %s: sending it now", order.order_id, name)
                    self._spawn(self.send(order))
                else:  # it was working there: the venue lost it (e.g. pruned); an operator must look
                    metrics.VENUE_ERRORS.labels(name, "lost_order").inc()
                    log.error(
                        "venue %s does not know working order %s (%s)", name, order.order_id, order.status
                    )
            if startup:
                for order in venue_orders:
                    if order.status is OrderStatus.PENDING_CANCEL:
                        self._spawn(self.cancel(order))

    async def _reconcile_loop(self) -> None:
        remote = [name for name, venue in self.venues.items() if venue.reconcile_while_running]
        while remote:
            await asyncio.sleep(self.settings.reconcile_interval_s)
            try:
                orders = await self.store.open_orders(venues=remote)
            except Exception as exc:  # PostgreSQL down (or worse): the next round tries again
                log.warning("reconciliation skipped: %s", exc)
                continue
            # Every open order is compared (so none of them looks like an orphan at the venue); reports for
            # orders that just changed are harmless (fills carry cumulative quantities, acknowledgements and
            # final states repeat nothing), and recent or in-hand orders are never re-sent.
            await self.reconcile(orders, venues=remote)
