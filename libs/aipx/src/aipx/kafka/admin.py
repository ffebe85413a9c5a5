"""Topic bootstrap: create every catalogue topic (and its DLQ) idempotently, and bring the configs of topics
that already exist to what the catalogue says. CLI: `aipx-topics`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

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
    """Create the catalogue's topics that do not exist yet, and give those that exist the catalogue's configs
    where they differ (`reconcile_configs`); returns the names created (idempotent)."""
    settings = settings or KafkaSettings()
    config = client_config(settings, client_id="topic-bootstrap")
    if bootstrap_servers:
        config["bootstrap_servers"] = bootstrap_servers
    config.pop("client_id", None)
    admin = AIOKafkaAdminClient(**config)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        requests = [new_topic(spec, replication_factor) for spec in (topics or catalogue()).topics]
        wanted = [r for r in requests if r.name not in existing]
        for name in await reconcile_configs(admin, [r for r in requests if r.name in existing]):
            log.info("topic %s: configs set to the catalogue's", name)
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


async def reconcile_configs(admin: AIOKafkaAdminClient, topics: list[NewTopic]) -> list[str]:
    """Give existing topics the configs of their creation requests where any differs; returns their names.

    The whole set is written (AlterConfigs replaces a topic's dynamic configs), so a config the catalogue no
    longer sets goes back to the broker default; partition counts are not touched.
    """
    if not topics:
        return []
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, t.name, dict.fromkeys(t.topic_configs)) for t in topics
    ]
    current: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for error_code, message, _, name, entries, *_ in response.resources:
            if error_code:
                raise for_code(error_code)(f"describe configs of {name}: {message}")
            current[name] = {entry[0]: entry[1] for entry in entries}
    changed = [
        t
        for t in topics
        if any(current.get(t.name, {}).get(key) != str(value) for key, value in t.topic_configs.items())
    ]
    if changed:
        alter = [ConfigResource(ConfigResourceType.TOPIC, t.name, dict(t.topic_configs)) for t in changed]
        for response in await admin.alter_configs(alter):
            for error_code, message, _, name, *_ in response.resources:
                if error_code:
                    raise for_code(error_code)(f"alter configs of {name}: {message}")
    return [t.name for t in changed]


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
