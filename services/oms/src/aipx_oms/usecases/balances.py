"""BalanceReconciler: the ledger of the account that mirrors a venue account (Binance) follows the venue's
balances. Each snapshot a venue reports (account endpoint, stream update) is compared with the ledger once
the execution reports received so far are stored (a balance that already includes a fill the OMS has not
posted yet would look like a divergence); each diverging asset is logged, counted
(`aipx_oms_balance_divergences_total{venue,asset}`) and reconciled with an ADJUSTMENT entry (actor
`reconciler`, the reason names both amounts). Snapshots are applied one at a time, in arrival order."""

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
# How long a snapshot waits for the execution reports received before it to be stored.
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
        self._snapshots: asyncio.Queue[BalanceSnapshot] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def on_balances(self, snapshot: BalanceSnapshot) -> None:
        """The venues' callback (BalanceSource)."""
        self._snapshots.put_nowait(snapshot)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="balance-reconciler")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, what="balance reconciler")

    async def _run(self) -> None:
        while True:
            snapshot = await self._snapshots.get()
            try:
                await self._settle()
                await self.reconcile(snapshot)
            except Exception:  # a store outage or a bug: the next snapshot tries again
                metrics.VENUE_ERRORS.labels(snapshot.venue, "balance_reconcile").inc()
                log.exception("balances from %s (%s) not reconciled", snapshot.venue, snapshot.source)

    async def _settle(self) -> None:
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
