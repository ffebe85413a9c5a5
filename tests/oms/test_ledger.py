"""The ledger: the domain's invariants under random operation sequences (hypothesis), and the PostgreSQL store
keeping the same invariants (sum of entries = balance, never negative on a cash account, a fill always with
its fee entry, reservations released on cancel and on the last fill)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import asyncpg
import pytest
from aipx_oms.domain.ledger import (
    AccountLedger,
    Balance,
    Entry,
    EntryType,
    InsufficientBalanceError,
    InvalidEntryError,
    PositionMark,
    Reservation,
    fee_for,
    fill_entries,
    mark_price,
    order_reservation,
    signed_amount,
    totals_of,
    value_account,
)
from aipx_oms.domain.model import Side
from aipx_oms.settings import DEFAULT_MIGRATIONS_DIR
from aipx_oms.store import ledger as store
from aipx_oms.store.admin import upsert_account
from aipx_oms.store.migrations import migrate
from aipx_oms.store.writer import GroupCommitWriter, Mutation
from hypothesis import given, settings
from hypothesis import strategies as st

ZERO = Decimal(0)
amounts = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("100000"), places=3)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000"), places=2)
quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("50"), places=3)
fee_rates = st.sampled_from([Decimal(0), Decimal("0.001"), Decimal("0.00075")])

operation = st.one_of(
    st.tuples(st.just("deposit"), st.sampled_from(["USDT", "BTC"]), amounts),
    st.tuples(st.just("withdraw"), st.sampled_from(["USDT", "BTC"]), amounts),
    st.tuples(st.just("adjust"), st.sampled_from(["USDT", "BTC"]), amounts, st.booleans()),
    st.tuples(st.just("order"), st.sampled_from([Side.BUY, Side.SELL]), quantities, prices, fee_rates),
    st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=20)),
    st.tuples(st.just("fill"), st.integers(min_value=0, max_value=20), st.booleans()),
)


def entry(n: int, asset: str, entry_type: EntryType, amount: Decimal) -> Entry:
    return Entry(f"e{n}", "acct", asset, entry_type, signed_amount(entry_type, amount))


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, max_size=40), st.booleans())
def test_ledger_invariants_hold_for_any_sequence(ops: list[tuple[object, ...]], margin: bool) -> None:
    ledger = AccountLedger("acct", allow_negative=margin)
    entries: list[Entry] = []
    orders: dict[str, tuple[Side, Decimal, Decimal, Decimal]] = {}  # id -> side, leaves, price, fee rate
    fills = 0
    for n, op in enumerate(ops):
        kind = op[0]
        try:
            if kind in ("deposit", "withdraw", "adjust"):
                asset, amount = op[1], op[2]
                assert isinstance(asset, str) and isinstance(amount, Decimal)
                if kind == "adjust":
                    e = entry(n, asset, EntryType.ADJUSTMENT, amount if op[3] else -amount)
                else:
                    e = entry(
                        n, asset, EntryType.DEPOSIT if kind == "deposit" else EntryType.WITHDRAWAL, amount
                    )
                ledger.post(e)
                entries.append(e)
            elif kind == "order":
                side, qty, price, rate = op[1], op[2], op[3], op[4]
                assert isinstance(side, Side) and isinstance(qty, Decimal)
                assert isinstance(price, Decimal) and isinstance(rate, Decimal)
                order_id = f"o{n}"
                reservation = order_reservation(
                    order_id, side, qty, price, base_asset="BTC", quote_asset="USDT", fee_rate=rate
                )
                ledger.reserve(reservation)
                orders[order_id] = (side, qty, price, rate)
            elif kind == "cancel" and orders:
                order_id = sorted(orders)[int(str(op[1])) % len(orders)]
                ledger.release(order_id)
                del orders[order_id]
                assert order_id not in ledger.reservations
            elif kind == "fill" and orders:
                order_id = sorted(orders)[int(str(op[1])) % len(orders)]
                side, leaves, price, rate = orders[order_id]
                qty = leaves if op[2] else (leaves / 2).quantize(Decimal("0.001"))
                if qty <= ZERO:
                    continue
                fee = fee_for(qty * price, rate)
                legs = fill_entries(
                    account_id="acct",
                    order_id=order_id,
                    fill_id=f"f{n}",
                    side=side,
                    base_asset="BTC",
                    quote_asset="USDT",
                    quantity=qty,
                    price=price,
                    fee=fee,
                    fee_asset="USDT",
                    time_ns=n,
                )
                final = qty == leaves
                ledger.settle_fill(legs, final=final)
                entries.extend(legs)
                fills += 1
                if final:
                    del orders[order_id]
                    assert order_id not in ledger.reservations  # released on the last fill
                else:
                    orders[order_id] = (side, leaves - qty, price, rate)
        except InsufficientBalanceError:
            assert not margin  # only cash accounts refuse
        # The invariants, after every step:
        for asset, total in totals_of(entries).items():
            assert ledger.total(asset) == total  # balance = sum of the ledger
        for asset, balance in ledger.balances().items():
            assert balance.locked == sum(
                (r.amount for r in ledger.reservations.values() if r.asset == asset), ZERO
            )
            if not margin:
                assert balance.free >= ZERO, (asset, balance)
        assert set(ledger.reservations) <= set(orders)
    # No fill without its fee entry: exactly one FEE entry per fill, with the fill's id.
    fee_entries = [e for e in entries if e.type is EntryType.FEE]
    assert len(fee_entries) == fills
    assert {e.fill_id for e in fee_entries} == {e.fill_id for e in entries if e.type is EntryType.TRADE}


def test_operator_entries_have_signs_and_reasons() -> None:
    assert signed_amount(EntryType.DEPOSIT, Decimal("5")) == Decimal("5")
    assert signed_amount(EntryType.WITHDRAWAL, Decimal("5")) == Decimal("-5")
    assert signed_amount(EntryType.ADJUSTMENT, Decimal("-2")) == Decimal("-2")
    for entry_type, amount in (
        (EntryType.DEPOSIT, Decimal("-1")),
        (EntryType.WITHDRAWAL, Decimal("0")),
        (EntryType.ADJUSTMENT, Decimal("0")),
        (EntryType.TRADE, Decimal("1")),
        (EntryType.DEPOSIT, Decimal("NaN")),
    ):
        with pytest.raises(InvalidEntryError):
            signed_amount(entry_type, amount)


def test_fee_rounds_up_and_the_reservation_covers_it() -> None:
    assert fee_for(Decimal("0.00001") * Decimal("1"), Decimal("0.00000000000001")) == Decimal("1E-18")
    reservation = order_reservation(
        "o", Side.BUY, Decimal("0.5"), Decimal("100"), base_asset="BTC", quote_asset="USDT",
        fee_rate=Decimal("0.001"),
    )  # fmt: skip
    assert reservation == Reservation("o", "USDT", Decimal("50.05"))
    assert order_reservation("o", Side.SELL, Decimal("0.5"), Decimal("100"), base_asset="BTC",
                             quote_asset="USDT").amount == Decimal("0.5")  # fmt: skip


def test_valuation_marks_and_unrealized_pnl() -> None:
    assert mark_price(Decimal("10"), Decimal("9"), Decimal("11")) == Decimal("10")
    assert mark_price(None, Decimal("9"), Decimal("10")) == Decimal("9.5")
    assert mark_price(None, Decimal("9"), None) is None
    valuation = value_account(
        [Balance("USDT", Decimal("1000"), Decimal("100")), Balance("BTC", Decimal("2"), ZERO),
         Balance("DOGE", Decimal("5"), ZERO)],
        [PositionMark("BTC-USDT", Decimal("2"), Decimal("100"), Decimal("7")),
         PositionMark("ETH-USDT", Decimal("1"), Decimal("10"), Decimal("-2"))],
        {"BTC-USDT": Decimal("110")},
        {"BTC": "BTC-USDT", "ETH": "ETH-USDT"},
        "USDT",
    )  # fmt: skip
    assert valuation.equity == Decimal("1220")  # 1000 + 2 x 110; DOGE has no mark
    assert valuation.realized_pnl == Decimal("5")
    assert valuation.unrealized_pnl == Decimal("20")  # 2 x (110 - 100); ETH has no mark
    assert valuation.unpriced == ("DOGE", "ETH-USDT")


# --- the store, against PostgreSQL ------------------------------------------------------------------


@pytest.fixture
async def dsn(new_database: Callable[[], Awaitable[str]]) -> str:
    dsn = await new_database()
    await migrate(dsn, DEFAULT_MIGRATIONS_DIR)
    return dsn


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn)
    await upsert_account(connection, "cash")
    await upsert_account(connection, "margin")
    await connection.execute("UPDATE accounts SET allow_negative_balances = true WHERE account_id = 'margin'")
    yield connection
    await connection.close()


def deposit(account: str, asset: str, amount: str, key: str, kind: EntryType = EntryType.DEPOSIT) -> Entry:
    return Entry(
        f"le-{key}", account, asset, kind, signed_amount(kind, Decimal(amount)),
        reason="test", actor="tester", idempotency_key=key, time_ns=1,
    )  # fmt: skip


async def assert_balances_are_sums(conn: asyncpg.Connection, account: str) -> None:
    sums = {
        r["asset"]: r["s"]
        for r in await conn.fetch(
            "SELECT asset, sum(amount) AS s FROM ledger_entries WHERE account_id = $1 GROUP BY asset", account
        )
    }
    for balance in await store.balances(conn, account):
        assert balance.total == sums.get(balance.asset, ZERO), balance


async def test_store_posts_idempotently_and_never_below_zero(conn: asyncpg.Connection) -> None:
    first = await store.post_entry(conn, deposit("cash", "USDT", "100", "d1"))
    again = await store.post_entry(conn, deposit("cash", "USDT", "100", "d1"))
    assert first.created and not again.created and again.entry.entry_id == first.entry.entry_id
    assert again.balance_after == Decimal("100")
    with pytest.raises(InsufficientBalanceError, match="insufficient USDT"):
        await store.post_entry(conn, deposit("cash", "USDT", "100.01", "w1", EntryType.WITHDRAWAL))
    await store.post_entry(conn, deposit("cash", "USDT", "40", "w2", EntryType.WITHDRAWAL))
    # A reservation takes from free: a withdrawal can no longer take it.
    await store.reserve(conn, "cash", Reservation("order-1", "USDT", Decimal("50")))
    with pytest.raises(InsufficientBalanceError):
        await store.post_entry(conn, deposit("cash", "USDT", "10.01", "w3", EntryType.WITHDRAWAL))
    with pytest.raises(InsufficientBalanceError):
        await store.reserve(conn, "cash", Reservation("order-2", "USDT", Decimal("10.01")))
    [usdt] = await store.balances(conn, "cash")
    assert (usdt.total, usdt.locked, usdt.free) == (Decimal("60"), Decimal("50"), Decimal("10"))
    # Cancel releases the reservation.
    await store.release(conn, "order-1")
    [usdt] = await store.balances(conn, "cash")
    assert usdt.locked == ZERO and usdt.free == Decimal("60")
    # A margin account may go negative.
    posted = await store.post_entry(conn, deposit("margin", "USDT", "5", "m1", EntryType.WITHDRAWAL))
    assert posted.balance_after == Decimal("-5")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await conn.execute("UPDATE ledger_entries SET amount = 0")
    await assert_balances_are_sums(conn, "cash")
    await assert_balances_are_sums(conn, "margin")


async def test_store_fill_posts_legs_and_fee_and_releases_on_last_fill(conn: asyncpg.Connection) -> None:
    await store.post_entry(conn, deposit("cash", "USDT", "1000", "d1"))
    reservation = order_reservation(
        "order-1", Side.BUY, Decimal("2"), Decimal("100"), base_asset="BTC", quote_asset="USDT",
        fee_rate=Decimal("0.001"),
    )  # fmt: skip
    await store.reserve(conn, "cash", reservation)

    def legs(fill: str, qty: str) -> tuple[Entry, Entry, Entry]:
        return fill_entries(
            account_id="cash", order_id="order-1", fill_id=fill, side=Side.BUY, base_asset="BTC",
            quote_asset="USDT", quantity=Decimal(qty), price=Decimal("100"),
            fee=fee_for(Decimal(qty) * 100, Decimal("0.001")), fee_asset="USDT", time_ns=2,
        )  # fmt: skip

    assert await store.post_fill(conn, legs("f1", "1"), final=False)
    assert not await store.post_fill(conn, legs("f1", "1"), final=False)  # the same fill again: no-op
    balances = {b.asset: b for b in await store.balances(conn, "cash")}
    assert balances["BTC"].total == Decimal("1")
    assert balances["USDT"].total == Decimal("899.9")  # 1000 - 100 - 0.1 fee
    assert balances["USDT"].locked == Decimal("100.1")  # 200.2 reserved - 100.1 consumed
    assert await store.post_fill(conn, legs("f2", "1"), final=True)
    balances = {b.asset: b for b in await store.balances(conn, "cash")}
    assert balances["USDT"].total == Decimal("799.8") and balances["USDT"].locked == ZERO
    assert await store.reservations(conn, "cash") == []
    fees = await conn.fetch("SELECT fill_id, amount FROM ledger_entries WHERE type = 'FEE' ORDER BY fill_id")
    assert [(r["fill_id"], r["amount"]) for r in fees] == [("f1", Decimal("-0.1")), ("f2", Decimal("-0.1"))]
    await assert_balances_are_sums(conn, "cash")


async def test_writer_checks_an_operator_entry_after_the_reservations_queued_before_it(
    conn: asyncpg.Connection, dsn: str
) -> None:
    """One group commit: an order's reservation, then a withdrawal that its free balance no longer covers
    (refused alone, with the ledger's error: the neighbours commit), then one that fits."""
    await store.post_entry(conn, deposit("cash", "USDT", "100", "d1"))
    writer = GroupCommitWriter(dsn, encode_event=lambda _event, _sequence: b"")
    await writer.start()
    try:

        def withdrawal(amount: str, key: str) -> Mutation:
            entry = deposit("cash", "USDT", amount, key, EntryType.WITHDRAWAL)
            return Mutation(in_commit=lambda c: store.post_entry(c, entry))

        held = writer.enqueue(Mutation(reservations=[("cash", Reservation("order-1", "USDT", Decimal(60)))]))
        too_much = writer.enqueue(withdrawal("50", "w1"))
        fits = writer.enqueue(withdrawal("40", "w2"))
        assert (await held).created
        with pytest.raises(InsufficientBalanceError, match="needs 50, free 40"):
            await too_much
        posted = (await fits).in_commit
        assert posted.created and posted.balance_after == Decimal(60)
    finally:
        await writer.stop()
    [usdt] = await store.balances(conn, "cash")
    assert (usdt.total, usdt.locked, usdt.free) == (Decimal(60), Decimal(60), ZERO)
    await assert_balances_are_sums(conn, "cash")
