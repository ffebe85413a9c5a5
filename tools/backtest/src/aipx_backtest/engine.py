"""The replay: market data through the production strategy engine, the cognitive ensemble's offline analysts,
the OMS's pre-trade risk and the shared fill model, in event-time order, in one process, without I/O.

Per market-data event, in order:

1. a quote goes to the fill model (`aipx.matching`): resting orders that cross it fill;
2. a trade goes to the fill model (stops, trade-through fills), then to each symbol's `SymbolEngine` (the
   strategy function's own domain object), whose closed candles produce the live `TradingSignal`s;
3. each signal (with `ensemble` on) is judged by the offline analysts and `validate`d exactly as the cognitive
   function does; an approved (or, with the ensemble off, every) LONG/SHORT signal sets the strategy's target
   position in that symbol to +size / -size (0 for SHORT when shorts are off); a signal in the direction the
   strategy already holds changes nothing (the position is not resized at the new price);
4. the order that moves the position to the target is checked by `aipx_oms.domain.risk.check_order` and,
   as in the OMS, has its funds reserved by `check_funds` in the strategy's `AccountLedger` (the OMS's own
   ledger: a buy holds its notional at the reservation price plus the higher fee rate, a sell its base
   quantity; INSUFFICIENT_BALANCE is counted as a denial like any other), then is sent
   to the fill model as a MARKET IOC order (what the cognitive function sends by default); fills update the
   strategy's position with the OMS's own `Position.apply_fill`;
5. with `protective` on, the signal's stop-loss becomes a STOP order and its take-profit a LIMIT order for
   the whole position, in the same fill model (the first to fill cancels the other; the next signal of the
   strategy cancels both). Risk is checked for signal orders only (protective orders only reduce).

The account-level rate limit is not modelled (every order is ALLOWED): it limits live order flow per second
of wall time, which a replay does not have.

Each strategy trades its own account with `balance` of starting cash (in USDT, the quote asset of the
platform's instruments), so its results are its own. With shorts allowed (the default) the accounts are margin
accounts, as an OMS account with `allow_negative_balances` (a short sells what it does not hold, and the OMS
does not limit such an account by balance); with `--long-only` they are cash accounts, checked as the OMS
checks them, and their cash never goes below zero through an order the check let through (a taker fill's
slippage beyond the reservation's price band is the one exception, posted as the OMS posts a venue's
fill). The combined result is the sum of the strategies' accounts. Equity is sampled at every close of the
first candle interval (mark-to-market at the last trade price). With trades only in the data (CSV, some lake
ranges), the touch an order meets is the last trade price with unlimited size (plus slippage).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from aipx import matching
from aipx.money import from_pb
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx.v1.signals_pb2 import SignalDirection, TradingSignal
from aipx_cognitive.domain.analysts import RiskRewardAnalyst, TechnicalConfluenceAnalyst
from aipx_cognitive.domain.ensemble import ValidationPolicy, validate
from aipx_cognitive.domain.model import SignalView
from aipx_oms.domain.ledger import AccountLedger, fill_entries
from aipx_oms.domain.model import AccountState, Instrument, OrderType, Position, Side
from aipx_oms.domain.risk import (
    Exposure,
    MarketSnapshot,
    RateVerdict,
    RiskCheck,
    RiskLimits,
    check_funds,
    check_order,
    reservation_price,
)
from aipx_strategy.domain.candles import Interval
from aipx_strategy.domain.candles import Position as StreamPosition
from aipx_strategy.domain.engine import SymbolEngine

from aipx_backtest.config import BacktestConfig
from aipx_backtest.data import Dataset, event_time

ZERO = Decimal(0)
UNLIMITED = Decimal("1e18")
CASH_ASSET = "USDT"  # the asset of `balance`


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip of a strategy in a symbol: from flat (or a flip) to flat (or the next flip)."""

    strategy: str
    symbol: str
    direction: str  # LONG | SHORT
    quantity: Decimal
    entry_time_ns: int
    entry_price: Decimal
    exit_time_ns: int
    exit_price: Decimal
    fees: Decimal
    pnl: Decimal  # after fees
    return_pct: Decimal  # pnl / entry notional x 100, 8 places half-even


@dataclass(frozen=True, slots=True)
class FillRecord:
    strategy: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    time_ns: int
    reason: str = "signal"  # signal | stop_loss | take_profit


