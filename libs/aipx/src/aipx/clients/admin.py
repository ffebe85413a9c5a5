"""AdminClient: a typed asyncio client of the OMS admin service (aipx.v1.AdminService); every call sends the
operator token in `x-admin-token` and carries a default deadline."""

from __future__ import annotations

import uuid
from decimal import Decimal

import grpc

from aipx.clients.base import GrpcClient
from aipx.money import to_pb
from aipx.v1 import admin_pb2, admin_pb2_grpc, common_pb2, orders_pb2

ADMIN_TOKEN_HEADER = "x-admin-token"


class AdminClient(GrpcClient["admin_pb2_grpc.AdminServiceAsyncStub"]):
    """See the module docstring. The channel is opened on first use."""

    credential_header = ADMIN_TOKEN_HEADER

    def __init__(
        self,
        target: str,
        token: str,
        *,
        timeout_s: float = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        super().__init__(target, token, timeout_s=timeout_s, credentials=credentials)

    def _new_stub(self, channel: grpc.aio.Channel) -> admin_pb2_grpc.AdminServiceAsyncStub:
        return admin_pb2_grpc.AdminServiceStub(channel)

    async def create_account(
        self,
        account_id: str,
        name: str = "",
        *,
        risk_limits: admin_pb2.RiskLimits | None = None,
        allow_negative_balances: bool = False,
    ) -> admin_pb2.AccountSummary:
        response: admin_pb2.CreateAccountResponse = await self.stub.CreateAccount(
            admin_pb2.CreateAccountRequest(
                account_id=account_id,
                name=name,
                risk_limits=risk_limits or admin_pb2.RiskLimits(),
                allow_negative_balances=allow_negative_balances,
            ),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return response.account

    async def list_accounts(self) -> list[admin_pb2.AccountSummary]:
        response = await self.stub.ListAccounts(
            admin_pb2.ListAccountsRequest(), metadata=self._metadata, timeout=self.timeout_s
        )
        return list(response.accounts)

    async def issue_api_key(self, account_id: str, label: str = "") -> admin_pb2.IssueApiKeyResponse:
        """A new key for the account; `api_key` of the answer is the secret, shown this once."""
        response: admin_pb2.IssueApiKeyResponse = await self.stub.IssueApiKey(
            admin_pb2.IssueApiKeyRequest(account_id=account_id, label=label),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return response

    async def revoke_api_key(self, key_id: str, reason: str = "") -> admin_pb2.ApiKeyInfo:
        response = await self.stub.RevokeApiKey(
            admin_pb2.RevokeApiKeyRequest(key_id=key_id, reason=reason),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return response.key

    async def rotate_api_key(self, key_id: str, reason: str = "") -> admin_pb2.RotateApiKeyResponse:
        response: admin_pb2.RotateApiKeyResponse = await self.stub.RotateApiKey(
            admin_pb2.RotateApiKeyRequest(key_id=key_id, reason=reason),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return response

    async def list_api_keys(self, account_id: str = "") -> list[admin_pb2.ApiKeyInfo]:
        response = await self.stub.ListApiKeys(
            admin_pb2.ListApiKeysRequest(account_id=account_id),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return list(response.keys)

    async def set_account_fees(
        self, account_id: str, maker_fee_rate: str = "", taker_fee_rate: str = ""
    ) -> admin_pb2.AccountSummary:
        """Override an account's maker/taker fee rates ("" = its instruments' rates)."""
        response = await self.stub.SetAccountFees(
            admin_pb2.SetAccountFeesRequest(
                account_id=account_id,
                maker_fee_rate=common_pb2.Decimal(value=maker_fee_rate),
                taker_fee_rate=common_pb2.Decimal(value=taker_fee_rate),
            ),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return response.account

    async def set_risk_limits(
        self, account_id: str, risk_limits: admin_pb2.RiskLimits
    ) -> admin_pb2.AccountSummary:
        response = await self.stub.SetRiskLimits(
            admin_pb2.SetRiskLimitsRequest(account_id=account_id, risk_limits=risk_limits),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return response.account

    async def upsert_instrument(
        self, instrument: orders_pb2.Instrument
    ) -> admin_pb2.UpsertInstrumentResponse:
        response: admin_pb2.UpsertInstrumentResponse = await self.stub.UpsertInstrument(
            admin_pb2.UpsertInstrumentRequest(instrument=instrument),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return response

    async def set_trading_state(
        self,
        account_id: str,
        state: admin_pb2.TradingState.ValueType,
        reason: str = "",
        *,
        cancel_working_orders: bool = False,
    ) -> admin_pb2.SetTradingStateResponse:
        response: admin_pb2.SetTradingStateResponse = await self.stub.SetTradingState(
            admin_pb2.SetTradingStateRequest(
                account_id=account_id,
                trading_state=state,
                reason=reason,
                cancel_working_orders=cancel_working_orders,
            ),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return response

    async def set_platform_halt(self, halted: bool, reason: str = "") -> admin_pb2.SetPlatformHaltResponse:
        response: admin_pb2.SetPlatformHaltResponse = await self.stub.SetPlatformHalt(
            admin_pb2.SetPlatformHaltRequest(halted=halted, reason=reason),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return response

    async def cancel_order(self, account_id: str, order_id: str, reason: str = "") -> orders_pb2.Order:
        response = await self.stub.CancelOrder(
            admin_pb2.AdminServiceCancelOrderRequest(account_id=account_id, order_id=order_id, reason=reason),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return response.order

    async def post_ledger_entry(
        self,
        account_id: str,
        asset: str,
        entry_type: admin_pb2.LedgerEntryType.ValueType,
        amount: Decimal | str,
        reason: str,
        *,
        idempotency_key: str | None = None,
    ) -> admin_pb2.PostLedgerEntryResponse:
        """A deposit, withdrawal (positive amounts) or adjustment (signed); idempotent on the key."""
        response: admin_pb2.PostLedgerEntryResponse = await self.stub.PostLedgerEntry(
            admin_pb2.PostLedgerEntryRequest(
                account_id=account_id,
                asset=asset,
                type=entry_type,
                amount=to_pb(amount),
                reason=reason,
                idempotency_key=idempotency_key or uuid.uuid4().hex,
            ),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return response

    async def audit_log(
        self, account_id: str = "", *, limit: int = 0, before_audit_id: int = 0
    ) -> list[admin_pb2.AuditRecord]:
        response = await self.stub.ListAuditLog(
            admin_pb2.ListAuditLogRequest(
                account_id=account_id, limit=limit, before_audit_id=before_audit_id
            ),
            metadata=self._metadata,
            timeout=self.timeout_s,
        )
        return list(response.records)
