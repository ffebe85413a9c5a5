"""The ledger: every movement of an account's assets is an entry; balances are derived from the entries.

Plain code, no I/O. The money model:
- An entry moves one asset of one account by a signed amount: DEPOSIT (+), WITHDRAWAL (-), ADJUSTMENT (either
  sign), and for a fill two TRADE legs (base and quote) plus exactly one FEE entry (amount 0 when the fill
  had no fee, so that no fill ever goes without its fee entry).
- total(asset) = the sum of that asset's entries. locked(asset) = the sum of the reservations of working
  orders in that asset; free = total - locked.
- A cash account (the default) never lets a debit take free below zero: a withdrawal or negative adjustment
  needs the free balance, and an order's reservation needs it too. A fill debits the order's own
  reservation first. A margin account (allow_negative) may go below zero.
- Every amount is an exact Decimal. The one division-free rounding: a BUY order's reservation includes its
  fee at the fee rate, and notional x rate is rounded UP (ROUND_CEILING) to `MONEY_EXPONENT` (1e-18), so the
  reservation always covers the fee that fill will be charged with the same rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum

from aipx_oms.domain.model import ZERO, Side

# The smallest amount the ledger represents (PostgreSQL numeric keeps more; fees are rounded to this).
MONEY_EXPONENT = Decimal("1e-18")


class EntryType(StrEnum):
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"
    ADJUSTMENT = "ADJUSTMENT"
    TRADE = "TRADE"
    FEE = "FEE"


class LedgerError(Exception):
    """A ledger movement that cannot be made."""


class InvalidEntryError(LedgerError):
    """An entry that is malformed (wrong sign for its type, zero amount, no asset)."""


class InsufficientBalanceError(LedgerError):
    """A debit or reservation larger than the free balance of a cash account."""

    def __init__(self, asset: str, needed: Decimal, free: Decimal) -> None:
        self.asset = asset
        self.needed = needed
        self.free = free
        super().__init__(f"insufficient {asset}: needs {needed}, free {free}")


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger movement; `amount` is signed (credit > 0, debit < 0)."""

    entry_id: str
    account_id: str
    asset: str
    type: EntryType
    amount: Decimal
    reason: str = ""
    actor: str = ""
    order_id: str | None = None
    fill_id: str | None = None
    idempotency_key: str | None = None
    time_ns: int = 0


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    total: Decimal
    locked: Decimal

    @property
    def free(self) -> Decimal:
        return self.total - self.locked


@dataclass(frozen=True, slots=True)
class Reservation:
    """Funds held for one working order: the quote asset of a BUY, the base asset of a SELL."""

    order_id: str
    asset: str
    amount: Decimal


def signed_amount(entry_type: EntryType, amount: Decimal) -> Decimal:
    """The signed ledger amount of an operator entry: DEPOSIT and WITHDRAWAL take a positive amount (a
    withdrawal debits it); ADJUSTMENT takes a signed, non-zero one. TRADE and FEE come only from fills."""
    if not amount.is_finite():
        raise InvalidEntryError(f"amount {amount} is not a finite number")
    if entry_type in (EntryType.DEPOSIT, EntryType.WITHDRAWAL):
        if amount <= ZERO:
            raise InvalidEntryError(f"a {entry_type} amount must be positive, got {amount}")
        return amount if entry_type is EntryType.DEPOSIT else -amount
    if entry_type is EntryType.ADJUSTMENT:
        if amount == ZERO:
            raise InvalidEntryError("an ADJUSTMENT amount must not be zero")
        return amount
    raise InvalidEntryError(f"{entry_type} entries come from fills, not from operators")


def fee_for(notional: Decimal, rate: Decimal) -> Decimal:
    """notional x rate, rounded up to MONEY_EXPONENT (the venue's fee rounding is reported, not derived)."""
    return (notional * rate).quantize(MONEY_EXPONENT, rounding=ROUND_CEILING)


def order_reservation(
    order_id: str,
    side: Side,
    quantity: Decimal,
    price: Decimal,
    *,
    base_asset: str,
    quote_asset: str,
    fee_rate: Decimal = ZERO,
) -> Reservation:
    """What a working order holds: a BUY its notional plus fee in the quote asset (at the limit price, or
    the reference price of a market order), a SELL its quantity in the base asset."""
    if side is Side.BUY:
        notional = quantity * price
        return Reservation(order_id, quote_asset, notional + fee_for(notional, fee_rate))
    return Reservation(order_id, base_asset, quantity)


