"""AdminGuard: the admin service's credential scope. Every call carries an operator token in `x-admin-token`;
an account's `x-api-key` is never accepted (UNAUTHENTICATED, even when it is valid). A source that keeps
failing is refused for a while (RESOURCE_EXHAUSTED) without a lookup. Logging, error mapping and metrics are
the OMS RequestGuard's."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import grpc

from aipx_oms.auth import ApiKeyAuthenticator, TooManyFailuresError, credential_hash
from aipx_oms.domain.ledger import InsufficientBalanceError, InvalidEntryError
from aipx_oms.errors import UnknownAccountError
from aipx_oms.servicer import API_KEY_HEADER, RequestGuard
from aipx_oms.store.admin import (
    AdminConflictError,
    AdminNotFoundError,
    ApiKeyConflictError,
    operator_for_token,
)
from aipx_oms.store.postgres import OmsStore

ADMIN_TOKEN_HEADER = "x-admin-token"


def operator_authenticator(
    store: OmsStore,
    env_tokens: str | None,
    *,
    failures_per_minute: float,
    lookups_per_s: float,
) -> ApiKeyAuthenticator:
    """Operator tokens from AIPX_OMS_ADMIN_TOKENS ({"<operator>": "<hex sha256>"}) and the operator_tokens
    table, cached and invalidated like API keys."""
    static: dict[bytes, str] = {}
    if env_tokens:
        parsed = json.loads(env_tokens)
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in parsed.items()
        ):
            raise ValueError(
                'AIPX_OMS_ADMIN_TOKENS must be a JSON object {"<operator>": "<hex SHA-256 of the token>"}'
            )
        static = {bytes.fromhex(digest): operator for operator, digest in parsed.items()}

    async def lookup(token: str) -> str | None:
        digest = credential_hash(token)
        operator = static.get(digest)
        if operator is not None:
            return operator
        async with store.pool.acquire() as conn:
            return await operator_for_token(conn, digest)

    return ApiKeyAuthenticator(lookup, failures_per_minute=failures_per_minute, lookups_per_s=lookups_per_s)


class AdminGuard(RequestGuard):
    """RequestGuard with the operator credential scope; `caller()` is the operator's name."""

    async def authenticate(
        self, metadata: Mapping[str, str], context: grpc.aio.ServicerContext[Any, Any]
    ) -> str:
        token = metadata.get(ADMIN_TOKEN_HEADER, "")
        if not token:
            detail = (
                "an account API key cannot call the admin service"
                if metadata.get(API_KEY_HEADER)
                else f"missing operator token (metadata {ADMIN_TOKEN_HEADER!r})"
            )
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, detail)
            raise AssertionError("abort returned")
        try:
            operator = await self.auth.authenticate(token, context.peer())
        except TooManyFailuresError as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{exc}; retry in a minute")
            raise AssertionError("abort returned") from exc
        if operator is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked operator token")
            raise AssertionError("abort returned")
        return operator

    @staticmethod
    async def _fail(exc: BaseException, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
        mapped = admin_error(exc)
        if mapped is None:
            await RequestGuard._fail(exc, context, method)
        else:
            await context.abort(*mapped)


def admin_error(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status of the admin use cases' own errors (the OMS errors are mapped by RequestGuard)."""
    if isinstance(exc, AdminNotFoundError):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, AdminConflictError):
        return grpc.StatusCode.ALREADY_EXISTS, str(exc)
    if isinstance(exc, ApiKeyConflictError | InsufficientBalanceError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, InvalidEntryError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, UnknownAccountError):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    return None
