"""ConsoleState: everything the page shows, fed by the adapters, read as a snapshot or a coalesced delta.

The adapters call the `on_*` methods as events arrive (cheap: no JSON, no I/O); the web side asks for a
`delta()` a few times a second and pushes it, so a burst of trades on many symbols becomes one message per
push interval with one row per changed instrument.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from aipx.money import from_pb
from aipx.v1 import admin_pb2, decisions_pb2, market_data_pb2, oms_pb2, orders_pb2, signals_pb2

from aipx_console.domain.activity import OrderBlotter, SignalLog
from aipx_console.domain.market import MarketBoard
from aipx_console.domain.views import account_view, snapshot_view


@dataclass(slots=True)
class Component:
    """One thing the console depends on (Kafka, the OMS, a service's /metrics) and whether it answers."""

    name: str
    up: bool | None = None  # None: not checked yet
    message: str = "not checked yet"
    since_ns: int = 0

    def view(self) -> dict[str, object]:
        return {
            "name": self.name,
            "up": self.up,
            "message": self.message,
            "since_ms": self.since_ns // 1_000_000,
        }


class ConsoleState:
    """The page's model."""

    def __init__(
        self,
        *,
        candle_interval_s: int = 5,
        max_candles: int = 120,
        history: int = 200,
        stale_after_s: float = 15,
    ) -> None:
        self.board = MarketBoard(candle_interval_s, max_candles)
        self.signals = SignalLog(history)
        self.blotter = OrderBlotter(history)
        self.stale_after_s = stale_after_s
        self.accounts: dict[str, dict[str, object]] = {}
        self.components: dict[str, Component] = {}
        self.figures: dict[str, dict[str, object]] = {}
        self.dlq: dict[str, int] = {}
        self.lag: dict[str, dict[str, int]] = {}
        self._dirty_accounts: set[str] = set()
        self._dirty_components: set[str] = set()
        self._dirty_figures = False
        self._dirty_dlq = False

    # --- inputs ---------------------------------------------------------------------------------------
    def on_market_data(self, env: market_data_pb2.MarketDataEnvelope, seen_ns: int) -> None:
        kind = env.WhichOneof("payload")
        event_ns = env.exchange_time_ns or env.ingest_time_ns or seen_ns
        if kind == "trade":
            price = from_pb(env.trade.price, field="trade.price")
            quantity = from_pb(env.trade.quantity, field="trade.quantity") or Decimal(0)
            if price is None:
                self.board.on_other(env.venue, env.symbol, event_ns, seen_ns)
                return
            self.board.on_trade(env.venue, env.symbol, price, quantity, event_ns=event_ns, seen_ns=seen_ns)
            self.blotter.mark_positions(env.symbol)
        elif kind == "quote":
            self.board.on_quote(
                env.venue,
                env.symbol,
                from_pb(env.quote.bid_price),
                from_pb(env.quote.ask_price),
                event_ns=event_ns,
                seen_ns=seen_ns,
            )
        elif kind == "gap":
            self.board.on_gap(env.venue, env.symbol, event_ns, seen_ns)
        else:
            self.board.on_other(env.venue, env.symbol, event_ns, seen_ns)

    def on_signal(self, signal: signals_pb2.TradingSignal) -> None:
        self.signals.on_signal(signal)

    def on_decision(self, decision: decisions_pb2.Decision) -> None:
        self.signals.on_decision(decision)

    def on_order_event(self, event: orders_pb2.OrderEvent) -> None:
        self.blotter.on_event(event)

    def on_order(self, order: orders_pb2.Order) -> None:
        self.blotter.on_order(order)

    def on_position(self, position: orders_pb2.Position) -> None:
        self.blotter.on_position(position)

    def on_account(self, account: admin_pb2.AccountSummary) -> None:
        """An account as the admin service describes it (trading state; balances stay as last streamed)."""
        self._merge_account(account.account_id, account_view(account))

    def on_account_snapshot(self, snapshot: oms_pb2.AccountSnapshot) -> None:
        """An account as its stream sends it: trading state, balances, equity, P&L and positions."""
        self._merge_account(snapshot.account_id, snapshot_view(snapshot))
        for position in snapshot.positions:
            self.blotter.on_position(position)

    def _merge_account(self, account_id: str, view: dict[str, object]) -> None:
        merged = {**self.accounts.get(account_id, {}), **view}
        if self.accounts.get(account_id) != merged:
            self.accounts[account_id] = merged
            self._dirty_accounts.add(account_id)

    def set_component(self, name: str, up: bool, message: str, now_ns: int) -> None:
        """Record whether a component answers; only a change is pushed."""
        held = self.components.get(name)
        if held is not None and held.up == up and held.message == message:
            return
        since = held.since_ns if held is not None and held.up == up else now_ns
        self.components[name] = Component(name, up, message, since)
        self._dirty_components.add(name)

    def set_figures(self, service: str, figures: dict[str, object]) -> None:
        if self.figures.get(service) != figures:
            self.figures[service] = figures
            self._dirty_figures = True

    def set_dlq(self, counts: dict[str, int]) -> None:
        if counts != self.dlq:
            self.dlq = dict(counts)
            self._dirty_dlq = True

    def set_lag(self, lag: dict[str, dict[str, int]]) -> None:
        """Records each consumer group is behind, per topic."""
        if lag != self.lag:
            self.lag = lag
            self._dirty_dlq = True

    # --- outputs --------------------------------------------------------------------------------------
    def snapshot(self, now_ns: int) -> dict[str, object]:
        """Everything, for a browser that just connected (also clears nothing: deltas go on)."""
        orders, _ = self.blotter.order_views(None)
        return {
            "type": "snapshot",
            "time_ms": now_ns // 1_000_000,
            "markets": self.board.views(None, now_ns, self.stale_after_s),
            "signals": list(self.signals.signals),
            "decisions": list(self.signals.decisions),
            "orders": orders,
            "fills": list(self.blotter.fills),
            "positions": self.blotter.position_views(None, self.board.last_price),
            "accounts": [self.accounts[k] for k in sorted(self.accounts)],
            "components": [c.view() for _, c in sorted(self.components.items())],
            "figures": self.figures,
            "dlq": self.dlq,
            "lag": self.lag,
        }

    def delta(self, now_ns: int) -> dict[str, object] | None:
        """What changed since the last delta, or None when nothing did."""
        out: dict[str, object] = {}
        markets = self.board.take_dirty()
        if markets:
            out["markets"] = self.board.views(markets, now_ns, self.stale_after_s)
        signals, decisions = self.signals.take_new()
        if signals:
            out["signals"] = signals
        if decisions:
            out["decisions"] = decisions
        order_ids, position_keys, fills = self.blotter.take_dirty()
        if order_ids:
            rows, removed = self.blotter.order_views(order_ids)
            out["orders"] = rows
            if removed:
                out["orders_removed"] = removed
        if fills:
            out["fills"] = fills
        if position_keys:
            out["positions"] = self.blotter.position_views(position_keys, self.board.last_price)
        if self._dirty_accounts:
            out["accounts"] = [self.accounts[k] for k in sorted(self._dirty_accounts)]
            self._dirty_accounts = set()
        if self._dirty_components:
            out["components"] = [self.components[k].view() for k in sorted(self._dirty_components)]
            self._dirty_components = set()
        if self._dirty_figures:
            out["figures"] = self.figures
            self._dirty_figures = False
        if self._dirty_dlq:
            out["dlq"] = self.dlq
            out["lag"] = self.lag
            self._dirty_dlq = False
        if not out:
            return None
        return {"type": "delta", "time_ms": now_ns // 1_000_000, **out}

    def ages(self, now_ns: int) -> dict[str, object]:
        """Message age of every instrument (pushed about once a second so staleness shows without traffic)."""
        return {
            "type": "ages",
            "time_ms": now_ns // 1_000_000,
            "ages": {
                inst.key: None if not inst.last_seen_ns else round((now_ns - inst.last_seen_ns) / 1e9, 1)
                for inst in self.board.instruments.values()
            },
            "stale_after_s": self.stale_after_s,
        }
