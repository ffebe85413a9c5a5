"""Strict field access for venue JSON: every violation becomes a MalformedFrameError with a reason."""

from __future__ import annotations

import re
from typing import Any

from aipx.money import InvalidDecimalError, to_pb

from aipx_ingestion.domain.errors import MalformedFrameError
from aipx_ingestion.domain.events import Level

_PLAIN_DECIMAL = re.compile(r"\d{1,40}(?:\.\d{1,40})?")


def decimal_text(value: Any, field: str) -> str:
    """A non-negative decimal number given as text, returned in canonical positional form."""
    if not isinstance(value, str):
        raise MalformedFrameError(
            "bad_decimal", f"{field} must be a decimal string, got {type(value).__name__}"
        )
    if _PLAIN_DECIMAL.fullmatch(value):
        return value
    try:
        canonical = to_pb(value).value
    except (InvalidDecimalError, ValueError, TypeError):
        raise MalformedFrameError("bad_decimal", f"{field}={value[:40]!r} is not a decimal number") from None
    if canonical.startswith("-"):
        raise MalformedFrameError("bad_decimal", f"{field}={value[:40]!r} is negative")
    return canonical


def integer(value: Any, field: str) -> int:
    """A non-negative integer (JSON number, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedFrameError("bad_integer", f"{field} must be a non-negative integer, got {value!r:.40}")
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
    """Epoch milliseconds -> epoch nanoseconds."""
    return integer(value, field) * 1_000_000
