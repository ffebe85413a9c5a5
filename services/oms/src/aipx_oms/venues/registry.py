"""The one place production venues are registered. A new venue: one module defining `PLUGIN` (copy
`venues/_template.py`), one line here. The template is not registered: it is not a venue to trade on."""

from __future__ import annotations

from collections.abc import Mapping

from aipx_oms.settings import OmsSettings
from aipx_oms.venues import paper
from aipx_oms.venues.base import ExecutionVenue, VenuePlugin
from aipx_oms.venues.binance import execution as binance
from aipx_oms.venues.market_data import MarketDataCache

VENUES: Mapping[str, VenuePlugin] = {plugin.name: plugin for plugin in (paper.PLUGIN, binance.PLUGIN)}


def check_venues(settings: OmsSettings, registry: Mapping[str, VenuePlugin] = VENUES) -> list[str]:
    """What is wrong with the venue settings: unknown venue names, each enabled venue's own check."""
    problems = [
        f"unknown venue {name!r} in AIPX_OMS_VENUES; known: {', '.join(sorted(registry))}"
        for name in settings.venues
        if name not in registry
    ]
    for name in settings.venues:
        plugin = registry.get(name)
        problem = plugin.check(settings) if plugin is not None else None
        if problem:
            problems.append(problem)
    return problems


def build_venues(
    settings: OmsSettings, market: MarketDataCache, registry: Mapping[str, VenuePlugin] = VENUES
) -> dict[str, ExecutionVenue]:
    """The enabled venues (AIPX_OMS_VENUES), configured from the settings."""
    problems = check_venues(settings, registry)
    if problems:
        raise ValueError("; ".join(problems))
    return {name: registry[name].build(settings, market) for name in settings.venues}