def fill_entries(
    *,
    account_id: str,
    order_id: str,
    fill_id: str,
    side: Side,
    base_asset: str,
    quote_asset: str,
    quantity: Decimal,
    price: Decimal,
    fee: Decimal,
    fee_asset: str,
    time_ns: int,
) -> tuple[Entry, Entry, Entry]:
    """The three entries of a fill: base leg, quote leg, fee (always present; 0 when there was no fee).
    Entry ids derive from the fill id, so a fill reported twice produces the same entries."""
    if quantity <= ZERO or price <= ZERO:
        raise InvalidEntryError(f"a fill needs a positive quantity and price, got {quantity} @ {price}")
    if fee < ZERO:
        raise InvalidEntryError(f"a fee must not be negative, got {fee}")
    sign = Decimal(side.sign)

    def leg(suffix: str, asset: str, entry_type: EntryType, amount: Decimal) -> Entry:
        return Entry(
            f"{fill_id}:{suffix}",
            account_id,
            asset,
            entry_type,
            amount,
            order_id=order_id,
            fill_id=fill_id,
            time_ns=time_ns,
        )

    return (
        leg("base", base_asset, EntryType.TRADE, sign * quantity),
        leg("quote", quote_asset, EntryType.TRADE, -sign * quantity * price),
        leg("fee", fee_asset or quote_asset, EntryType.FEE, -fee),
    )


def check_debit(asset: str, total: Decimal, locked: Decimal, amount: Decimal, allow_negative: bool) -> None:
    """InsufficientBalanceError when `amount` (signed) would take a cash account's free balance below 0."""
    if amount < ZERO and not allow_negative and total + amount - locked < ZERO:
        raise InsufficientBalanceError(asset, -amount, total - locked)


@dataclass
class AccountLedger:
    """One account's balances and reservations, changed only through these methods; each checks the
    invariants before it changes anything (all or nothing)."""

    account_id: str
    allow_negative: bool = False
    totals: dict[str, Decimal] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        account_id: str,
        entries: Iterable[Entry],
        reservations: Iterable[Reservation] = (),
        *,
        allow_negative: bool = False,
    ) -> AccountLedger:
        """The ledger as its stored entries and reservations make it."""
        totals: dict[str, Decimal] = {}
        for entry in entries:
            totals[entry.asset] = totals.get(entry.asset, ZERO) + entry.amount
        return cls(account_id, allow_negative, totals, {r.order_id: r for r in reservations})

    def total(self, asset: str) -> Decimal:
        return self.totals.get(asset, ZERO)

    def locked(self, asset: str) -> Decimal:
        return sum((r.amount for r in self.reservations.values() if r.asset == asset), ZERO)

    def free(self, asset: str) -> Decimal:
        return self.total(asset) - self.locked(asset)

    def balances(self) -> dict[str, Balance]:
        assets = set(self.totals) | {r.asset for r in self.reservations.values()}
        return {a: Balance(a, self.total(a), self.locked(a)) for a in sorted(assets)}

    def post(self, entry: Entry) -> Decimal:
        """Apply an operator entry (deposit, withdrawal, adjustment); the asset's new total."""
        if entry.account_id != self.account_id:
            raise InvalidEntryError(f"entry of account {entry.account_id!r} posted to {self.account_id!r}")
        if not entry.asset:
            raise InvalidEntryError("an entry needs an asset")
        check_debit(
            entry.asset, self.total(entry.asset), self.locked(entry.asset), entry.amount, self.allow_negative
        )
        self.totals[entry.asset] = self.total(entry.asset) + entry.amount
        return self.totals[entry.asset]

    def undo(self, entry: Entry) -> None:
        """Take back an operator entry posted here whose commit did not happen."""
        self.totals[entry.asset] = self.total(entry.asset) - entry.amount

    def reserve(self, reservation: Reservation) -> None:
        """Hold funds for a working order (replacing the order's earlier reservation, e.g. on replace)."""
        if reservation.amount < ZERO:
            raise InvalidEntryError(f"a reservation must not be negative, got {reservation.amount}")
        earlier = self.reservations.get(reservation.order_id)
        held = earlier.amount if earlier is not None and earlier.asset == reservation.asset else ZERO
        check_debit(
            reservation.asset,
            self.total(reservation.asset),
            self.locked(reservation.asset) - held,
            -reservation.amount,
            self.allow_negative,
        )
        self.reservations[reservation.order_id] = reservation

    def release(self, order_id: str) -> Reservation | None:
        """Free what an order held (cancel, reject, expiry, last fill); the released reservation."""
        return self.reservations.pop(order_id, None)

    def settle_fill(self, entries: tuple[Entry, Entry, Entry], *, final: bool, check: bool = True) -> None:
        """Apply a fill's entries (from `fill_entries`), drawing the debits from the order's reservation;
        `final` (the order is now filled or otherwise done) releases whatever it still holds. `check=False`
        applies a fill that already happened at the venue even when it overdraws (a fact is never refused)."""
        order_id = entries[0].order_id
        assert order_id is not None
        reservation = self.reservations.get(order_id)
        moves: dict[str, Decimal] = {}
        for entry in entries:
            moves[entry.asset] = moves.get(entry.asset, ZERO) + entry.amount
        consumed = ZERO
        if reservation is not None:
            debit = -moves.get(reservation.asset, ZERO)
            consumed = min(max(debit, ZERO), reservation.amount)
        for asset, amount in moves.items():
            held = consumed if reservation is not None and asset == reservation.asset else ZERO
            check_debit(
                asset, self.total(asset), self.locked(asset) - held, amount, self.allow_negative or not check
            )
        for asset, amount in moves.items():
            self.totals[asset] = self.total(asset) + amount
        if reservation is not None:
            left = reservation.amount - consumed
            if final or left <= ZERO:
                del self.reservations[order_id]
            else:
                self.reservations[order_id] = Reservation(order_id, reservation.asset, left)


