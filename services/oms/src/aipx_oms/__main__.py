"""Entry point: `python -m aipx_oms [serve|migrate|seed|relay]` (also the `aipx-oms` script).

serve    run the gRPC OMS (default)
relay    run only the outbox relay (when the OMS runs with AIPX_OMS_RELAY_ENABLED=false)
migrate  apply the SQL migrations to AIPX_POSTGRES_DSN and exit
seed     migrate, then create the local demo account (funded), its API key, the demo operator token and the
         demo instruments - only into the local stack's database (--allow-non-local to override)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

import asyncpg
import uvloop
from aipx.logs import configure_logging
from aipx.tuning import tune_gc

from aipx_oms.server import run_relay, serve
from aipx_oms.settings import OmsSettings
from aipx_oms.store.admin import (
    DEMO_ACCOUNT,
    DEMO_API_KEY,
    DEMO_OPERATOR_TOKEN,
    not_local_stack,
    seed_demo,
)
from aipx_oms.store.errors import StoreUnavailableError, is_unavailable
from aipx_oms.store.migrations import MigrationError, migrate

log = logging.getLogger("aipx_oms")


async def _migrate(settings: OmsSettings) -> list[str]:
    return await migrate(settings.postgres.dsn.get_secret_value(), settings.migrations_dir)


async def _seed(settings: OmsSettings) -> None:
    await _migrate(settings)
    conn = await asyncpg.connect(settings.postgres.dsn.get_secret_value())
    try:
        await seed_demo(conn)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aipx_oms", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="serve", choices=("serve", "migrate", "seed", "relay"))
    parser.add_argument(
        "--allow-non-local",
        action="store_true",
        help="seed: install the fixed demo credentials even into a database that is not the local stack's",
    )
    args = parser.parse_args(argv)
    settings = OmsSettings()
    configure_logging("oms", settings.log)
    if args.command == "seed" and not args.allow_non_local:
        why = not_local_stack(settings.postgres.dsn.get_secret_value(), os.environ)
        if why is not None:
            print(
                f"refusing to seed the fixed demo key into a database that is not the local stack's: {why}"
                " (pass --allow-non-local to override)",
                file=sys.stderr,
            )
            return 2
    try:
        if args.command == "migrate":
            applied = asyncio.run(_migrate(settings))
            print(f"{len(applied)} migration(s) applied" + (f": {', '.join(applied)}" if applied else ""))
        elif args.command == "seed":
            asyncio.run(_seed(settings))
            print(
                f"demo data ready: account {DEMO_ACCOUNT!r}, API key {DEMO_API_KEY!r},"
                f" operator token {DEMO_OPERATOR_TOKEN!r}"
            )
        elif args.command == "relay":
            tune_gc()
            uvloop.run(run_relay(settings))
        else:
            tune_gc()
            # uvloop: the OMS spends its time in socket I/O (gRPC, PostgreSQL, Kafka); asyncpg is made for it.
            uvloop.run(serve(settings))
    except MigrationError as exc:
        log.error("migration failed: %s", exc)
        return 2
    except (StoreUnavailableError, OSError, asyncpg.PostgresError) as exc:
        if isinstance(exc, StoreUnavailableError) or is_unavailable(exc):
            log.error("PostgreSQL unavailable: %s", exc)
            return 3
        raise
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
