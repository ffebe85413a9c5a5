"""Reconnect backoff, the REST rate limiter, settings validation, the venue registry and template."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aipx.kafka.clients import CachedKeyPartitioner
from aipx_ingestion.adapters.rest import WeightBudget
from aipx_ingestion.adapters.websocket import equal_jitter
from aipx_ingestion.domain.events import TradeEvent
from aipx_ingestion.domain.symbols import SymbolMap, split_canonical
from aipx_ingestion.service import build_adapter, connection_policy, weight_budget
from aipx_ingestion.settings import IngestionSettings
from aipx_ingestion.venues import VENUES, VenueConfig, venue_class
from aipx_ingestion.venues._template import TemplateFeed
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState
from tenacity.wait import wait_base


def _delay(wait: wait_base, attempt: int) -> float:
    state = RetryCallState(AsyncRetrying(), None, (), {})
    state.attempt_number = attempt
    return float(wait(state))


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    wait = equal_jitter(0.5, 8.0)
    delays = [_delay(wait, n) for n in range(1, 9)]
    for n, delay in enumerate(delays, 1):
        ceiling = min(8.0, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 8.0 and delays[-1] >= 4.0
    assert len({round(_delay(equal_jitter(1, 100), 5), 6) for _ in range(20)}) > 1  # jittered


def test_weight_budget_holds_requests_until_the_window_turns_over() -> None:
    budget = WeightBudget("X-MBX-USED-WEIGHT-1M", limit=6000, window_s=60.0, request_weight=50)
    assert budget.pause(5950, now=120.0) == 0.0  # the next request still fits
    assert budget.pause(5951, now=130.0) == pytest.approx(50.5)  # until 180 s, plus a margin
    assert budget.pause(9000, now=179.0) == pytest.approx(1.5)
    settings = IngestionSettings(snapshot_depth=1000)
    binance = weight_budget(build_adapter(settings, "binance"))
    assert binance is not None and binance.request_weight == 50 and binance.limit == 6000
    assert weight_budget(build_adapter(settings, "bybit")) is None


def test_symbols_must_be_canonical() -> None:
    assert split_canonical("BTC-USDT") == ("BTC", "USDT")
    for bad in ("BTCUSDT", "btc-usdt", "BTC-", "BTC-USDT-X"):
        with pytest.raises(ValueError, match="canonical"):
            split_canonical(bad)
    symbols = SymbolMap(["BTC-USDT"], lambda b, q: f"{b}{q}")
    assert symbols.venue("BTC-USDT") == "BTCUSDT" and symbols.canonical("BTCUSDT") == "BTC-USDT"
    assert symbols.canonical("ETHUSDT") is None


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPX_INGESTION_SYMBOLS", "BTC-USDT, ETH-USDT")
    monkeypatch.setenv("AIPX_INGESTION_VENUES", "binance")
    monkeypatch.setenv("AIPX_INGESTION_CHANNELS", '{"binance": ["aggTrade", "depth@100ms"]}')
    monkeypatch.setenv("AIPX_INGESTION_CONNECTION_LIFETIME_S", '{"binance": 3600}')
    settings = IngestionSettings()
    assert settings.symbols == ("BTC-USDT", "ETH-USDT") and settings.venues == ("binance",)
    adapter = build_adapter(settings, "binance")
    assert set(adapter.streams()) == {"btcusdt@aggTrade", "btcusdt@depth@100ms", "ethusdt@aggTrade",
                                      "ethusdt@depth@100ms"}  # fmt: skip
    assert connection_policy(settings, adapter).rotate_after_s == 3600 - settings.rotation_margin_s
    assert connection_policy(settings, build_adapter(settings, "bybit")).rotate_after_s is None


def test_default_lifetime_rotates_binance_before_24h() -> None:
    settings = IngestionSettings()
    rotate = connection_policy(settings, build_adapter(settings, "binance")).rotate_after_s
    assert rotate is not None and rotate < 24 * 3600


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("AIPX_INGESTION_VENUES", "binance,kraken", "unknown venue 'kraken'"),
        ("AIPX_INGESTION_VENUES", "template", "unknown venue 'template'; known: binance, bybit"),
        ("AIPX_INGESTION_SYMBOLS", "BTCUSDT", "not canonical"),
        ("AIPX_INGESTION_BUFER_SIZE", "10", "unknown setting"),
        ("AIPX_INGESTION_BUFFER_SIZE", "0", "greater than or equal to 1"),
    ],
)
def test_bad_settings_fail_loudly(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=message):
        IngestionSettings()


def test_registry_and_template() -> None:
    assert set(VENUES) == {"binance", "bybit"}  # the template is documentation, not a production venue
    with pytest.raises(ValueError, match="known: binance, bybit"):
        venue_class("kraken")
    feed = TemplateFeed(
        VenueConfig("ws://x", "", SymbolMap(["BTC-USDT"], TemplateFeed.venue_symbol), ("trades",))
    )
    assert feed.streams() == {"trades:BTC_USDT": "BTC_USDT"}
    frame = b'{"channel":"trades","symbol":"BTC_USDT","id":17,"price":"1.5","size":"2","side":"buy","ts":3}'
    (event,) = feed.parse(frame).events
    assert isinstance(event, TradeEvent) and event.sequence_id == 17 and event.exchange_time_ns == 3_000_000


def test_cached_key_partitioner_maps_keys_like_the_default() -> None:
    cached, default = CachedKeyPartitioner(max_keys=2), DefaultPartitioner()
    keys = [f"binance:{b}-USDT".encode() for b in ("BTC", "ETH", "SOL", "DOGE")] * 2
    partitions = list(range(12))
    assert [cached(k, partitions, partitions) for k in keys] == [
        default(k, partitions, partitions) for k in keys
    ]
    assert cached(None, partitions, [3]) == 3  # no key: spread over the available partitions