def totals_of(entries: Iterable[Entry]) -> Mapping[str, Decimal]:
    """Per asset, the sum of the entries (what every balance must equal)."""
    totals: dict[str, Decimal] = {}
    for entry in entries:
        totals[entry.asset] = totals.get(entry.asset, ZERO) + entry.amount
    return totals


def unrealized_pnl(quantity: Decimal, average_price: Decimal, mark: Decimal) -> Decimal:
    """What a position would realize at `mark`: quantity x (mark - average price) (no division)."""
    return quantity * (mark - average_price)


def mark_price(last_trade: Decimal | None, bid: Decimal | None, ask: Decimal | None) -> Decimal | None:
    """The mark of an instrument: its last trade, else the mid of bid and ask (the one division here: / 2,
    at the decimal context's 28 significant digits, ROUND_HALF_EVEN), else None."""
    if last_trade is not None:
        return last_trade
    if bid is not None and ask is not None:
        return (bid + ask) / 2
    return None


@dataclass(frozen=True, slots=True)
class ValuedBalance:
    balance: Balance
    mark: Decimal | None  # in the valuation asset
    value: Decimal | None


@dataclass(frozen=True, slots=True)
class PositionMark:
    """A position as valuation needs it: signed quantity, average price, realized P&L."""

    symbol: str
    quantity: Decimal
    average_price: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class AccountValuation:
    balances: tuple[ValuedBalance, ...]
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    unpriced: tuple[str, ...]


def value_account(
    balances: Iterable[Balance],
    positions: Iterable[PositionMark],
    marks: Mapping[str, Decimal],
    asset_symbols: Mapping[str, str],
    valuation_asset: str,
) -> AccountValuation:
    """Value an account in `valuation_asset`. `marks`: symbol -> mark price; `asset_symbols`: asset -> the
    symbol that prices it in the valuation asset (e.g. BTC -> BTC-USDT).

    equity = the sum of total x mark over the balances that have a mark (the valuation asset's mark is 1);
    assets without one are listed in `unpriced` and left out. Unrealized P&L = sum of quantity x (mark -
    average price) over positions with a mark (positions without one count 0 and are listed in `unpriced`).
    Positions are not added to equity: once fills move balances (the order-path follow-up) a position's
    value is in its base asset's balance already."""
    valued: list[ValuedBalance] = []
    unpriced: list[str] = []
    equity = ZERO
    for balance in balances:
        if balance.asset == valuation_asset:
            mark: Decimal | None = Decimal(1)
        else:
            symbol = asset_symbols.get(balance.asset)
            mark = marks.get(symbol) if symbol is not None else None
        value = None if mark is None else balance.total * mark
        if value is None:
            unpriced.append(balance.asset)
        else:
            equity += value
        valued.append(ValuedBalance(balance, mark, value))
    realized = ZERO
    unrealized = ZERO
    for position in positions:
        realized += position.realized_pnl
        if position.quantity == ZERO:
            continue
        position_mark = marks.get(position.symbol)
        if position_mark is None:
            unpriced.append(position.symbol)
            continue
        unrealized += unrealized_pnl(position.quantity, position.average_price, position_mark)
    return AccountValuation(tuple(valued), equity, realized, unrealized, tuple(unpriced))


@dataclass(frozen=True, slots=True)
class Divergence:
    """An asset whose ledger total differs from what the venue holds; `adjustment` makes them agree."""

    asset: str
    ledger: Decimal
    venue: Decimal

    @property
    def adjustment(self) -> Decimal:
        return self.venue - self.ledger


def divergences(
    ledger_totals: Mapping[str, Decimal], venue_totals: Mapping[str, Decimal], *, complete: bool
) -> list[Divergence]:
    """The assets where the ledger and the venue disagree, by asset. A `complete` venue view holds 0 of
    every asset it does not list; a partial one (a stream update) says nothing about the others."""
    assets = set(venue_totals) | (set(ledger_totals) if complete else set())
    found = []
    for asset in sorted(assets):
        ledger = ledger_totals.get(asset, ZERO)
        venue = venue_totals.get(asset, ZERO)
        if ledger != venue:
            found.append(Divergence(asset, ledger, venue))
    return found
