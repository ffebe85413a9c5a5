"""BalanceReconciler: the ledger of the account that mirrors a venue account (Binance) follows the venue's
balances. Each snapshot a venue reports (account endpoint, stream update) is compared with the ledger once
the fills it may reflect are posted: a balance that already includes a fill the OMS has not posted yet, or
lacks one the OMS has posted, would look like a divergence and be adjusted back at the next snapshot.

- A snapshot with the venue's time of its last account change (`as_of_ns`) waits (up to SETTLE_S) until a
  fill of that venue with a venue time at or after it has been received (the venue may push the balance
  before the fill's report), then until the reports received are stored.
- A snapshot older than the latest fill received from its venue (that fill is not in it) is skipped, counted
  (`op="balance_snapshot_stale"`): the next one covers it.
- A snapshot without a time waits only for the reports received so far to be stored.

Each diverging asset is logged, counted (`aipx_oms_balance_divergences_total{venue,asset}`) and reconciled
with an ADJUSTMENT entry (actor `reconciler`, the reason names both amounts). Snapshots are applied one at a
time, in arrival order."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aipx.aio import cancel_and_wait
from aipx.ids import now_ns

from aipx_oms import metrics
from aipx_oms.settings import OmsSettings
from aipx_oms.store import admin, ledger
from aipx_oms.store.postgres import OmsStore
from aipx_oms.usecases.books import BookCache
from aipx_oms.usecases.reports import ExecutionReports
from aipx_oms.venues.base import BalanceSnapshot

log = logging.getLogger(__name__)
ACTOR = "reconciler"
# How long a snapshot waits for the fill it may reflect and for the execution reports received to be stored;
# a snapshot still waiting then (a change that was no fill: a deposit, a withdrawal) is reconciled.
SETTLE_S = 5.0


class BalanceReconciler:
    """See the module docstring."""

    def __init__(
        self,
        settings: OmsSettings,
        account_id: str,
        *,
        store: OmsStore,
        books: BookCache,
        reports: ExecutionReports,
    ) -> None:
        self.settings = settings
        self.account_id = account_id
        self.store = store
        self.books = books
        self.reports = reports
        # (snapshot, loop time it arrived)
        self._snapshots: asyncio.Queue[tuple[BalanceSnapshot, float]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def on_balances(self, snapshot: BalanceSnapshot) -> None:
        """The venues' callback (BalanceSource)."""
        self._snapshots.put_nowait((snapshot, asyncio.get_running_loop().time()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="balance-reconciler")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, what="balance reconciler")

    async def _run(self) -> None:
        while True:
            snapshot, arrived = await self._snapshots.get()
            try:
                await self._settle(snapshot, arrived)
                last_fill = self.reports.last_fill_ns.get(snapshot.venue, 0)
                if snapshot.as_of_ns is not None and snapshot.as_of_ns < last_fill:
                    metrics.VENUE_ERRORS.labels(snapshot.venue, "balance_snapshot_stale").inc()
                    log.info("balances from %s (%s) at %d predate a fill at %d: skipped", snapshot.venue,
                             snapshot.source, snapshot.as_of_ns, last_fill)  # fmt: skip
                    continue
                await self.reconcile(snapshot)
            except Exception:  # a store outage or a bug: the next snapshot tries again
                metrics.VENUE_ERRORS.labels(snapshot.venue, "balance_reconcile").inc()
                log.exception("balances from %s (%s) not reconciled", snapshot.venue, snapshot.source)

    async def _settle(self, snapshot: BalanceSnapshot, arrived: float) -> None:
        """Wait for the fill the snapshot may reflect (until SETTLE_S after it arrived: snapshots waiting in
        turn do not add up), then (up to SETTLE_S) for the reports received to be stored."""
        as_of = snapshot.as_of_ns
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(arrived + SETTLE_S):
                while as_of is not None and self.reports.last_fill_ns.get(snapshot.venue, 0) < as_of:
                    self.reports.fill_received.clear()
                    await self.reports.fill_received.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_S):
                await self.reports.idle()

    async def reconcile(self, snapshot: BalanceSnapshot) -> int:
        """Reconcile one snapshot now; the number of assets adjusted."""
        async with self.store.pool.acquire() as conn, conn.transaction():
            found = await ledger.reconcile(
                conn,
                self.account_id,
                snapshot.totals,
                complete=snapshot.complete,
                reason=f"{snapshot.venue} balance reconciliation ({snapshot.source})",
                actor=ACTOR,
                time_ns=now_ns(),
            )
            if found:
                await admin.notify(conn, admin.NOTIFY_LEDGER, self.account_id)
        for divergence in found:
            metrics.BALANCE_DIVERGENCES.labels(snapshot.venue, divergence.asset).inc()
            log.warning(
                "%s balance of %s differs from the ledger of %s: venue %s, ledger %s; adjusted by %s",
                snapshot.venue, divergence.asset, self.account_id, divergence.venue, divergence.ledger,
                divergence.adjustment,
            )  # fmt: skip
        if found:
            self.books.mark_stale(self.account_id)
        return len(found)
