"""Request validation: structural problems and precision against the instrument, as field violations.

A request failing here is refused as INVALID_ARGUMENT and creates nothing; a request passing here may still be
DENIED by pre-trade risk (domain.risk), which is a business outcome recorded as an order.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow

from aipx_oms.domain.model import ZERO, Instrument, OrderRequest, OrderType, RejectReason

MAX_ID_LENGTH = 64
MAX_TAGS = 32
MAX_TAG_LENGTH = 256
_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:/-]+$")


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field: its path in the request message and why."""

    field: str
    description: str


# Exact remainders: the integer quotient of a decimal128(38, 18) value by a tick as fine as 1e-18 has up to
# 38 digits, more than the default context's 28 (which raises DivisionImpossible instead of answering).
_EXACT = Context(prec=80, traps=[InvalidOperation, DivisionByZero, Overflow])


def is_multiple(value: Decimal, increment: Decimal) -> bool:
    """True when value is an exact multiple of increment (a zero increment accepts anything).

    The operands are bounded by the boundary parser (aipx.money.parse_decimal: decimal128(38, 18)), so the
    remainder is computed exactly; an unbounded operand is refused rather than computed.
    """
    if increment == ZERO:
        return True
    if not (_bounded(value) and _bounded(increment)):
        return False
    return _EXACT.remainder(value, increment) == ZERO


def _bounded(value: Decimal) -> bool:
    exponent = value.as_tuple().exponent
    return value.is_finite() and isinstance(exponent, int) and exponent >= -40 and value.adjusted() < 40


def check_id(value: str, field: str, *, required: bool = True) -> list[FieldViolation]:
    """An idempotency key / client id: present (when required), bounded, printable ASCII."""
    if not value:
        return [FieldViolation(field, "required")] if required else []
    if len(value) > MAX_ID_LENGTH:
        return [FieldViolation(field, f"longer than {MAX_ID_LENGTH} characters")]
    if not _ID_PATTERN.match(value):
        return [FieldViolation(field, "may contain only letters, digits and . _ : / -")]
    return []


def check_tags(tags: Mapping[str, str], field: str) -> list[FieldViolation]:
    if len(tags) > MAX_TAGS:
        return [FieldViolation(field, f"more than {MAX_TAGS} tags")]
    for key, value in tags.items():
        if not key or len(key) > MAX_TAG_LENGTH or len(value) > MAX_TAG_LENGTH:
            return [
                FieldViolation(
                    field, f"tag keys must be 1..{MAX_TAG_LENGTH} and values 0..{MAX_TAG_LENGTH} long"
                )
            ]
    return []


def check_price(
    value: Decimal | None, instrument: Instrument | None, field: str, *, required: bool
) -> list[FieldViolation]:
    if value is None:
        return [FieldViolation(field, "required for this order type")] if required else []
    if value <= ZERO:
        return [FieldViolation(field, f"must be positive, got {value}")]
    if instrument is not None and not is_multiple(value, instrument.tick_size):
        return [
            FieldViolation(
                field,
                f"{RejectReason.INVALID_PRICE_INCREMENT}: {value} is not a multiple of the tick size "
                f"{instrument.tick_size}",
            )
        ]
    return []


def check_quantity(value: Decimal | None, instrument: Instrument | None, field: str) -> list[FieldViolation]:
    if value is None:
        return [FieldViolation(field, "required")]
    if value <= ZERO:
        return [FieldViolation(field, f"must be positive, got {value}")]
    if instrument is not None and not is_multiple(value, instrument.lot_size):
        return [
            FieldViolation(
                field,
                f"{RejectReason.INVALID_QUANTITY_INCREMENT}: {value} is not a multiple of the lot size "
                f"{instrument.lot_size}",
            )
        ]
    return []


def validate_order(
    request: OrderRequest,
    instruments: Mapping[str, Instrument],
    venues: Collection[str],
    prefix: str = "order.",
) -> list[FieldViolation]:
    """Every field violation of a new-order request (empty: the request is well-formed)."""
    violations = check_id(request.client_order_id, prefix + "client_order_id")
    instrument = instruments.get(request.symbol)
    if not request.symbol:
        violations.append(FieldViolation(prefix + "symbol", "required"))
    elif instrument is None:
        violations.append(
            FieldViolation(
                prefix + "symbol", f"{RejectReason.UNKNOWN_INSTRUMENT}: no instrument {request.symbol!r}"
            )
        )
    if request.side is None:
        violations.append(FieldViolation(prefix + "side", "required (BUY or SELL)"))
    if request.type is None:
        violations.append(FieldViolation(prefix + "type", "required (MARKET, LIMIT, STOP or STOP_LIMIT)"))
    if request.time_in_force is None:
        violations.append(FieldViolation(prefix + "time_in_force", "required (GTC, IOC, FOK or DAY)"))
    violations += check_quantity(request.quantity, instrument, prefix + "quantity")
    needs_price = request.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    if request.type in (OrderType.MARKET, OrderType.STOP) and request.price is not None:
        violations.append(FieldViolation(prefix + "price", "must be empty for MARKET and STOP orders"))
    else:
        violations += check_price(request.price, instrument, prefix + "price", required=needs_price)
    if request.type in (OrderType.STOP, OrderType.STOP_LIMIT):
        violations += check_price(request.stop_price, instrument, prefix + "stop_price", required=True)
    elif request.stop_price is not None:
        violations.append(FieldViolation(prefix + "stop_price", "only for STOP and STOP_LIMIT orders"))
    if request.post_only and request.type is not OrderType.LIMIT:
        violations.append(FieldViolation(prefix + "post_only", "only LIMIT orders can be post-only"))
    if request.venue and request.venue not in venues:
        violations.append(
            FieldViolation(
                prefix + "venue", f"unknown or disabled venue {request.venue!r}; enabled: {sorted(venues)}"
            )
        )
    violations += check_tags(request.tags, prefix + "tags")
    return violations
