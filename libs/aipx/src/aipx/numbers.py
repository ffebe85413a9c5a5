"""The one strict integer and timestamp parser used at every boundary (decimals: `aipx.money.parse_decimal`).

Venue frames, Kafka headers, gRPC requests and settings all carry integers that end up in a protobuf int64, a
PostgreSQL bigint or a nanosecond timestamp. A value outside that range must be refused where it enters,
with the field named, not crash or stall whatever reads it later.
"""

from __future__ import annotations

import re
from typing import Final

INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)
UINT64_MAX: Final = 2**64 - 1
MAX_EPOCH_MS: Final = INT64_MAX // 1_000_000
"""Largest epoch-milliseconds value whose nanoseconds still fit an int64 (year 2262)."""
MAX_EPOCH_US: Final = INT64_MAX // 1_000

_INT_TEXT = re.compile(r"[+-]?[0-9]{1,20}", re.ASCII)


class InvalidNumberError(ValueError):
    """A number at a boundary is malformed or out of range; `field` names where it was found."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def parse_int(value: object, *, field: str, minimum: int = INT64_MIN, maximum: int = INT64_MAX) -> int:
    """An int (never a bool or float) or a str of <= 20 ASCII digits (optional sign) in [minimum, maximum]."""
    if isinstance(value, bool):
        raise InvalidNumberError(field, "must be an integer, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        if _INT_TEXT.fullmatch(value) is None:
            raise InvalidNumberError(field, f"{value[:40]!r} is not an integer (ASCII digits)")
        number = int(value)
    else:
        raise InvalidNumberError(field, f"must be an integer, got {type(value).__name__}")
    if not minimum <= number <= maximum:
        # Never str() a huge int: beyond 4,300 digits Python refuses (ValueError), and it is slow before that.
        shown = (
            str(number)
            if abs(number) < 10**40
            else f"a number of about {number.bit_length() * 0.30103:.0f} digits"
        )
        raise InvalidNumberError(field, f"{shown} is outside [{minimum}, {maximum}]")
    return number


def epoch_ms_to_ns(value: object, *, field: str) -> int:
    """Epoch milliseconds (non-negative, int64-safe once in nanoseconds) -> epoch nanoseconds."""
    return parse_int(value, field=field, minimum=0, maximum=MAX_EPOCH_MS) * 1_000_000


def epoch_us_to_ns(value: object, *, field: str) -> int:
    """Epoch microseconds (non-negative, int64-safe once in nanoseconds) -> epoch nanoseconds."""
    return parse_int(value, field=field, minimum=0, maximum=MAX_EPOCH_US) * 1_000


def epoch_ns(value: object, *, field: str) -> int:
    """Epoch nanoseconds in [0, INT64_MAX] (an int64 timestamp field or header)."""
    return parse_int(value, field=field, minimum=0, maximum=INT64_MAX)
