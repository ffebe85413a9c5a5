"""Service-level errors; the servicer maps each to one gRPC status code."""

from __future__ import annotations

from collections.abc import Sequence

from aipx_oms.domain.model import RejectReason
from aipx_oms.domain.validation import FieldViolation


class InvalidRequestError(ValueError):
    """INVALID_ARGUMENT with field violations (google.rpc.BadRequest)."""

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


class OrderNotFoundError(LookupError):
    """NOT_FOUND: no such order for the caller's account (another account's order is not found either)."""


class RequestRejectedError(RuntimeError):
    """FAILED_PRECONDITION: a cancel/replace refused with a reason (e.g. ORDER_NOT_OPEN)."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class UnknownAccountError(PermissionError):
    """The API key maps to an account the database does not know."""


class IdempotencyConflictError(RuntimeError):
    """ALREADY_EXISTS: an idempotency key (client_order_id, cancel/replace key) reused for another request.

    `order_id` is the order the key already belongs to; `fields` the request fields that differ.
    """

    def __init__(self, key_field: str, key: str, order_id: str, fields: Sequence[str]) -> None:
        self.key_field = key_field
        self.key = key
        self.order_id = order_id
        self.fields = list(fields)
        super().__init__(
            f"{key_field} {key!r} already belongs to order {order_id} with different "
            + ", ".join(self.fields)
        )
