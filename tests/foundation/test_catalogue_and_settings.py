"""The topic catalogue, the function manifest and the settings are one source of truth, validated."""

from __future__ import annotations

import pytest
from aipx import functions, topics
from aipx.settings import KafkaSettings, S3Settings
from pydantic import ValidationError


def test_catalogue_has_the_platform_topics_with_dead_letter_topics() -> None:
    cat = topics.catalogue()
    for name in (
        topics.MARKET_DATA_RAW,
        topics.TRADING_SIGNALS,
        topics.TRADING_DECISIONS,
        topics.ORDER_EVENTS,
        topics.ADMIN_EVENTS,
    ):
        spec = cat.get(name)
        assert spec.payload.startswith("aipx.v1.")
        assert cat.dlq_for(name).is_dlq
        assert cat.dlq_for(name).name == f"{name}.dlq"
    assert cat.get(topics.MARKET_DATA_RAW).key_for(venue="binance", symbol="BTC-USDT") == b"binance:BTC-USDT"
    assert cat.get(topics.ORDER_EVENTS).key_for(account_id="acc-1") == b"acc-1"
    assert cat.get(topics.ADMIN_EVENTS).key_for(account_id="acc-1") == b"acc-1"


def test_catalogue_payloads_name_real_messages() -> None:
    from aipx import serde

    for spec in topics.catalogue().main_topics():
        assert serde.message_type(spec.payload).DESCRIPTOR.full_name == spec.payload


def test_unknown_topic_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown topic 'market-data'; known: market-data-raw"):
        topics.catalogue().get("market-data")


def test_function_manifest_references_catalogue_topics() -> None:
    manifest = functions.manifest()
    names = {f.name for f in manifest.functions}
    assert names == {"strategy", "cognitive", "notification", "recorder"}
    groups = [s.consumer_group for f in manifest.functions for s in f.event_sources]
    assert len(groups) == len(set(groups)), "consumer groups must be unique per event source"


def test_settings_read_env_and_reject_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPX_KAFKA_BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("AIPX_KAFKA_LINGER_MS", "20")
    settings = KafkaSettings()
    assert settings.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert settings.linger_ms == 20

    monkeypatch.setenv("AIPX_KAFKA_BOOTSTRAP_SERVER", "typo:9092")
    with pytest.raises(ValidationError, match="unknown setting\\(s\\) AIPX_KAFKA_BOOTSTRAP_SERVER"):
        KafkaSettings()


def test_settings_validate_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPX_KAFKA_COMPRESSION_TYPE", "brotli")
    with pytest.raises(ValidationError, match="compression_type"):
        KafkaSettings()


def test_secrets_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPX_S3_SECRET_ACCESS_KEY", "very-secret")
    settings = S3Settings()
    assert "very-secret" not in repr(settings)
    assert settings.secret_access_key is not None
    assert settings.secret_access_key.get_secret_value() == "very-secret"


def test_msk_iam_auth_wires_a_token_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    from aipx.kafka import client_config
    from aipx.kafka.clients import MskIamTokenProvider

    monkeypatch.setenv("AIPX_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("AIPX_KAFKA_SASL_MECHANISM", "OAUTHBEARER")
    monkeypatch.setenv("AIPX_KAFKA_AWS_REGION", "eu-west-1")
    config = client_config(KafkaSettings(), client_id="t")
    assert config["sasl_mechanism"] == "OAUTHBEARER"
    provider = config["sasl_oauth_token_provider"]
    assert isinstance(provider, MskIamTokenProvider)
    assert provider.region == "eu-west-1"
    assert config["ssl_context"] is not None


def test_empty_s3_endpoint_means_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPX_S3_ENDPOINT_URL", "")
    assert S3Settings().endpoint_url is None
