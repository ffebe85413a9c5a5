"""The one place venues are registered: name -> factory."""

from __future__ import annotations

from aipx_oms.settings import OmsSettings
from aipx_oms.venues.base import ExecutionVenue
from aipx_oms.venues.binance.execution import BinanceSpotVenue
from aipx_oms.venues.binance.http import BinanceRestClient
from aipx_oms.venues.market_data import MarketDataCache
from aipx_oms.venues.paper import PaperVenue


def build_venues(settings: OmsSettings, market: MarketDataCache) -> dict[str, ExecutionVenue]:
    """The enabled venues (AIPX_OMS_VENUES), configured from the settings."""
    venues: dict[str, ExecutionVenue] = {}
    for name in settings.venues:
        if name == "paper":
            venues[name] = PaperVenue(market, fee_rate=settings.paper_fee_rate)
        elif name == "binance":
            assert settings.binance_api_key is not None and settings.binance_api_secret is not None
            rest = BinanceRestClient(
                settings.binance_base_url,
                settings.binance_api_key.get_secret_value(),
                settings.binance_api_secret.get_secret_value(),
                recv_window_ms=settings.binance_recv_window_ms,
                timeout_s=settings.binance_request_timeout_s,
            )
            venues[name] = BinanceSpotVenue(rest, settings.binance_ws_url)
    return venues
