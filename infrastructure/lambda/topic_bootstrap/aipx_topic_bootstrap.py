"""Topic bootstrap function: creates the topic catalogue on MSK when Terraform invokes it.

Terraform (modules/kafka_topics) reads topics.yaml and invokes this function with the topic set it expects:
``{"topics": {"<name>": {"partitions": 12, "replication_factor": 3, "config": {...}}, ...}}``.
The function runs the project's own bootstrap (`aipx.kafka.admin.ensure_topics`, the code behind
`aipx-topics`) against the cluster in AIPX_KAFKA_BOOTSTRAP_SERVERS, then checks that every expected topic
exists with the expected partition count. Any disagreement (Terraform's catalogue vs the packaged one, or a
topic on the cluster with other partitions) raises, which fails `terraform apply` with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aipx.kafka.admin import ensure_topics
from aipx.kafka.clients import client_config
from aipx.settings import KafkaSettings
from aipx.topics import TopicCatalogue, catalogue


class TopicBootstrapError(RuntimeError):
    """The cluster, the packaged catalogue and Terraform's topic set do not agree."""


def expected_topics(event: Mapping[str, Any]) -> dict[str, int]:
    """Topic name -> partitions, from the invocation event; a clear error if the event is malformed."""
    topics = event.get("topics")
    if not isinstance(topics, Mapping) or not topics:
        raise TopicBootstrapError("event must be {'topics': {name: {'partitions': n, ...}, ...}}")
    expected: dict[str, int] = {}
    for name, spec in topics.items():
        partitions = spec.get("partitions") if isinstance(spec, Mapping) else None
        if not isinstance(partitions, int) or partitions < 1:
            raise TopicBootstrapError(f"topic {name!r}: 'partitions' must be a positive integer")
        expected[str(name)] = partitions
    return expected


def catalogue_mismatches(expected: Mapping[str, int], packaged: TopicCatalogue) -> list[str]:
    """Differences between Terraform's topic set and the catalogue packaged with this function."""
    problems: list[str] = []
    packaged_names = set(packaged.names())
    for name in sorted(set(expected) - packaged_names):
        problems.append(f"{name}: in Terraform's topics.yaml but not in the packaged catalogue")
    for name in sorted(packaged_names - set(expected)):
        problems.append(f"{name}: in the packaged catalogue but not in Terraform's topics.yaml")
    for name in sorted(set(expected) & packaged_names):
        if packaged.get(name).partitions != expected[name]:
            problems.append(
                f"{name}: Terraform expects {expected[name]} partitions, "
                f"the packaged catalogue {packaged.get(name).partitions}"
            )
    return problems


def cluster_mismatches(expected: Mapping[str, int], on_cluster: Mapping[str, int]) -> list[str]:
    """Expected topics missing from the cluster or present with another partition count."""
    problems: list[str] = []
    for name, partitions in sorted(expected.items()):
        actual = on_cluster.get(name)
        if actual is None:
            problems.append(f"{name}: missing on the cluster after the bootstrap")
        elif actual != partitions:
            problems.append(f"{name}: {actual} partitions on the cluster, the catalogue says {partitions}")
    return problems


async def _partitions_on_cluster(settings: KafkaSettings, names: list[str]) -> dict[str, int]:
    config = client_config(settings, client_id="topic-bootstrap-check")
    config.pop("client_id", None)
    admin = AIOKafkaAdminClient(**config)
    await admin.start()
    try:
        present = set(await admin.list_topics())
        wanted = [n for n in names if n in present]
        described = await admin.describe_topics(wanted) if wanted else []
        return {str(t["topic"]): len(t["partitions"]) for t in described}
    finally:
        await admin.close()


async def bootstrap(
    event: Mapping[str, Any],
    settings: KafkaSettings | None = None,
    *,
    replication_factor: int | None = None,
) -> dict[str, Any]:
    """Create missing topics and verify the whole set; returns what was created and what is present.

    replication_factor None uses the catalogue's (cloud) replication; a single local broker needs 1.
    """
    expected = expected_topics(event)
    problems = catalogue_mismatches(expected, catalogue())
    if problems:
        raise TopicBootstrapError("catalogue mismatch (rebuild the package?): " + "; ".join(problems))
    settings = settings or KafkaSettings()
    created = await ensure_topics(settings=settings, replication_factor=replication_factor)
    on_cluster = await _partitions_on_cluster(settings, sorted(expected))
    problems = cluster_mismatches(expected, on_cluster)
    if problems:
        raise TopicBootstrapError("; ".join(problems))
    return {"created": sorted(created), "present": sorted(on_cluster)}


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """Lambda entry point (invoked synchronously by Terraform's aws_lambda_invocation)."""
    return asyncio.run(bootstrap(event))
