"""`aipx-ops`: dead-letter inspection and replay, S3 failure replay, decoded topic tail (see aipx_ops)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from aiokafka.errors import KafkaConnectionError, KafkaError
from aipx.settings import KafkaSettings, S3Settings
from aipx.topics import catalogue

from aipx_ops import io
from aipx_ops.ledger import DEFAULT_LEDGER, Ledger
from aipx_ops.records import (
    Filters,
    OpsError,
    Record,
    describe,
    event_id,
    parse_coordinates,
    parse_time,
    replay_headers,
    replay_target,
    summary_line,
)
from aipx_ops.s3_failures import parse_failure


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="aipx-ops", description="AIPX operator tools.")
    top.add_argument("--bootstrap-servers", help="Kafka (default: AIPX_KAFKA_BOOTSTRAP_SERVERS)")
    commands = top.add_subparsers(dest="command", required=True)

    dlq = commands.add_parser("dlq", help="dead-letter topics: list, show, replay; S3 failure records")
    actions = dlq.add_subparsers(dest="action", required=True)

    def filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--since", help="dead-lettered at or after (2h, 30m, 1d or ISO 8601)")
        p.add_argument("--until", help="dead-lettered at or before (same forms)")
        p.add_argument("--key", help="only records with this key")
        p.add_argument("--error-type", help="only this aipx-dlq-error-type (e.g. DecodeError)")

    listing = actions.add_parser("list", help="one line per dead-lettered record (or JSON lines)")
    listing.add_argument("dlq", help="the dead-letter topic, e.g. trading-signals.dlq")
    filters(listing)
    listing.add_argument("--json", action="store_true", help="JSON lines, decoded, every header")

    show = actions.add_parser("show", help="one record, decoded, with every header")
    show.add_argument("dlq")
    show.add_argument("at", metavar="PARTITION:OFFSET")

    replay = actions.add_parser("replay", help="send dead-lettered records back (idempotent)")
    replay.add_argument("dlq")
    filters(replay)
    replay.add_argument("--to", help="target topic (default: each record's aipx-dlq-original-topic)")

    s3 = actions.add_parser("replay-s3", help="replay the on-failure records AWS wrote to the S3 bucket")
    s3.add_argument("--bucket", required=True, help="the event source mappings' failure bucket")
    s3.add_argument("--prefix", default="", help="only objects under this key prefix")
    s3.add_argument("--to", help="target topic (default: each record's own topic)")

    for p in (replay, s3):
        p.add_argument("--dry-run", action="store_true", help="say what would be replayed, send nothing")
        p.add_argument("--ledger", type=Path, default=DEFAULT_LEDGER, help=f"default {DEFAULT_LEDGER}")
        p.add_argument("--force", action="store_true", help="replay even what the ledger says was replayed")

    tail = commands.add_parser("tail", help="decoded records of a topic as they arrive")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true", help="start with the records already there")
    tail.add_argument("--json", action="store_true", help="JSON lines with every header")
    tail.add_argument("--max", type=int, help="stop after this many records")
    return top


def _filters(args: argparse.Namespace) -> Filters:
    now = datetime.now(UTC)
    return Filters(
        since=parse_time(args.since, now=now) if args.since else None,
        until=parse_time(args.until, now=now) if args.until else None,
        key=args.key,
        error_type=args.error_type,
    )


def _json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, sort_keys=True, default=str) + "\n")


async def dlq_list(kafka: KafkaSettings, args: argparse.Namespace, out: TextIO) -> int:
    wanted = _filters(args)
    count = 0
    if not args.json:
        out.write("PARTITION:OFFSET\tDEAD-LETTERED\tKEY\tERROR-TYPE\tORIGIN\tERROR\n")
    async for record in io.read_all(kafka, args.dlq):
        if wanted.match(record):
            count += 1
            _json(describe(record), out) if args.json else out.write(summary_line(record) + "\n")
    sys.stderr.write(f"{count} record(s)\n")
    return 0


async def dlq_show(kafka: KafkaSettings, args: argparse.Namespace, out: TextIO) -> int:
    partition, offset = parse_coordinates(args.at)
    record = await io.read_one(kafka, args.dlq, partition, offset)
    out.write(json.dumps(describe(record), indent=2, sort_keys=True, default=str) + "\n")
    return 0


async def dlq_replay(kafka: KafkaSettings, args: argparse.Namespace, out: TextIO) -> int:
    wanted = _filters(args)
    ledger = Ledger(args.ledger)
    chosen: list[tuple[Record, str, str]] = []
    already = 0
    async for record in io.read_all(kafka, args.dlq):
        if not wanted.match(record):
            continue
        source = f"kafka://{record.coordinates}"
        if ledger.replayed(source) and not args.force:
            already += 1
            continue
        chosen.append((record, source, replay_target(record, args.to)))
    replayed = await _send(kafka, chosen, ledger, dry_run=args.dry_run, out=out)
    verb = "would replay" if args.dry_run else "replayed"
    sys.stderr.write(f"{verb} {replayed} record(s); {already} already replayed (ledger {args.ledger})\n")
    return 0


async def _send(
    kafka: KafkaSettings,
    chosen: Sequence[tuple[Record, str, str]],
    ledger: Ledger,
    *,
    dry_run: bool,
    out: TextIO,
) -> int:
    if dry_run:
        for record, source, target in chosen:
            _json({"source": source, "target": target, "event_id": event_id(record.headers)}, out)
        return len(chosen)
    async with io.Sender(kafka) as sender:
        for record, source, target in chosen:
            headers = replay_headers(record.headers, source)
            partition, offset = await sender.send(target, record.key, record.value, headers)
            facts = {
                "target": target,
                "partition": partition,
                "offset": offset,
                "event_id": event_id(headers),
            }
            ledger.record(source, **facts)
            _json({"source": source, **facts}, out)
    return len(chosen)


async def dlq_replay_s3(kafka: KafkaSettings, args: argparse.Namespace, out: TextIO) -> int:
    ledger = Ledger(args.ledger)
    client = io.s3_client(S3Settings())
    chosen: list[tuple[Record, str, str]] = []
    already = bad = objects = 0
    for key, body in await asyncio.to_thread(
        lambda: list(io.failure_objects(client, args.bucket, args.prefix))
    ):
        objects += 1
        try:
            batch = parse_failure(key, body)
        except OpsError as exc:
            bad += 1
            sys.stderr.write(f"aipx-ops: skipped: {exc}\n")
            continue
        for r in batch.records:
            source = f"s3://{args.bucket}/{key}#{r.topic}-{r.partition}@{r.offset}"
            if ledger.replayed(source) and not args.force:
                already += 1
                continue
            record = Record(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, list(r.headers))
            chosen.append((record, source, args.to or r.topic))
    replayed = await _send(kafka, chosen, ledger, dry_run=args.dry_run, out=out)
    verb = "would replay" if args.dry_run else "replayed"
    sys.stderr.write(
        f"{objects} object(s): {verb} {replayed} record(s); {already} already replayed; {bad} unreadable\n"
    )
    return 1 if bad else 0


async def tail(kafka: KafkaSettings, args: argparse.Namespace, out: TextIO) -> int:
    names = set(catalogue().names())
    schema = catalogue().get(args.topic).payload if args.topic in names else None
    shown = 0

    def ready() -> None:
        sys.stderr.write(f"tailing {args.topic} (Ctrl-C stops)\n")
        sys.stderr.flush()

    async for record in io.tail(kafka, args.topic, from_beginning=args.from_beginning, ready=ready):
        data = describe(record, schema=schema)
        if args.json:
            _json(data, out)
        else:
            payload = data["payload"]
            body = payload.get("message", {"undecodable": payload.get("undecodable")})
            out.write(
                f"{record.partition}:{record.offset}\t{data['key'] or '-'}\t{payload['schema']}\t"
                f"{json.dumps(body, sort_keys=True)}\n"
            )
        out.flush()
        shown += 1
        if args.max is not None and shown >= args.max:
            break
    return 0


COMMANDS = {
    ("dlq", "list"): dlq_list,
    ("dlq", "show"): dlq_show,
    ("dlq", "replay"): dlq_replay,
    ("dlq", "replay-s3"): dlq_replay_s3,
    ("tail", None): tail,
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = COMMANDS[(args.command, getattr(args, "action", None))]
    try:
        kafka = KafkaSettings()
        if args.bootstrap_servers:
            kafka = kafka.model_copy(update={"bootstrap_servers": args.bootstrap_servers})
        return asyncio.run(command(kafka, args, sys.stdout))
    except OpsError as exc:
        sys.stderr.write(f"aipx-ops: error: {exc}\n")
        return 2
    except KafkaConnectionError as exc:
        sys.stderr.write(f"aipx-ops: error: cannot reach Kafka at {kafka.bootstrap_servers}: {exc}\n")
        return 2
    except KafkaError as exc:
        sys.stderr.write(f"aipx-ops: error: Kafka: {type(exc).__name__}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
