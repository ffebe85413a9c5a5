"""Strict field access for venue JSON: every violation becomes a MalformedFrameError with a reason."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from aipx.money import InvalidDecimalError, format_decimal, is_plain_decimal, parse_decimal
from aipx.numbers import INT64_MAX, MAX_EPOCH_MS

from aipx_ingestion.domain.errors import MalformedFrameError
from aipx_ingestion.domain.events import Level

_PLAIN = r"[0-9]{1,20}(?:\.[0-9]{1,18})?"
PlainDecimal = Annotated[str, msgspec.Meta(pattern=rf"^{_PLAIN}\Z")]
"""For the msgspec fast paths: the non-negative plain decimal text that decimal_text passes unchanged
(aipx.money's plain form without the sign), checked by msgspec while decoding. Anything else (exponents,
more digits, a sign) is refused there, and the general parser canonicalises or reports it."""

# The same check for the two or four decimals of a frame in one regex call, on the values joined by single
# spaces (no plain decimal contains one, so the join matches only if every value does): msgspec checks each
# pattern-constrained field in a call of its own (~0.45 us each), the highest-rate frames carry 2-4 of them.
PLAIN_PAIR = re.compile(rf"{_PLAIN} {_PLAIN}").fullmatch
PLAIN_QUAD = re.compile(rf"{_PLAIN} {_PLAIN} {_PLAIN} {_PLAIN}").fullmatch


class NotOnFastPath(Exception):
    """A frame a venue's msgspec fast path does not cover (depth, klines, replies, odd shapes)."""


# What sends a frame from a venue's fast path to its general parser (which parses it or says why not).
FAST_PATH_MISSES: tuple[type[Exception], ...] = (
    msgspec.ValidationError,
    msgspec.DecodeError,
    MalformedFrameError,
    NotOnFastPath,
)


def decimal_text(value: Any, field: str) -> str:
    """A non-negative decimal number given as text, returned in canonical positional form.

    The bounds are aipx.money's (decimal128(38, 18), ASCII digits, 4-digit exponents): plain text within them
    passes the fast check unchanged; anything else goes through the strict parser or is refused.
    """
    if not isinstance(value, str):
        raise MalformedFrameError(
            "bad_decimal", f"{field} must be a decimal string, got {type(value).__name__}"
        )
    if is_plain_decimal(value):
        if value[0] == "-":
            raise MalformedFrameError("bad_decimal", f"{field}={value[:40]!r} is negative")
        return value
    try:
        parsed = parse_decimal(value, field=field)
    except InvalidDecimalError as exc:
        raise MalformedFrameError("bad_decimal", f"{field}={value[:40]!r}: {exc.reason}") from None
    if parsed.is_signed() and not parsed.is_zero():
        raise MalformedFrameError("bad_decimal", f"{field}={value[:40]!r} is negative")
    return format_decimal(abs(parsed))


def integer(value: Any, field: str, maximum: int = INT64_MAX) -> int:
    """A non-negative integer (JSON number, not a bool) of at most `maximum` (default: int64's maximum)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedFrameError("bad_integer", f"{field} must be a non-negative integer, got {value!r:.40}")
    if value > maximum:
        raise MalformedFrameError("out_of_range", f"{field}={value!r:.40} is above {maximum}")
    return value


def text(value: Any, field: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise MalformedFrameError("bad_text", f"{field} must be a non-empty string")
    return value


def levels(value: Any, field: str) -> tuple[Level, ...]:
    """A list of [price, quantity] pairs."""
    if not isinstance(value, list):
        raise MalformedFrameError("bad_levels", f"{field} must be a list of [price, quantity]")
    out: list[Level] = []
    for level in value:
        if not isinstance(level, list) or len(level) < 2:
            raise MalformedFrameError("bad_levels", f"{field} has a level that is not [price, quantity]")
        out.append((decimal_text(level[0], f"{field}.price"), decimal_text(level[1], f"{field}.quantity")))
    return tuple(out)


def obj(value: Any, field: str) -> dict[str, Any]:
    """A JSON object."""
    if not isinstance(value, dict):
        raise MalformedFrameError("bad_object", f"{field} must be an object")
    return value


def ms_to_ns(value: Any, field: str) -> int:
    """Epoch milliseconds -> epoch nanoseconds, refused unless the nanoseconds fit an int64 (year 2262).

    Same bound as aipx.numbers.epoch_ms_to_ns, inlined for the hot path (a JSON number, never text).
    """
    return integer(value, field, MAX_EPOCH_MS) * 1_000_000
