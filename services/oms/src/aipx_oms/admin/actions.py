"""AdminActions: the operator use cases. Each action changes the database and writes its audit record (who,
what, when, before/after, reason) in ONE transaction; the audit record is queued in the same transaction for
`admin-events` (AdminEventRelay), and changes other OMS processes must see are announced by NOTIFY at commit.
Effects on this process's order flow (trading state, platform halt) are applied right after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
from aipx.ids import now_ns

from aipx_oms.domain.ledger import Entry, EntryType, signed_amount
from aipx_oms.domain.model import AccountState, Instrument, Order
from aipx_oms.domain.validation import FieldViolation, check_id
from aipx_oms.errors import InvalidRequestError, RequestRejectedError
from aipx_oms.service import OrderService
from aipx_oms.store import admin as db
from aipx_oms.store.errors import StoreUnavailableError, is_unavailable
from aipx_oms.store.ledger import Conn, PostedEntry

log = logging.getLogger(__name__)

MAX_AUDIT_PAGE = 1000


@dataclass(frozen=True, slots=True)
class RiskLimitValues:
    """The limits an operator sets; None = the OMS default (AIPX_OMS_RISK_*)."""

    max_order_notional: Decimal | None = None
    max_position_notional: Decimal | None = None
    max_open_orders: int | None = None
    rate_per_s: Decimal | None = None
    price_band_bps: Decimal | None = None

    def columns(self) -> dict[str, Any]:
        return {
            "max_order_notional": self.max_order_notional,
            "max_position_notional": self.max_position_notional,
            "max_open_orders": self.max_open_orders,
            "rate_per_s": self.rate_per_s,
            "price_band_bps": self.price_band_bps,
        }


def _require(value: str, field: str, violations: list[FieldViolation]) -> None:
    violations += check_id(value, field)


def _reason(reason: str, violations: list[FieldViolation]) -> None:
    if len(reason) > 1000:
        violations.append(FieldViolation("reason", "longer than 1000 characters"))


class AdminActions:
    """See the module docstring. `order_service` is this process's OrderService (cancels, refresh)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        order_service: OrderService,
        *,
        on_audit: Callable[[], None] = lambda: None,
        on_platform: Callable[[bool], None] = lambda _: None,
    ) -> None:
        self.pool = pool
        self.orders = order_service
        self.on_audit = on_audit
        self.on_platform = on_platform

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn
        except Exception as exc:
            if is_unavailable(exc):
                raise StoreUnavailableError(f"PostgreSQL unavailable: {exc}") from exc
            raise

    def _audited(self) -> None:
        self.on_audit()

    # --- accounts -----------------------------------------------------------------------------------

    async def create_account(
        self,
        actor: str,
        account_id: str,
        name: str,
        limits: RiskLimitValues,
        *,
        allow_negative_balances: bool = False,
    ) -> db.AccountRecord:
        violations: list[FieldViolation] = []
        _require(account_id, "account_id", violations)
        if len(name) > 200:
            violations.append(FieldViolation("name", "longer than 200 characters"))
        if violations:
            raise InvalidRequestError(violations)
        async with self._tx() as conn:
            await db.create_account(conn, account_id, name, allow_negative_balances=allow_negative_balances)
            await db.set_risk_limits(conn, account_id, **limits.columns())
            after = await db.account_record(conn, account_id)
            await db.append_audit(
                conn, actor=actor, action="CreateAccount", account_id=account_id, after=after.as_json()
            )
        self._audited()
        return after

    async def list_accounts(self) -> list[db.AccountRecord]:
        async with self._tx() as conn:
            return await db.list_accounts(conn)

    async def set_risk_limits(self, actor: str, account_id: str, limits: RiskLimitValues) -> db.AccountRecord:
        after, _ = await self._change_account(
            actor,
            account_id,
            "SetRiskLimits",
            lambda conn: db.set_risk_limits(conn, account_id, **limits.columns()),
        )
        return after

    async def set_account_fees(
        self, actor: str, account_id: str, maker: Decimal | None, taker: Decimal | None
    ) -> db.AccountRecord:
        """Override the account's maker/taker rates (None: its instruments' rates); rates in [0, 1)."""
        violations = [
            FieldViolation(name, "must be >= 0 and < 1")
            for name, rate in (("maker_fee_rate", maker), ("taker_fee_rate", taker))
            if rate is not None and not Decimal(0) <= rate < Decimal(1)
        ]
        if violations:
            raise InvalidRequestError(violations)
        after, _ = await self._change_account(
            actor,
            account_id,
            "SetAccountFees",
            lambda conn: db.set_account_fees(conn, account_id, maker, taker),
        )
        return after

    async def set_trading_state(
        self, actor: str, account_id: str, state: AccountState, reason: str, *, cancel_working: bool
    ) -> tuple[db.AccountRecord, list[str]]:
        """Set the state; with HALTED and `cancel_working`, cancel every working order through the OMS's
        cancel path (each cancel is an order event as usual; the list is audited as its own record). The
        account keeps cancelling until its next state change: an order that becomes live later (committed
        while the halt was applied, or acknowledged by its venue afterwards) is cancelled by the order path
        (`BookCache.became_live`), and a cancel never overtakes its order on the way to the venue."""
        violations: list[FieldViolation] = []
        _reason(reason, violations)
        if cancel_working and state is not AccountState.HALTED:
            violations.append(
                FieldViolation("cancel_working_orders", "only with trading_state TRADING_STATE_HALTED")
            )
        if violations:
            raise InvalidRequestError(violations)
        after, record = await self._change_account(
            actor,
            account_id,
            "SetTradingState",
            lambda conn: db.set_account_state(conn, account_id, state, reason, cancel_working=cancel_working),
            reason=reason,
        )
        cancelled: list[str] = []
        if cancel_working:
            orders = await self.orders.store.open_orders(account_id)
            # All at once: each cancel waits up to cancel_wait_s for its venue to answer.
            done = await asyncio.gather(
                *(self._cancel(account_id, o.order_id, f"admin-halt-{record.audit_id}") for o in orders)
            )
            cancelled = [o.order_id for o, result in zip(orders, done, strict=True) if result is not None]
            async with self._tx() as conn:
                await db.append_audit(
                    conn,
                    actor=actor,
                    action="CancelWorkingOrders",
                    account_id=account_id,
                    after={"cancel_requested": cancelled},
                    reason=reason,
                )
            self._audited()
        return after, cancelled

    async def _change_account(
        self,
        actor: str,
        account_id: str,
        action: str,
        change: Callable[[Conn], Awaitable[object]],
        *,
        reason: str = "",
    ) -> tuple[db.AccountRecord, db.AuditRow]:
        """One change of an account's row: under its row lock, announced to every OMS process (NOTIFY),
        audited with before/after in the same transaction, then applied to this process at once."""
        async with self._tx() as conn:
            before = await db.account_record(conn, account_id, lock=True)
            await change(conn)
            await db.notify(conn, db.NOTIFY_ACCOUNT, account_id)
            after = await db.account_record(conn, account_id)
            record = await db.append_audit(
                conn,
                actor=actor,
                action=action,
                account_id=account_id,
                before=before.as_json(),
                after=after.as_json(),
                reason=reason,
            )
        self._audited()
        await self._refresh()
        return after, record

    async def _cancel(self, account_id: str, order_id: str, key_prefix: str) -> Order | None:
        """Cancel through the OMS's own cancel path; None when the order is no longer open."""
        try:
            return await self.orders.cancel(account_id, order_id, "", f"{key_prefix}-{order_id}", None)
        except RequestRejectedError as exc:
            log.info("admin cancel of %s refused: %s", order_id, exc)
            return None

    async def _refresh(self) -> None:
        """This process applies a state/limit change at once (others within account_refresh_s)."""
        try:
            await self.orders.refresh()
        except StoreUnavailableError as exc:
            log.warning("refresh after an admin change skipped: %s", exc)

    async def set_platform_halt(self, actor: str, halted: bool, reason: str) -> tuple[bool, str]:
        violations: list[FieldViolation] = []
        _reason(reason, violations)
        if violations:
            raise InvalidRequestError(violations)
        async with self._tx() as conn:
            before = await db.platform_halt(conn, lock=True)
            await db.set_platform_halt(conn, halted, reason)
            await db.append_audit(
                conn,
                actor=actor,
                action="SetPlatformHalt",
                before={"halted": before[0], "reason": before[1]},
                after={"halted": halted, "reason": reason},
                reason=reason,
            )
        self._audited()
        self.on_platform(halted)
        return halted, reason

    async def cancel_order(self, actor: str, account_id: str, order_id: str, reason: str) -> Order:
        """Cancel one order of any account on the operator's behalf (NOT_FOUND when the account has no
        such order; FAILED_PRECONDITION ORDER_NOT_OPEN when it is finished)."""
        violations: list[FieldViolation] = []
        _require(account_id, "account_id", violations)
        _require(order_id, "order_id", violations)
        _reason(reason, violations)
        if violations:
            raise InvalidRequestError(violations)
        before = await self.orders.get(account_id, order_id, "")
        order = await self.orders.cancel(account_id, order_id, "", f"admin-{uuid.uuid4().hex}", None)
        async with self._tx() as conn:
            await db.append_audit(
                conn,
                actor=actor,
                action="CancelOrder",
                account_id=account_id,
                before={"order_id": order_id, "status": before.status.value},
                after={"order_id": order_id, "status": order.status.value},
                reason=reason,
            )
        self._audited()
        return order

    # --- API keys -----------------------------------------------------------------------------------

    async def issue_api_key(self, actor: str, account_id: str, label: str) -> tuple[db.ApiKeyRecord, str]:
        """A new random key for the account: (its record, the secret - shown once, stored hashed)."""
        if len(label) > 200:
            raise InvalidRequestError([FieldViolation("label", "longer than 200 characters")])
        async with self._tx() as conn:
            await db.account_record(conn, account_id)
            secret = db.new_api_key()
            record, _ = await db.insert_api_key(conn, account_id, secret, label)
            await db.append_audit(
                conn, actor=actor, action="IssueApiKey", account_id=account_id, after=record.as_json()
            )
        self._audited()
        return record, secret

    async def revoke_api_key(self, actor: str, key_id: str, reason: str) -> db.ApiKeyRecord:
        async with self._tx() as conn:
            before = await db.api_key(conn, key_id, lock=True)
            after = await db.revoke_api_key(conn, key_id, reason)
            await db.append_audit(
                conn,
                actor=actor,
                action="RevokeApiKey",
                account_id=after.account_id,
                before=before.as_json(),
                after=after.as_json(),
                reason=reason,
            )
        self._audited()
        return after

    async def rotate_api_key(
        self, actor: str, key_id: str, reason: str
    ) -> tuple[db.ApiKeyRecord, db.ApiKeyRecord, str]:
        """Issue a new key for the old key's account and revoke the old one, in one transaction:
        (revoked, new, new secret)."""
        async with self._tx() as conn:
            before = await db.api_key(conn, key_id, lock=True)
            if before.revoked_time_ns:
                raise InvalidRequestError([FieldViolation("key_id", f"key {key_id} is already revoked")])
            secret = db.new_api_key()
            new, _ = await db.insert_api_key(conn, before.account_id, secret, before.label)
            revoked = await db.revoke_api_key(conn, key_id, reason or "rotated")
            await db.append_audit(
                conn,
                actor=actor,
                action="RotateApiKey",
                account_id=before.account_id,
                before=before.as_json(),
                after={"revoked": revoked.as_json(), "issued": new.as_json()},
                reason=reason,
            )
        self._audited()
        return revoked, new, secret

    async def list_api_keys(self, account_id: str) -> list[db.ApiKeyRecord]:
        async with self._tx() as conn:
            return await db.list_api_keys(conn, account_id)

    # --- instruments --------------------------------------------------------------------------------

    async def upsert_instrument(self, actor: str, instrument: Instrument) -> tuple[Instrument, bool]:
        violations: list[FieldViolation] = []
        for field, value in (
            ("symbol", instrument.symbol),
            ("base_asset", instrument.base_asset),
            ("quote_asset", instrument.quote_asset),
        ):
            _require(value, f"instrument.{field}", violations)
        for field, amount, positive in (
            ("tick_size", instrument.tick_size, True),
            ("lot_size", instrument.lot_size, True),
            ("min_quantity", instrument.min_quantity, False),
            ("min_notional", instrument.min_notional, False),
        ):
            if amount < 0 or (positive and amount == 0):
                need = "positive" if positive else "zero or more"
                violations.append(FieldViolation(f"instrument.{field}", f"must be {need}, got {amount}"))
        if violations:
            raise InvalidRequestError(violations)
        async with self._tx() as conn:
            before = await db.instrument(conn, instrument.symbol)
            await db.upsert_instrument(conn, instrument)
            await db.append_audit(
                conn,
                actor=actor,
                action="UpsertInstrument",
                before=None if before is None else db.instrument_json(before),
                after=db.instrument_json(instrument),
            )
        self._audited()
        await self._refresh()
        return instrument, before is None

    # --- ledger -------------------------------------------------------------------------------------

    async def post_ledger_entry(
        self,
        actor: str,
        account_id: str,
        *,
        asset: str,
        entry_type: EntryType,
        amount: Decimal,
        reason: str,
        idempotency_key: str,
    ) -> PostedEntry:
        """A deposit, withdrawal or adjustment, once per (account, idempotency key); audited when posted. It
        goes through the leading OMS's order path (usecases.entries), so a standby answers UNAVAILABLE."""
        violations: list[FieldViolation] = []
        _require(account_id, "account_id", violations)
        _require(asset, "asset", violations)
        _require(idempotency_key, "idempotency_key", violations)
        _reason(reason, violations)
        if not reason:
            violations.append(FieldViolation("reason", "a ledger entry needs a reason"))
        if violations:
            raise InvalidRequestError(violations)
        signed = signed_amount(entry_type, amount)
        entry = Entry(
            entry_id=f"le-{uuid.uuid4().hex}",
            account_id=account_id,
            asset=asset,
            type=entry_type,
            amount=signed,
            reason=reason,
            actor=actor,
            idempotency_key=idempotency_key,
            time_ns=now_ns(),
        )
        async with self._tx() as conn:
            await db.account_record(conn, account_id)

        async def audited(conn: Conn, posted: PostedEntry) -> None:
            if not posted.created:
                return
            await db.notify(conn, db.NOTIFY_LEDGER, account_id)
            await db.append_audit(
                conn,
                actor=actor,
                action="PostLedgerEntry",
                account_id=account_id,
                after={
                    "entry_id": entry.entry_id,
                    "asset": asset,
                    "type": entry_type.value,
                    "amount": str(signed),
                    "balance_after": str(posted.balance_after),
                    "idempotency_key": idempotency_key,
                },
                reason=reason,
            )

        # Through the order path: checked and held with the account's reservations, committed in their order.
        posted = await self.orders.post_ledger_entry(entry, audited)
        if posted.created:
            self._audited()
        return posted

    # --- audit --------------------------------------------------------------------------------------

    async def audit_log(self, account_id: str, limit: int, before_audit_id: int) -> list[db.AuditRow]:
        if not 0 <= limit <= MAX_AUDIT_PAGE:
            raise InvalidRequestError([FieldViolation("limit", f"must be 0..{MAX_AUDIT_PAGE}")])
        async with self._tx() as conn:
            return await db.list_audit(conn, account_id, limit or 100, before_audit_id)
