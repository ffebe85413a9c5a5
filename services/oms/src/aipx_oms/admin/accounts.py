"""AccountQueries: GetAccount and StreamAccount of the OMS service - balances from the ledger, positions,
marks from the market data the OMS follows, the trading state and the platform halt.

StreamAccount sends the account at once, then again after each change - a committed order event of the
account (this process's EventBus), a ledger entry, a state/limit change or the platform halt (NOTIFY from any
OMS process) - coalesced to at most one update per `min_interval_ms`, and at least every `heartbeat_ms`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
from aipx.aio import cancel_and_wait, wait_event
from aipx.ids import now_ns
from aipx.v1 import admin_pb2, oms_pb2

from aipx_oms.domain.ledger import PositionMark, mark_price, value_account
from aipx_oms.domain.model import AccountState
from aipx_oms.errors import UnknownAccountError
from aipx_oms.service import OrderService
from aipx_oms.store import admin as db
from aipx_oms.store import ledger
from aipx_oms.store.errors import StoreUnavailableError, is_unavailable
from aipx_oms.wire import dec, position_to_pb

TRADING_STATES = {
    AccountState.ACTIVE: admin_pb2.TRADING_STATE_ACTIVE,
    AccountState.REDUCING: admin_pb2.TRADING_STATE_REDUCING,
    AccountState.HALTED: admin_pb2.TRADING_STATE_HALTED,
}
DEFAULT_MIN_INTERVAL_MS = 200
DEFAULT_HEARTBEAT_MS = 10_000


class AccountQueries:
    """See the module docstring."""

    def __init__(self, pool: asyncpg.Pool, orders: OrderService, valuation_asset: str) -> None:
        self.pool = pool
        self.orders = orders
        self.valuation_asset = valuation_asset
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._all: set[asyncio.Event] = set()

    def changed(self, account_id: str) -> None:
        """Something of the account changed (NOTIFY "account"/"ledger"): wake its streams."""
        for event in self._watchers.get(account_id, ()):
            event.set()

    def platform_changed(self, _value: str = "") -> None:
        for event in self._all:
            event.set()

    async def get_account(self, account_id: str) -> oms_pb2.AccountSnapshot:
        try:
            async with self.pool.acquire() as conn:
                try:
                    account = await db.account_record(conn, account_id)
                except db.AdminNotFoundError as exc:
                    raise UnknownAccountError(str(exc)) from exc
                balances = await ledger.balances(conn, account_id)
                halted, _ = await db.platform_halt(conn)
        except Exception as exc:
            if is_unavailable(exc):
                raise StoreUnavailableError(f"PostgreSQL unavailable: {exc}") from exc
            raise
        positions = await self.orders.store.positions(account_id)
        marks = {}
        for symbol in self.orders.instruments:
            snapshot = self.orders.market.snapshot(symbol)
            mark = mark_price(snapshot.last_trade, snapshot.bid, snapshot.ask)
            if mark is not None:
                marks[symbol] = mark
        asset_symbols = {
            i.base_asset: i.symbol
            for i in self.orders.instruments.values()
            if i.quote_asset == self.valuation_asset
        }
        valuation = value_account(
            balances,
            [PositionMark(p.symbol, p.quantity, p.average_price, p.realized_pnl) for p in positions],
            marks,
            asset_symbols,
            self.valuation_asset,
        )
        return oms_pb2.AccountSnapshot(
            account_id=account_id,
            trading_state=TRADING_STATES[account.state],
            trading_state_reason=account.state_reason,
            balances=[
                oms_pb2.AssetBalance(
                    asset=v.balance.asset,
                    total=dec(v.balance.total),
                    free=dec(v.balance.free),
                    locked=dec(v.balance.locked),
                    mark_price=dec(v.mark),
                    value=dec(v.value),
                )
                for v in valuation.balances
            ],
            valuation_asset=self.valuation_asset,
            equity=dec(valuation.equity),
            realized_pnl=dec(valuation.realized_pnl),
            unrealized_pnl=dec(valuation.unrealized_pnl),
            positions=[position_to_pb(p, marks.get(p.symbol)) for p in positions],
            unpriced_assets=list(valuation.unpriced),
            platform_halted=halted,
            as_of_ns=now_ns(),
        )

    async def stream(
        self, account_id: str, *, min_interval_ms: int = 0, heartbeat_ms: int = 0
    ) -> AsyncIterator[oms_pb2.AccountSnapshot]:
        """The account now and after every change (see the module docstring), until the caller stops."""
        interval = (min_interval_ms if min_interval_ms > 0 else DEFAULT_MIN_INTERVAL_MS) / 1000
        heartbeat = (heartbeat_ms if heartbeat_ms > 0 else DEFAULT_HEARTBEAT_MS) / 1000
        changed = asyncio.Event()
        self._watchers.setdefault(account_id, set()).add(changed)
        self._all.add(changed)
        sub = self.orders.bus.subscribe(account_id)

        async def forward_order_events() -> None:
            while True:
                await sub.queue.get()
                changed.set()

        forwarder = asyncio.create_task(forward_order_events())
        try:
            while True:
                changed.clear()
                yield await self.get_account(account_id)
                await asyncio.sleep(interval)
                await wait_event(changed, max(heartbeat - interval, 0.001))
        finally:
            await cancel_and_wait(forwarder, what="account stream forwarder")
            self.orders.bus.unsubscribe(sub)
            self._all.discard(changed)
            watchers = self._watchers.get(account_id)
            if watchers is not None:
                watchers.discard(changed)
                if not watchers:
                    del self._watchers[account_id]
