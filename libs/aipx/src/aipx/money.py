"""Exact decimals across the wire: aipx.v1.Decimal <-> decimal.Decimal. Binary floats never carry money."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal

from aipx.numbers import InvalidNumberError
from aipx.v1.common_pb2 import Decimal as PbDecimal

# Scale of derived prices (volume-weighted averages): 12 decimal places, far below any venue's tick, and
# within what the data lake stores exactly (decimal128(38, 18)). Quotients never carry the 28-digit noise of
# Decimal's default context into positions, PnL or events.
AVERAGE_QUANTUM = Decimal("1e-12")


def weighted_average(value: Decimal, quantity: Decimal) -> Decimal:
    """value / quantity, half-even to AVERAGE_QUANTUM, trailing zeros dropped (1499.5, not 1499.500…)."""
    return (value / quantity).quantize(AVERAGE_QUANTUM, rounding=ROUND_HALF_EVEN).normalize()


class InvalidDecimalError(InvalidNumberError):
    """A Decimal field holds something that is not a bounded, finite base-10 number."""


# The bounds every decimal crossing a boundary must respect. They match the data lake's decimal128(38, 18):
# at most 20 digits before the point and 18 after it, so any accepted value is stored exactly and no
# consumer (pyarrow's decimal cast, PostgreSQL numeric, a venue) sees a number it cannot hold.
MAX_INTEGER_DIGITS = 20
MAX_FRACTION_DIGITS = 18
MAX_DECIMAL_TEXT = 64
"""Longest text accepted (sign, digits, point, exponent): a longer one is refused before it is parsed."""

# ASCII only (re.ASCII: no full-width or other Unicode digits), an exponent of at most four digits so that no
# text can ask for a billion-digit expansion. Fast path: plain positional text within the bounds.
_PLAIN = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,18})?", re.ASCII)
_SYNTAX = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?", re.ASCII)
_LONG_EXPONENT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][+-]?[0-9]{5,}", re.ASCII)
_MIN_EXPONENT = -MAX_FRACTION_DIGITS


def parse_decimal(text: object, *, field: str = "value") -> Decimal:
    """The one strict decimal parser used at every boundary (gRPC, venue frames, Kafka records, settings).

    Accepts a str of ASCII digits with an optional sign, point and exponent (at most four exponent digits, at
    most MAX_DECIMAL_TEXT characters). Refuses floats, bools and other types (binary floats never carry
    money), NaN and infinities, and values outside decimal128(38, 18): more than MAX_INTEGER_DIGITS integer
    digits, or a non-zero digit beyond MAX_FRACTION_DIGITS fractional places. Trailing zeros beyond that scale
    are dropped (value unchanged); otherwise the value keeps the scale it was given. Raises
    InvalidDecimalError naming the field.
    """
    if not isinstance(text, str):
        raise InvalidDecimalError(field, f"must be a decimal string, got {type(text).__name__}")
    if _PLAIN.fullmatch(text) is not None:
        return Decimal(text)
    if not text:
        raise InvalidDecimalError(field, "is empty")
    if len(text) > MAX_DECIMAL_TEXT:
        raise InvalidDecimalError(field, f"is {len(text)} characters long (at most {MAX_DECIMAL_TEXT})")
    if _SYNTAX.fullmatch(text) is None:
        if _LONG_EXPONENT.fullmatch(text) is not None:
            raise InvalidDecimalError(field, f"{text!r} has an exponent of more than 4 digits (out of range)")
        raise InvalidDecimalError(field, f"{text!r} is not a decimal number")
    value = Decimal(text)  # bounded: at most 64 characters and a 4-digit exponent
    if value.is_zero():
        zero_exponent = value.as_tuple().exponent
        return value if isinstance(zero_exponent, int) and _MIN_EXPONENT <= zero_exponent <= 0 else Decimal(0)
    if value.adjusted() >= MAX_INTEGER_DIGITS:
        raise InvalidDecimalError(field, f"{text!r} is out of range (>= 1e{MAX_INTEGER_DIGITS})")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite: the syntax admits no NaN or infinity
    if exponent < _MIN_EXPONENT:
        value = value.normalize()
        normalized = value.as_tuple().exponent
        assert isinstance(normalized, int)
        if normalized < _MIN_EXPONENT:
            raise InvalidDecimalError(
                field, f"{text!r} has more than {MAX_FRACTION_DIGITS} significant fractional digits"
            )
    return value


def is_plain_decimal(text: str) -> bool:
    """True for plain positional text within the bounds (e.g. '61234.50', '-0.001'): the hot paths' check."""
    return _PLAIN.fullmatch(text) is not None


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
        raise InvalidDecimalError(field, "required")
    return value


def format_decimal(value: Decimal) -> str:
    """Plain positional notation ('0.00001', never '1E-5'); trailing zeros kept as given."""
    if not value.is_finite():
        raise InvalidDecimalError("value", f"{value!r} is not finite")
    return format(value, "f")
