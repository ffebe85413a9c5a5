"""The venue template works and shows the contract, and is not in the production registry."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from aipx_oms.domain.model import Order, OrderStatus, OrderType, Side, TimeInForce
from aipx_oms.sending import NEVER_RECEIVED, VenueSender
from aipx_oms.settings import OmsSettings
from aipx_oms.venues import _template
from aipx_oms.venues.base import ExecutionReport, ExecutionVenue, ReportKind
from aipx_oms.venues.market_data import MarketDataCache
from aipx_oms.venues.registry import VENUES, build_venues, check_venues


def order(order_id: str = "o-1") -> Order:
    return Order(
        order_id=order_id, account_id="a", client_order_id="c", symbol="BTC-USDT", side=Side.BUY,
        type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, quantity=Decimal(1), price=Decimal(100),
        stop_price=None, reduce_only=False, post_only=False, venue="template", status=OrderStatus.ACCEPTED,
        created_time_ns=1, updated_time_ns=1,
    )  # fmt: skip


def test_the_template_is_not_a_production_venue() -> None:
    assert "template" not in VENUES and set(VENUES) == {"paper", "binance"}
    with pytest.raises(ValueError, match="unknown venue 'template'"):
        OmsSettings(venues=("paper", "template"))
    settings = OmsSettings()
    registry = {**VENUES, "template": _template.PLUGIN}
    assert check_venues(settings, registry) == []
    built = build_venues(settings.model_copy(update={"venues": ("template",)}), MarketDataCache(), registry)
    venue: ExecutionVenue = built["template"]
    assert isinstance(venue, _template.TemplateVenue)


async def test_the_template_follows_the_venue_contract() -> None:
    reports: list[ExecutionReport] = []
    venue = _template.TemplateVenue()
    await venue.start(reports.append)
    await venue.submit(order())
    await venue.submit(order())  # a repeat: still one order at the venue
    assert list(venue.orders) == ["o-1"] and {r.kind for r in reports} == {ReportKind.ACKNOWLEDGED}
    assert await venue.query(order()) and not await venue.query(order("o-2"))
    assert await venue.reconcile([order(), order("o-2")]) == [order("o-2")]
    await venue.cancel(order())
    assert reports[-1].kind is ReportKind.CANCELED and venue.orders == {}
    await venue.stop()


async def test_an_unreachable_template_is_resolved_by_the_oms_asking_it() -> None:
    reports: list[ExecutionReport] = []
    venue = _template.TemplateVenue()
    settings = OmsSettings(venue_query_delay_s=0, venue_retry_max_s=0.01)
    sender = VenueSender(settings, {"template": venue}, _unused_store(), reports.append)
    await venue.start(reports.append)
    venue.reachable = False
    await sender.send(order())
    await asyncio.sleep(0.05)
    assert reports == [], "outcome unknown: no report yet, the order stays open"
    venue.reachable = True
    for _ in range(200):
        if reports:
            break
        await asyncio.sleep(0.01)
    assert [(r.kind, r.message) for r in reports] == [(ReportKind.REJECTED, NEVER_RECEIVED)]
    await sender.stop()


def _unused_store() -> Any:
    return None  # VenueSender.send never reads the store