@dataclass(slots=True)
class _Open:
    direction: int
    quantity: Decimal
    entry_time_ns: int
    entry_value: Decimal
    fees: Decimal


@dataclass(slots=True)
class Account:
    """One strategy's account: its ledger (the OMS's AccountLedger: balances and reservations), positions (the
    OMS's Position), round trips."""

    strategy: str
    ledger: AccountLedger
    positions: dict[str, Position] = field(default_factory=dict)
    open: dict[str, _Open] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    fills: list[FillRecord] = field(default_factory=list)
    equity: list[Decimal] = field(default_factory=list)
    exposed: list[bool] = field(default_factory=list)

    @classmethod
    def opened(cls, strategy: str, balance: Decimal, *, margin: bool) -> Account:
        return cls(strategy, AccountLedger(strategy, allow_negative=margin, totals={CASH_ASSET: balance}))

    @property
    def cash(self) -> Decimal:
        return self.ledger.total(CASH_ASSET)

    def position(self, symbol: str) -> Decimal:
        held = self.positions.get(symbol)
        return ZERO if held is None else held.quantity

    def apply_fill(
        self,
        instrument: Instrument,
        side: Side,
        *,
        order_id: str,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        at: int,
        final: bool,
        reason: str = "signal",
    ) -> None:
        """A fill: the position, and the ledger's entries drawn from the order's reservation (a fill is a
        fact: posted even when it overdraws, as the OMS posts a venue's fill)."""
        symbol = instrument.symbol
        before = self.positions.get(symbol) or Position(self.strategy, symbol)
        self.positions[symbol] = before.apply_fill(side, quantity, price, fee, at)
        entries = fill_entries(
            account_id=self.strategy,
            order_id=order_id,
            fill_id=f"{order_id}:{len(self.fills)}",
            side=side,
            base_asset=instrument.base_asset,
            quote_asset=instrument.quote_asset,
            quantity=quantity,
            price=price,
            fee=fee,
            fee_asset=instrument.quote_asset,
            time_ns=at,
        )
        self.ledger.settle_fill(entries, final=final, check=False)
        self.fills.append(FillRecord(self.strategy, symbol, side.value, quantity, price, fee, at, reason))
        self._round_trips(symbol, side.sign, quantity=quantity, price=price, fee=fee, at=at)

    def _round_trips(
        self, symbol: str, sign: int, *, quantity: Decimal, price: Decimal, fee: Decimal, at: int
    ) -> None:
        current = self.open.get(symbol)
        if current is None or current.direction == sign:
            if current is None:
                self.open[symbol] = _Open(sign, quantity, at, quantity * price, fee)
            else:
                current.quantity += quantity
                current.entry_value += quantity * price
                current.fees += fee
            return
        closing = min(current.quantity, quantity)
        share = fee * closing / quantity
        entry_share = current.fees * closing / current.quantity
        entry_value = current.entry_value * closing / current.quantity
        entry_price = current.entry_value / current.quantity
        gross = (closing * price - entry_value) * current.direction
        fees = entry_share + share
        pnl = gross - fees
        self.trades.append(
            Trade(
                self.strategy,
                symbol,
                "LONG" if current.direction > 0 else "SHORT",
                closing,
                current.entry_time_ns,
                _round(entry_price),
                at,
                price,
                _round(fees),
                _round(pnl),
                _round(pnl / entry_value * 100) if entry_value else ZERO,
            )
        )
        current.quantity -= closing
        current.entry_value -= entry_value
        current.fees -= entry_share
        if current.quantity == ZERO:
            del self.open[symbol]
        rest = quantity - closing
        if rest > ZERO:
            self.open[symbol] = _Open(sign, rest, at, rest * price, fee - share)


PLACES = Decimal("1e-8")


def _round(value: Decimal) -> Decimal:
    """Reported money and ratios: 8 decimal places, half-even (the backtest's one rounding rule)."""
    return value.quantize(PLACES).normalize() if value else ZERO


@dataclass(slots=True)
class RunOutput:
    """Everything a replay produced (the metrics and the report are computed from it)."""

    config: BacktestConfig
    symbols: list[str]
    times: list[int]
    accounts: dict[str, Account]
    signals: dict[str, int]
    approved: dict[str, int]
    denied: dict[str, int]
    trades_replayed: int
    prices: dict[str, list[tuple[int, Decimal]]]
    start_ns: int
    end_ns: int


