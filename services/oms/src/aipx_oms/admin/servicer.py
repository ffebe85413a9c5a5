"""AdminServicer: the gRPC face of the admin use cases (protobuf <-> domain, nothing decided here)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import grpc
from aipx.money import InvalidDecimalError, from_pb
from aipx.v1 import admin_pb2, admin_pb2_grpc, common_pb2

from aipx_oms.admin.accounts import TRADING_STATES
from aipx_oms.admin.actions import AdminActions, RiskLimitValues
from aipx_oms.admin.relay import audit_to_pb
from aipx_oms.domain.ledger import EntryType
from aipx_oms.domain.model import Instrument
from aipx_oms.domain.validation import FieldViolation
from aipx_oms.errors import InvalidRequestError
from aipx_oms.servicer import caller
from aipx_oms.store.admin import AccountRecord, ApiKeyRecord
from aipx_oms.wire import dec, instrument_to_pb, order_to_pb

STATES_BY_PB = {pb: state for state, pb in TRADING_STATES.items()}
ENTRY_TYPES = {
    admin_pb2.LEDGER_ENTRY_TYPE_DEPOSIT: EntryType.DEPOSIT,
    admin_pb2.LEDGER_ENTRY_TYPE_WITHDRAWAL: EntryType.WITHDRAWAL,
    admin_pb2.LEDGER_ENTRY_TYPE_ADJUSTMENT: EntryType.ADJUSTMENT,
}
Context = grpc.aio.ServicerContext[Any, Any]


def _decimal(pb: common_pb2.Decimal, field: str, violations: list[FieldViolation]) -> Decimal | None:
    try:
        return from_pb(pb, field=field)
    except InvalidDecimalError as exc:
        violations.append(FieldViolation(field, str(exc)))
        return None


def limits_from_pb(pb: admin_pb2.RiskLimits, prefix: str = "risk_limits") -> RiskLimitValues:
    """Empty decimals and zero integers mean "the OMS default"."""
    violations: list[FieldViolation] = []
    values = RiskLimitValues(
        max_order_notional=_decimal(pb.max_order_notional, f"{prefix}.max_order_notional", violations),
        max_position_notional=_decimal(
            pb.max_position_notional, f"{prefix}.max_position_notional", violations
        ),
        max_open_orders=pb.max_open_orders or None,
        rate_per_s=Decimal(pb.max_orders_per_second) if pb.max_orders_per_second else None,
        price_band_bps=Decimal(pb.price_band_bps) if pb.price_band_bps else None,
    )
    for field, number in (
        ("max_open_orders", pb.max_open_orders),
        ("max_orders_per_second", pb.max_orders_per_second),
        ("price_band_bps", pb.price_band_bps),
    ):
        if number < 0:
            violations.append(FieldViolation(f"{prefix}.{field}", "must not be negative"))
    for field, amount in (
        ("max_order_notional", values.max_order_notional),
        ("max_position_notional", values.max_position_notional),
    ):
        if amount is not None and amount < 0:
            violations.append(FieldViolation(f"{prefix}.{field}", "must not be negative"))
    if violations:
        raise InvalidRequestError(violations)
    return values


def account_to_pb(account: AccountRecord) -> admin_pb2.AccountSummary:
    lim = account.limits
    return admin_pb2.AccountSummary(
        account_id=account.account_id,
        name=account.name,
        trading_state=TRADING_STATES[account.state],
        trading_state_reason=account.state_reason,
        risk_limits=admin_pb2.RiskLimits(
            max_order_notional=dec(lim.get("max_order_notional")),
            max_position_notional=dec(lim.get("max_position_notional")),
            max_open_orders=int(lim.get("max_open_orders") or 0),
            max_orders_per_second=int(lim.get("rate_per_s") or 0),
            price_band_bps=int(lim.get("price_band_bps") or 0),
        ),
        created_time_ns=account.created_time_ns,
        allow_negative_balances=account.allow_negative_balances,
        maker_fee_rate=dec(account.maker_fee_rate),
        taker_fee_rate=dec(account.taker_fee_rate),
    )


def key_to_pb(key: ApiKeyRecord) -> admin_pb2.ApiKeyInfo:
    return admin_pb2.ApiKeyInfo(
        key_id=key.key_id,
        account_id=key.account_id,
        label=key.label,
        created_time_ns=key.created_time_ns,
        revoked_time_ns=key.revoked_time_ns,
    )


def instrument_from_pb(pb: Any) -> Instrument:
    violations: list[FieldViolation] = []
    values = {
        name: _decimal(getattr(pb, name), f"instrument.{name}", violations)
        for name in (
            "tick_size",
            "lot_size",
            "min_quantity",
            "min_notional",
            "maker_fee_rate",
            "taker_fee_rate",
        )
    }
    for name in ("maker_fee_rate", "taker_fee_rate"):
        rate = values[name]
        if rate is not None and not Decimal(0) <= rate < 1:
            violations.append(FieldViolation(f"instrument.{name}", f"must be in [0, 1), got {rate}"))
    for name in ("tick_size", "lot_size"):
        if values[name] is None and not any(v.field == f"instrument.{name}" for v in violations):
            violations.append(FieldViolation(f"instrument.{name}", "required"))
    if violations:
        raise InvalidRequestError(violations)
    tick, lot = values["tick_size"], values["lot_size"]
    assert tick is not None and lot is not None
    return Instrument(
        pb.symbol,
        pb.base_asset,
        pb.quote_asset,
        tick,
        lot,
        values["min_quantity"] or Decimal(0),
        values["min_notional"] or Decimal(0),
        pb.trading,
        values["maker_fee_rate"] or Decimal(0),
        values["taker_fee_rate"] or Decimal(0),
    )


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    """Translates AdminService requests to AdminActions calls; the operator is `caller()` (AdminGuard)."""

    def __init__(self, actions: AdminActions) -> None:
        self.actions = actions

    async def CreateAccount(
        self, request: admin_pb2.CreateAccountRequest, context: Context
    ) -> admin_pb2.CreateAccountResponse:
        account = await self.actions.create_account(
            caller(),
            request.account_id,
            request.name,
            limits_from_pb(request.risk_limits),
            allow_negative_balances=request.allow_negative_balances,
        )
        return admin_pb2.CreateAccountResponse(account=account_to_pb(account))

    async def ListAccounts(
        self, request: admin_pb2.ListAccountsRequest, context: Context
    ) -> admin_pb2.ListAccountsResponse:
        accounts = await self.actions.list_accounts()
        return admin_pb2.ListAccountsResponse(accounts=[account_to_pb(a) for a in accounts])

    async def IssueApiKey(
        self, request: admin_pb2.IssueApiKeyRequest, context: Context
    ) -> admin_pb2.IssueApiKeyResponse:
        key, secret = await self.actions.issue_api_key(caller(), request.account_id, request.label)
        return admin_pb2.IssueApiKeyResponse(key=key_to_pb(key), api_key=secret)

    async def RevokeApiKey(
        self, request: admin_pb2.RevokeApiKeyRequest, context: Context
    ) -> admin_pb2.RevokeApiKeyResponse:
        key = await self.actions.revoke_api_key(caller(), request.key_id, request.reason)
        return admin_pb2.RevokeApiKeyResponse(key=key_to_pb(key))

    async def RotateApiKey(
        self, request: admin_pb2.RotateApiKeyRequest, context: Context
    ) -> admin_pb2.RotateApiKeyResponse:
        revoked, new, secret = await self.actions.rotate_api_key(caller(), request.key_id, request.reason)
        return admin_pb2.RotateApiKeyResponse(revoked=key_to_pb(revoked), key=key_to_pb(new), api_key=secret)

    async def ListApiKeys(
        self, request: admin_pb2.ListApiKeysRequest, context: Context
    ) -> admin_pb2.ListApiKeysResponse:
        keys = await self.actions.list_api_keys(request.account_id)
        return admin_pb2.ListApiKeysResponse(keys=[key_to_pb(k) for k in keys])

    async def SetRiskLimits(
        self, request: admin_pb2.SetRiskLimitsRequest, context: Context
    ) -> admin_pb2.SetRiskLimitsResponse:
        account = await self.actions.set_risk_limits(
            caller(), request.account_id, limits_from_pb(request.risk_limits)
        )
        return admin_pb2.SetRiskLimitsResponse(account=account_to_pb(account))

    async def SetAccountFees(
        self, request: admin_pb2.SetAccountFeesRequest, context: Context
    ) -> admin_pb2.SetAccountFeesResponse:
        violations: list[FieldViolation] = []
        maker = _decimal(request.maker_fee_rate, "maker_fee_rate", violations)
        taker = _decimal(request.taker_fee_rate, "taker_fee_rate", violations)
        if violations:
            raise InvalidRequestError(violations)
        account = await self.actions.set_account_fees(caller(), request.account_id, maker, taker)
        return admin_pb2.SetAccountFeesResponse(account=account_to_pb(account))

    async def UpsertInstrument(
        self, request: admin_pb2.UpsertInstrumentRequest, context: Context
    ) -> admin_pb2.UpsertInstrumentResponse:
        instrument, created = await self.actions.upsert_instrument(
            caller(), instrument_from_pb(request.instrument)
        )
        return admin_pb2.UpsertInstrumentResponse(instrument=instrument_to_pb(instrument), created=created)

    async def SetTradingState(
        self, request: admin_pb2.SetTradingStateRequest, context: Context
    ) -> admin_pb2.SetTradingStateResponse:
        state = STATES_BY_PB.get(request.trading_state)
        if state is None:
            raise InvalidRequestError(
                [FieldViolation("trading_state", "one of ACTIVE, REDUCING, HALTED is required")]
            )
        account, cancelled = await self.actions.set_trading_state(
            caller(),
            request.account_id,
            state,
            request.reason,
            cancel_working=request.cancel_working_orders,
        )
        return admin_pb2.SetTradingStateResponse(
            account=account_to_pb(account), cancelled_order_ids=cancelled
        )

    async def SetPlatformHalt(
        self, request: admin_pb2.SetPlatformHaltRequest, context: Context
    ) -> admin_pb2.SetPlatformHaltResponse:
        halted, reason = await self.actions.set_platform_halt(caller(), request.halted, request.reason)
        return admin_pb2.SetPlatformHaltResponse(halted=halted, reason=reason)

    async def CancelOrder(
        self, request: admin_pb2.AdminServiceCancelOrderRequest, context: Context
    ) -> admin_pb2.AdminServiceCancelOrderResponse:
        order = await self.actions.cancel_order(
            caller(), request.account_id, request.order_id, request.reason
        )
        return admin_pb2.AdminServiceCancelOrderResponse(order=order_to_pb(order))

    async def PostLedgerEntry(
        self, request: admin_pb2.PostLedgerEntryRequest, context: Context
    ) -> admin_pb2.PostLedgerEntryResponse:
        violations: list[FieldViolation] = []
        entry_type = ENTRY_TYPES.get(request.type)
        if entry_type is None:
            violations.append(FieldViolation("type", "DEPOSIT, WITHDRAWAL or ADJUSTMENT"))
        amount = _decimal(request.amount, "amount", violations)
        if amount is None and not violations:
            violations.append(FieldViolation("amount", "required"))
        if violations:
            raise InvalidRequestError(violations)
        assert entry_type is not None and amount is not None
        posted = await self.actions.post_ledger_entry(
            caller(),
            request.account_id,
            asset=request.asset,
            entry_type=entry_type,
            amount=amount,
            reason=request.reason,
            idempotency_key=request.idempotency_key,
        )
        return admin_pb2.PostLedgerEntryResponse(
            entry_id=posted.entry.entry_id, balance=dec(posted.balance_after), created=posted.created
        )

    async def ListAuditLog(
        self, request: admin_pb2.ListAuditLogRequest, context: Context
    ) -> admin_pb2.ListAuditLogResponse:
        rows = await self.actions.audit_log(request.account_id, request.limit, request.before_audit_id)
        return admin_pb2.ListAuditLogResponse(records=[audit_to_pb(r) for r in rows])
