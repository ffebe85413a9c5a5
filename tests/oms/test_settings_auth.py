"""OmsSettings validation (typos and half configurations fail loudly), the API key authenticator, and the
field an oversized request is blamed on."""

from __future__ import annotations

from pathlib import Path

import pytest
from aipx.v1 import oms_pb2, orders_pb2
from aipx_oms.auth import ApiKeyAuthenticator
from aipx_oms.servicer import largest_field
from aipx_oms.settings import OmsSettings
from aipx_oms.store.postgres import hash_api_key
from pydantic import ValidationError


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPX_OMS_GRPC_PORT", "6000")
    monkeypatch.setenv("AIPX_OMS_RISK_MAX_ORDER_NOTIONAL", "12345.67")
    settings = OmsSettings()
    assert settings.grpc_port == 6000 and str(settings.risk_max_order_notional) == "12345.67"
    assert settings.order_events_topic == "order-events" and settings.market_data_topic == "market-data-raw"
    assert settings.venues == ("paper",) and settings.api_key_source == "postgres"


def test_unknown_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPX_OMS_GRPC_PROT", "6000")
    with pytest.raises(ValidationError, match="AIPX_OMS_GRPC_PROT"):
        OmsSettings()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tls_cert_file": Path("/c.pem")}, "TLS_KEY_FILE"),
        ({"venues": ("paper",), "default_venue": "binance"}, "not enabled"),
        ({"api_key_source": "env"}, "AIPX_OMS_API_KEYS"),
        ({"venues": ("paper", "binance")}, "BINANCE_API_KEY"),
        ({"max_request_bytes": 2 << 20, "max_message_bytes": 1 << 20}, "MAX_REQUEST_BYTES"),
    ],
)
def test_half_configurations_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OmsSettings(**values)  # type: ignore[arg-type]


async def test_authenticator_from_json_and_cache() -> None:
    auth = ApiKeyAuthenticator.from_json('{"k1": "acct-1"}')
    assert await auth.account_for("k1") == "acct-1"
    assert await auth.account_for("other") is None
    with pytest.raises(ValueError, match="JSON object"):
        ApiKeyAuthenticator.from_json('["k1"]')
    calls = 0

    async def lookup(key: str) -> str | None:
        nonlocal calls
        calls += 1
        return "a" if key == "good" else None

    cached = ApiKeyAuthenticator(lookup, ttl_s=60)
    for _ in range(5):
        assert await cached.account_for("good") == "a"
        assert await cached.account_for("bad") is None
    assert calls == 2, "answers (also negative ones) are cached"


async def test_the_synchronous_fast_path_answers_only_fresh_cached_keys() -> None:
    async def lookup(key: str) -> str | None:
        return "a" if key == "good" else None

    auth = ApiKeyAuthenticator(lookup, ttl_s=60, fallback_ttl_s=0.0)
    assert auth.cached("good") is None, "nothing cached before the first lookup"
    assert await auth.account_for("good") == "a"
    assert auth.cached("good") is None, "without the invalidation feed an answer is fresh for fallback_ttl_s"
    auth.live = True
    assert auth.cached("good") == "a"
    assert await auth.account_for("bad") is None and auth.cached("bad") is None, (
        "unknown keys take the slow path"
    )
    auth.invalidate(hash_api_key("good"))
    assert auth.cached("good") is None, "a revoked key is never answered from the cache"


def test_an_oversized_request_names_its_largest_field() -> None:
    order = orders_pb2.OrderRequest(client_order_id="c" * 60, symbol="BTC-USDT", tags={"k": "v" * 5000})
    assert largest_field(oms_pb2.SubmitOrderRequest(order=order)) == "order.tags"
    order = orders_pb2.OrderRequest(client_order_id="c" * 9000, tags={"k": "v" * 50})
    assert largest_field(oms_pb2.SubmitOrderRequest(order=order)) == "order.client_order_id"
    assert largest_field(oms_pb2.CancelOrderRequest(order_id="o" * 100, idempotency_key="i")) == "order_id"
    assert largest_field(oms_pb2.SubmitOrderRequest()) == "request"