class Backtester:
    """One replay of a dataset under one configuration."""

    def __init__(self, config: BacktestConfig, *, on_progress: Callable[[int], None] | None = None) -> None:
        self.config = config
        self.engine_config = config.engine_config()
        self.fill_model = matching.MatchingEngine(
            matching.FeeSchedule(config.maker_fee_rate, config.taker_fee_rate, config.slippage_bps)
        )
        self.accounts = {
            sid: Account.opened(sid, config.balance, margin=config.allow_short) for sid in config.strategies
        }
        self.reservation_fee_rate = max(config.maker_fee_rate, config.taker_fee_rate)
        self.analysts = (TechnicalConfluenceAnalyst(), RiskRewardAnalyst())
        self.policy = ValidationPolicy(
            min_confidence=config.min_confidence,
            min_risk_reward=config.min_risk_reward,
            min_agreeing_votes=config.min_agreeing_votes,
            require_trend_agreement=config.require_trend_agreement,
        )
        risk = config.risk
        self.limits = RiskLimits(
            max_order_notional=risk.max_order_notional,
            max_position_notional=risk.max_position_notional,
            max_open_orders=risk.max_open_orders,
            rate_per_s=Decimal(1_000_000),
            rate_burst=1_000_000,
            price_band_bps=risk.price_band_bps,
        )
        self.on_progress = on_progress
        self._engines: dict[str, SymbolEngine] = {}
        self._instruments: dict[str, Instrument] = {}
        self._last: dict[str, Decimal] = {}
        self._quoted: set[str] = set()
        self._order_ids = 0
        # Protective orders: order id -> (strategy, symbol, reason); per (strategy, symbol) their ids.
        self._guard_of: dict[str, tuple[str, str, str]] = {}
        self._guards: dict[tuple[str, str], list[str]] = {}
        self._guarded: dict[str, int] = {}  # symbol -> protective orders working
        self.signals = {sid: 0 for sid in config.strategies}
        self.approved = {sid: 0 for sid in config.strategies}
        self.denied: dict[str, int] = {}

    def run(self, data: Dataset | Iterable[MarketDataEnvelope]) -> RunOutput:
        """Replay a dataset, or any time-ordered stream of envelopes (not held in memory)."""
        events = iter(data.events if isinstance(data, Dataset) else data)
        first = next(events, None)
        if first is None:
            raise ValueError("no market data to replay (empty dataset)")
        sample_ns = Interval.parse(self.config.intervals[0]).ns
        start = end = event_time(first)
        trade_from = self.config.trade_from_ns or start
        next_sample = max(start, trade_from) - max(start, trade_from) % sample_ns + sample_ns
        times: list[int] = []
        prices: dict[str, list[tuple[int, Decimal]]] = {}
        replayed = 0
        fill_model = self.fill_model
        for index, envelope in enumerate(itertools.chain((first,), events)):
            time_ns = end = event_time(envelope)
            while time_ns >= next_sample:
                self._sample(next_sample, times)
                next_sample += sample_ns
            symbol = envelope.symbol
            kind = envelope.WhichOneof("payload")
            if kind == "trade":
                price = Decimal(envelope.trade.price.value)
                quantity = Decimal(envelope.trade.quantity.value)
                previous = self._last.get(symbol, price)
                self._last[symbol] = price
                if self._guarded.get(symbol) and symbol not in self._quoted:
                    # Trades only: a triggered stop meets the touch of this trade, not the signal's.
                    self._apply_fills(
                        fill_model.on_quote(symbol, price, UNLIMITED, price, UNLIMITED), time_ns
                    )
                self._apply_fills(fill_model.on_trade(symbol, price, quantity), time_ns)
                engine = self._engines.get(symbol)
                if engine is None:
                    engine = self._engines[symbol] = SymbolEngine(self.engine_config, envelope.venue, symbol)
                    prices[symbol] = []
                result = engine.apply(envelope, StreamPosition("backtest", 0, index), now_ns=time_ns)
                replayed += 1
                if result.candles_closed:  # the close of the candle that ended: the trade before this one
                    prices[symbol].append((time_ns - time_ns % sample_ns, previous))
                for signal in result.signals:
                    if time_ns >= trade_from:
                        self._on_signal(signal, time_ns)
            elif kind == "quote":
                quote = envelope.quote
                self._quoted.add(symbol)
                self._apply_fills(
                    fill_model.on_quote(
                        symbol,
                        Decimal(quote.bid_price.value),
                        Decimal(quote.bid_size.value),
                        Decimal(quote.ask_price.value),
                        Decimal(quote.ask_size.value),
                    ),
                    time_ns,
                )
            if self.on_progress is not None and index % 10_000 == 0:
                self.on_progress(index)
        self._sample(end, times)
        return RunOutput(
            self.config,
            sorted(self._engines),
            times,
            self.accounts,
            self.signals,
            self.approved,
            dict(sorted(self.denied.items())),
            replayed,
            prices,
            max(start, trade_from),
            end,
        )

    def _sample(self, at: int, times: list[int]) -> None:
        if times and times[-1] == at:
            return
        times.append(at)
        last = self._last
        for account in self.accounts.values():
            value = account.cash
            exposed = False
            for symbol, position in account.positions.items():
                if position.quantity:
                    exposed = True
                    value += position.quantity * last[symbol]
            account.equity.append(value)
            account.exposed.append(exposed)

    def _on_signal(self, signal: TradingSignal, time_ns: int) -> None:
        sid = signal.strategy_id
        if sid not in self.accounts:
            return
        self.signals[sid] += 1
        if signal.direction not in (
            SignalDirection.SIGNAL_DIRECTION_LONG,
            SignalDirection.SIGNAL_DIRECTION_SHORT,
        ):
            return
        if self.config.ensemble:
            view = SignalView.of(signal)
            assessment = validate(view, [a.judge(view) for a in self.analysts], self.policy)
            if not assessment.approved:
                return
        self.approved[sid] += 1
        symbol = signal.symbol
        account = self.accounts[sid]
        price = self._last[symbol]
        size = self._size(symbol, price)
        long = signal.direction == SignalDirection.SIGNAL_DIRECTION_LONG
        target = size if long else (-size if self.config.allow_short else ZERO)
        current = account.position(symbol)
        if target * current > ZERO or target == current:
            return  # already positioned this way: a repeated signal holds (no resizing at the new price)
        delta = target - current
        side = Side.BUY if delta > 0 else Side.SELL
        quantity = abs(delta)
        check = RiskCheck(symbol, side, OrderType.MARKET, quantity, None, reduce_only=False)
        instrument = self._instrument(symbol)
        market = self._snapshot(symbol)
        order_id = self._next_order_id(sid)
        denial = check_order(
            check,
            instrument=instrument,
            account_state=AccountState.ACTIVE,
            limits=self.limits,
            exposure=Exposure(position=current),
            open_orders=0,
            market=market,
            rate=RateVerdict.ALLOWED,
        )
        if denial is None:
            reserve_at = reservation_price(check, market, self.limits.price_band_bps)
            assert reserve_at is not None  # there is a last trade: the signal came from one
            denial = check_funds(
                account.ledger,
                order_id,
                check,
                instrument=instrument,
                price=reserve_at,
                fee_rate=self.reservation_fee_rate,
            )
        if denial is not None:
            self.denied[denial.reason.value] = self.denied.get(denial.reason.value, 0) + 1
            return
        self._cancel_guards(sid, symbol)
        if symbol not in self._quoted:
            self.fill_model.on_quote(symbol, price, UNLIMITED, price, UNLIMITED)
        self._submit(
            sid,
            symbol,
            side,
            matching.Kind.MARKET,
            quantity=quantity,
            time_ns=time_ns,
            tif=matching.TimeInForce.IOC,
            order_id=order_id,
        )
        account.ledger.release(order_id)  # IOC: filled or done by now; what it still holds is free again
        if self.config.protective:
            self._place_guards(sid, symbol, signal, time_ns)

    def _submit(
        self,
        sid: str,
        symbol: str,
        side: Side,
        kind: matching.Kind,
        *,
        quantity: Decimal,
        time_ns: int,
        tif: matching.TimeInForce = matching.TimeInForce.GTC,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        reason: str = "",
        order_id: str | None = None,
    ) -> str:
        order_id = order_id or self._next_order_id(sid)
        order = matching.RestingOrder(
            order_id=order_id,
            symbol=symbol,
            side=matching.Side(side.value),
            kind=kind,
            leaves=quantity,
            price=price,
            stop_price=stop_price,
            time_in_force=tif,
        )
        if reason:
            self._guard_of[order_id] = (sid, symbol, reason)
            self._guards.setdefault((sid, symbol), []).append(order_id)
            self._guarded[symbol] = self._guarded.get(symbol, 0) + 1
        self._apply_fills(self.fill_model.submit(order), time_ns)
        return order_id

    def _next_order_id(self, sid: str) -> str:
        self._order_ids += 1
        return f"{sid}:{self._order_ids}"

    def _place_guards(self, sid: str, symbol: str, signal: TradingSignal, time_ns: int) -> None:
        """The signal's stop-loss as a STOP order and take-profit as a LIMIT order (GTC) for the whole
        position; a level on the wrong side of the last price is left out. The first to fill cancels the
        other (`_after_guard_fill`)."""
        position = self.accounts[sid].position(symbol)
        if position == ZERO:
            return
        last = self._last[symbol]
        long = position > ZERO
        side = Side.SELL if long else Side.BUY
        quantity = abs(position)
        stop = from_pb(signal.stop_loss)
        target = from_pb(signal.take_profit)
        if stop is not None and (stop < last if long else stop > last):
            self._submit(
                sid,
                symbol,
                side,
                matching.Kind.STOP,
                quantity=quantity,
                time_ns=time_ns,
                stop_price=stop,
                reason="stop_loss",
            )
        if target is not None and (target > last if long else target < last):
            self._submit(
                sid,
                symbol,
                side,
                matching.Kind.LIMIT,
                quantity=quantity,
                time_ns=time_ns,
                price=target,
                reason="take_profit",
            )

    def _cancel_guards(self, sid: str, symbol: str) -> None:
        for order_id in self._guards.pop((sid, symbol), []):
            self._guard_of.pop(order_id, None)
            if self.fill_model.cancel(order_id) is not None:
                self._guarded[symbol] -= 1

    def _after_guard_fill(self, order_id: str, leaves: Decimal) -> None:
        """A protective order filled: when the position is flat, the other one goes; otherwise the other
        one shrinks to what is left of the position."""
        sid, symbol, _ = self._guard_of[order_id]
        if leaves == ZERO:
            self._guarded[symbol] -= 1
        position = abs(self.accounts[sid].position(symbol))
        if position == ZERO:
            self._cancel_guards(sid, symbol)
            return
        for other in self._guards.get((sid, symbol), []):
            working = self.fill_model.orders.get(other)
            if other != order_id and working is not None and working.leaves > position:
                self.fill_model.replace(other, leaves=position, price=working.price)

    def _apply_fills(self, events: list[matching.Event], time_ns: int) -> None:
        for event in events:
            if isinstance(event, matching.Fill):
                sid = event.order_id.rpartition(":")[0]
                guard = self._guard_of.get(event.order_id)
                self.accounts[sid].apply_fill(
                    self._instrument(event.symbol),
                    Side(event.side.value),
                    order_id=event.order_id,
                    quantity=event.quantity,
                    price=event.price,
                    fee=event.fee,
                    at=time_ns,
                    final=event.leaves == ZERO,
                    reason=guard[2] if guard else "signal",
                )
                if guard is not None:
                    self._after_guard_fill(event.order_id, event.leaves)

    def _size(self, symbol: str, price: Decimal) -> Decimal:
        quantity = self.config.quantities.get(symbol)
        if quantity is not None:
            return quantity
        lot = self.config.lot_size
        return (self.config.notional / price / lot).to_integral_value(rounding=ROUND_DOWN) * lot

    def _snapshot(self, symbol: str) -> MarketSnapshot:
        last = self._last.get(symbol)
        return MarketSnapshot(last_trade=last, bid=last, ask=last)

    def _instrument(self, symbol: str) -> Instrument:
        instrument = self._instruments.get(symbol)
        if instrument is None:
            base, _, quote = symbol.partition("-")
            lot = self.config.lot_size
            instrument = self._instruments[symbol] = Instrument(
                symbol, base, quote, Decimal("1e-8"), lot, lot, self.config.risk.min_notional
            )
        return instrument
