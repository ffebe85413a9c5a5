"""Exact decimals across the wire: aipx.v1.Decimal <-> decimal.Decimal. Binary floats never carry money."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from aipx.v1.common_pb2 import Decimal as PbDecimal

# Scale of derived prices (volume-weighted averages): 12 decimal places, far below any venue's tick, and
# within what the data lake stores exactly (decimal128(38, 18)). Quotients never carry the 28-digit noise of
# Decimal's default context into positions, PnL or events.
AVERAGE_QUANTUM = Decimal("1e-12")


def weighted_average(value: Decimal, quantity: Decimal) -> Decimal:
    """value / quantity, half-even to AVERAGE_QUANTUM, trailing zeros dropped (1499.5, not 1499.500…)."""
    return (value / quantity).quantize(AVERAGE_QUANTUM, rounding=ROUND_HALF_EVEN).normalize()


class InvalidDecimalError(ValueError):
    """A Decimal field holds something that is not a finite base-10 number."""


def parse_decimal(text: str, *, field: str = "value") -> Decimal:
    """Parse a canonical decimal string; rejects NaN, infinities, exponents that overflow and garbage."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError) as exc:
        raise InvalidDecimalError(f"{field}: {text!r} is not a decimal number") from exc
    if not value.is_finite():
        raise InvalidDecimalError(f"{field}: {text!r} is not finite")
    return value


def to_pb(value: Decimal | str | int) -> PbDecimal:
    """Wrap an exact value as aipx.v1.Decimal (canonical string, no exponent)."""
    if isinstance(value, float):  # defensive: money must never pass through a binary float
        raise TypeError("binary floats cannot carry money; pass a Decimal or a string")
    d = value if isinstance(value, Decimal) else parse_decimal(str(value))
    return PbDecimal(value=format_decimal(d))


def from_pb(pb: PbDecimal, *, field: str = "value") -> Decimal | None:
    """aipx.v1.Decimal -> Decimal, or None when unset (empty string)."""
    if not pb.value:
        return None
    return parse_decimal(pb.value, field=field)


def require(pb: PbDecimal, *, field: str) -> Decimal:
    """aipx.v1.Decimal -> Decimal; InvalidDecimalError naming the field when unset."""
    value = from_pb(pb, field=field)
    if value is None:
        raise InvalidDecimalError(f"{field}: required")
    return value


def format_decimal(value: Decimal) -> str:
    """Plain positional notation ('0.00001', never '1E-5'); trailing zeros kept as given."""
    if not value.is_finite():
        raise InvalidDecimalError(f"{value!r} is not finite")
    return format(value, "f")
