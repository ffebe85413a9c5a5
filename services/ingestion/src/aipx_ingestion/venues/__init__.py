"""Venue feed adapters, registered in one place: `VENUES` maps a venue id to its FeedAdapter class.

`_template.TemplateFeed` shows what a new venue provides (with its template tests); it is documentation,
not a venue, so it is not registered here and `AIPX_INGESTION_VENUES=template` fails validation.
"""

from __future__ import annotations

from aipx_ingestion.venues.base import FeedAdapter, ParsedFrame, VenueConfig
from aipx_ingestion.venues.binance import BinanceFeed
from aipx_ingestion.venues.bybit import BybitFeed

VENUES: dict[str, type[FeedAdapter]] = {
    BinanceFeed.name: BinanceFeed,
    BybitFeed.name: BybitFeed,
}


def venue_class(name: str) -> type[FeedAdapter]:
    """The adapter class of venue `name`; ValueError naming the known venues otherwise."""
    try:
        return VENUES[name]
    except KeyError:
        raise ValueError(f"unknown venue {name!r}; known: {', '.join(sorted(VENUES))}") from None


__all__ = ["VENUES", "BinanceFeed", "BybitFeed", "FeedAdapter", "ParsedFrame", "VenueConfig", "venue_class"]
