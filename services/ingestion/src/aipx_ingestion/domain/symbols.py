"""Canonical instrument symbols ("BASE-QUOTE") and their venue spellings."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

_CANONICAL = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")


def split_canonical(symbol: str) -> tuple[str, str]:
    """("BTC", "USDT") from "BTC-USDT"; ValueError for anything not "BASE-QUOTE" in upper case."""
    if not _CANONICAL.match(symbol):
        raise ValueError(f"symbol {symbol!r} is not canonical 'BASE-QUOTE' (upper case letters/digits)")
    base, quote = symbol.split("-")
    return base, quote


class SymbolMap:
    """Two-way map between canonical symbols and one venue's symbols (built from configuration)."""

    def __init__(self, canonical: Iterable[str], to_venue: Callable[[str, str], str]) -> None:
        self._to_venue: dict[str, str] = {}
        self._to_canonical: dict[str, str] = {}
        for symbol in canonical:
            venue_symbol = to_venue(*split_canonical(symbol))
            self._to_venue[symbol] = venue_symbol
            self._to_canonical[venue_symbol] = symbol

    def venue(self, symbol: str) -> str:
        """The venue's symbol for canonical `symbol` (KeyError if not configured)."""
        return self._to_venue[symbol]

    def canonical(self, venue_symbol: str) -> str | None:
        """The canonical symbol of a venue symbol, or None if it is not one we subscribed to."""
        return self._to_canonical.get(venue_symbol)

    def canonical_symbols(self) -> list[str]:
        return list(self._to_venue)

    def venue_symbols(self) -> list[str]:
        return list(self._to_canonical)
