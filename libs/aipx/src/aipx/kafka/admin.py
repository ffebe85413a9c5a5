"""Topic bootstrap: create every catalogue topic (and its DLQ) idempotently. CLI: `aipx-topics`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from aipx.kafka.clients import client_config
from aipx.settings import KafkaSettings
from aipx.topics import TopicCatalogue, TopicSpec, catalogue

log = logging.getLogger(__name__)


def new_topic(spec: TopicSpec, replication_factor: int | None) -> NewTopic:
    """The admin request for one topic; min.insync.replicas is capped at the replication factor."""
    rf = replication_factor or spec.replication_factor
    configs = spec.topic_configs()
    if "min.insync.replicas" in configs:
        configs["min.insync.replicas"] = str(min(rf, int(configs["min.insync.replicas"])))
    return NewTopic(
        name=spec.name, num_partitions=spec.partitions, replication_factor=rf, topic_configs=configs
    )


async def ensure_topics(
    bootstrap_servers: str | None = None,
    *,
    replication_factor: int | None = 1,
    settings: KafkaSettings | None = None,
    topics: TopicCatalogue | None = None,
) -> list[str]:
    """Create the catalogue's topics that do not exist yet; returns the names created (idempotent)."""
    settings = settings or KafkaSettings()
    config = client_config(settings, client_id="topic-bootstrap")
    if bootstrap_servers:
        config["bootstrap_servers"] = bootstrap_servers
    config.pop("client_id", None)
    admin = AIOKafkaAdminClient(**config)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            new_topic(spec, replication_factor)
            for spec in (topics or catalogue()).topics
            if spec.name not in existing
        ]
        created: list[str] = []
        for request in wanted:
            try:
                await admin.create_topics([request])
                created.append(request.name)
            except TopicAlreadyExistsError:
                log.info("topic %s was created concurrently", request.name)
        return created
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    """`aipx-topics`: create the catalogue topics on the configured cluster."""
    parser = argparse.ArgumentParser(description="Create the AIPX topic catalogue's topics idempotently.")
    parser.add_argument("--bootstrap-servers", default=None, help="default: AIPX_KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument(
        "--replication-factor",
        type=int,
        default=None,
        help="override the catalogue's replication factor (1 for a single local broker); "
        "default: AIPX_KAFKA_REPLICATION_FACTOR or the catalogue",
    )
    args = parser.parse_args(argv)
    settings = KafkaSettings()
    rf = args.replication_factor or settings.replication_factor
    created = asyncio.run(ensure_topics(args.bootstrap_servers, replication_factor=rf, settings=settings))
    for name in created:
        print(f"created {name}")
    print(f"{len(catalogue().topics)} catalogue topics present ({len(created)} created)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
