"""The topic bootstrap function (infrastructure/lambda/topic_bootstrap): checks Terraform's topic set against
the packaged catalogue, creates missing topics with aipx.kafka.admin, verifies the result on a real broker."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

import pytest
from aipx.settings import KafkaSettings
from aipx.topics import catalogue

from tests.infrastructure.conftest import INFRA


@pytest.fixture(scope="module")
def bootstrap() -> ModuleType:
    path = INFRA / "lambda" / "topic_bootstrap" / "aipx_topic_bootstrap.py"
    spec = importlib.util.spec_from_file_location("aipx_topic_bootstrap", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["aipx_topic_bootstrap"] = module
    spec.loader.exec_module(module)
    return module


def _event() -> dict[str, Any]:
    """What Terraform sends: every catalogue topic with its partitions, replication and configs."""
    return {
        "topics": {
            t.name: {"partitions": t.partitions, "replication_factor": t.replication_factor, "config": {}}
            for t in catalogue().topics
        }
    }


def test_malformed_events_are_rejected_with_a_clear_error(bootstrap: ModuleType) -> None:
    with pytest.raises(bootstrap.TopicBootstrapError, match="event must be"):
        bootstrap.expected_topics({})
    with pytest.raises(bootstrap.TopicBootstrapError, match="'partitions' must be a positive integer"):
        bootstrap.expected_topics({"topics": {"market-data-raw": {"partitions": "12"}}})


def test_catalogue_disagreements_are_listed(bootstrap: ModuleType) -> None:
    expected = bootstrap.expected_topics(_event())
    assert bootstrap.catalogue_mismatches(expected, catalogue()) == []
    expected["market-data-raw"] = 24
    expected["brand-new"] = 1
    del expected["order-events.dlq"]
    problems = bootstrap.catalogue_mismatches(expected, catalogue())
    assert any(
        "brand-new: in Terraform's topics.yaml but not in the packaged catalogue" in p for p in problems
    )
    assert any("order-events.dlq: in the packaged catalogue but not in Terraform's" in p for p in problems)
    assert any(
        "market-data-raw: Terraform expects 24 partitions, the packaged catalogue 12" in p for p in problems
    )


def test_cluster_disagreements_are_listed(bootstrap: ModuleType) -> None:
    problems = bootstrap.cluster_mismatches({"a": 3, "b": 6, "c": 1}, {"a": 3, "b": 12})
    assert problems == [
        "b: 12 partitions on the cluster, the catalogue says 6",
        "c: missing on the cluster after the bootstrap",
    ]


async def test_mismatch_fails_before_touching_the_cluster(bootstrap: ModuleType) -> None:
    event = _event()
    event["topics"]["market-data-raw"]["partitions"] = 1
    unreachable = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    with pytest.raises(bootstrap.TopicBootstrapError, match="catalogue mismatch"):
        await bootstrap.bootstrap(event, unreachable)


@pytest.mark.integration
async def test_bootstrap_creates_and_verifies_the_catalogue_on_a_real_broker(
    bootstrap: ModuleType, kafka_bootstrap: str
) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    result = await bootstrap.bootstrap(_event(), settings, replication_factor=1)
    assert result["present"] == sorted(catalogue().names())
    again = await bootstrap.bootstrap(_event(), settings, replication_factor=1)
    assert again["created"] == []  # idempotent
