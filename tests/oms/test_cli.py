"""The console scripts as operators run them: `aipx-admin`, `aipx-oms-cli` and `aipx-oms seed` as real
subprocesses against a real OMS (in this test's process, on an ephemeral port) and the stack's PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aipx_oms.store.admin import DEMO_FUNDING, add_operator_token

from .conftest import OmsEnv

BIN = Path(sys.executable).parent
TOKEN = "cli-operator-token"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


async def run(*argv: str, env: dict[str, str] | None = None, timeout_s: float = 120) -> Result:
    """Run a console script of the venv; the event loop keeps serving the in-process OMS meanwhile."""
    process = await asyncio.create_subprocess_exec(
        str(BIN / argv[0]),
        *argv[1:],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


@pytest.fixture
async def cli_oms(oms_env: OmsEnv, new_topic: Callable[..., Awaitable[str]]) -> AsyncIterator[OmsEnv]:
    conn = await asyncpg.connect(oms_env.dsn)
    try:
        await add_operator_token(conn, "cli-operator", TOKEN)
    finally:
        await conn.close()
    await oms_env.start(admin_events_topic=await new_topic(1))
    yield oms_env


def admin_env(oms: OmsEnv) -> dict[str, str]:
    return {"AIPX_CLI_TARGET": oms.target, "AIPX_ADMIN_TOKEN": TOKEN}


async def test_admin_cli_covers_the_operator_workflow(cli_oms: OmsEnv) -> None:
    env = admin_env(cli_oms)
    created = await run(
        "aipx-admin", "create-account", "acct-cli", "--name", "CLI", "--max-open-orders", "9", env=env
    )
    assert created.code == 0, created.err
    [account] = created.json_lines()
    assert account["account_id"] == "acct-cli" and account["risk_limits"]["max_open_orders"] == 9
    issued = await run("aipx-admin", "issue-key", "acct-cli", "--label", "bot", env=env)
    [key] = issued.json_lines()
    assert key["api_key"].startswith("aipx-") and key["key"]["account_id"] == "acct-cli"
    deposit = await run(
        "aipx-admin", "post-entry", "acct-cli", "deposit", "USDT", "1000.50", "--reason", "wire",
        "--idempotency-key", "wire-1", env=env,
    )  # fmt: skip
    assert deposit.code == 0 and deposit.json_lines()[0]["balance"]["value"] == "1000.50"
    listed = await run("aipx-admin", "list-accounts", env=env)
    assert {a["account_id"] for a in listed.json_lines()} >= {"acct-a", "acct-b", "acct-cli"}
    limits = await run("aipx-admin", "set-limits", "acct-cli", "--max-order-notional", "5000", env=env)
    assert limits.json_lines()[0]["risk_limits"]["max_order_notional"]["value"] == "5000"
    instrument = await run(
        "aipx-admin", "upsert-instrument", "ADA-USDT", "--base", "ADA", "--quote", "USDT",
        "--tick-size", "0.0001", "--lot-size", "1", env=env,
    )  # fmt: skip
    assert instrument.json_lines()[0]["created"] is True
    halted = await run("aipx-admin", "set-state", "acct-cli", "HALTED", "--reason", "review", env=env)
    assert halted.json_lines()[0]["account"]["trading_state"] == "TRADING_STATE_HALTED"
    assert (await run("aipx-admin", "halt-platform", "--reason", "drill", env=env)).json_lines()[0]["halted"]
    assert (await run("aipx-admin", "resume-platform", env=env)).code == 0
    keys = await run("aipx-admin", "list-keys", "--account", "acct-cli", env=env)
    assert [k["key_id"] for k in keys.json_lines()] == [key["key"]["key_id"]]
    assert "api_key" not in keys.out  # secrets are never listed
    revoked = await run("aipx-admin", "revoke-key", key["key"]["key_id"], "--reason", "done", env=env)
    assert int(revoked.json_lines()[0]["revoked_time_ns"]) > 0
    audit = await run("aipx-admin", "audit", "--account", "acct-cli", env=env)
    assert [r["action"] for r in audit.json_lines()] == [
        "RevokeApiKey", "SetTradingState", "SetRiskLimits", "PostLedgerEntry", "IssueApiKey", "CreateAccount",
    ]  # fmt: skip
    # Bad input and bad credentials: clear messages and exit codes, no traceback.
    bad = await run("aipx-admin", "post-entry", "acct-cli", "deposit", "USDT", "1e", "--reason", "x", env=env)
    assert bad.code == 2 and "invalid input" in bad.err and "Traceback" not in bad.err
    wrong = await run(
        "aipx-admin", "--token", "nope", "list-accounts", env={"AIPX_CLI_TARGET": cli_oms.target}
    )
    assert wrong.code == 1 and wrong.err.startswith("UNAUTHENTICATED")
    missing = await run("aipx-admin", "list-accounts", env={"AIPX_ADMIN_TOKEN": ""})
    assert missing.code == 2 and "operator token is needed" in missing.err
    hashed = await run("aipx-admin", "hash-token", "s3cret")
    assert hashed.out.strip() == hashlib.sha256(b"s3cret").hexdigest()


async def test_oms_cli_places_replaces_cancels_and_shows_the_account(cli_oms: OmsEnv) -> None:
    env = {**admin_env(cli_oms), "AIPX_CLI_API_KEY": "key-account-a"}
    await run("aipx-admin", "post-entry", "acct-a", "deposit", "USDT", "500", "--reason", "funding", env=env)
    placed = await run("aipx-oms-cli", "place", "buy", "0.1", "ETH-USDT", "--price", "1000", env=env)
    assert placed.code == 0 and placed.out.startswith("created "), placed.err
    order_id = placed.out.split()[1]
    replaced = await run("aipx-oms-cli", "replace", order_id, "--price", "1001.5", env=env)
    assert replaced.code == 0 and order_id in replaced.out and "px 1001.5" in replaced.out, replaced.err
    open_orders = await run("aipx-oms-cli", "orders", "--open", env=env)
    assert order_id in open_orders.out
    account = await run("aipx-oms-cli", "account", env=env)
    assert account.code == 0 and "acct-a  ACTIVE" in account.out and "USDT" in account.out
    assert "total 500" in account.out
    canceled = await run("aipx-oms-cli", "cancel", order_id, env=env)
    assert canceled.code == 0 and ("CANCELED" in canceled.out or "PENDING_CANCEL" in canceled.out)
    state = await run("aipx-oms-cli", "account-state", "acct-a", "HALTED", "--reason", "cli test", env=env)
    assert state.code == 0 and state.out.strip() == "acct-a: HALTED", state.err
    denied = await run("aipx-oms-cli", "place", "buy", "0.1", "ETH-USDT", "--price", "1000", env=env)
    assert "DENIED" in denied.out and "ACCOUNT_HALTED" in denied.out
    no_token = await run(
        "aipx-oms-cli", "account-state", "acct-a", "ACTIVE", env={**env, "AIPX_ADMIN_TOKEN": ""}
    )
    assert no_token.code == 2 and "operator token is needed" in no_token.err
    bad = await run("aipx-oms-cli", "replace", order_id, "--quantity", "abc", env=env)
    assert bad.code == 2 and "invalid input" in bad.err


async def test_seed_funds_the_demo_account_and_refuses_other_databases(
    new_database: Callable[[], Awaitable[str]],
) -> None:
    refused = await run(
        "aipx-oms", "seed", env={"AIPX_POSTGRES_DSN": "postgresql://aipx:aipx@db.prod.example:5432/aipx"}
    )
    assert refused.code == 2 and "refusing to seed" in refused.err and "loopback" in refused.err
    dsn = await new_database()
    seeded = await run("aipx-oms", "seed", env={"AIPX_POSTGRES_DSN": dsn})
    assert seeded.code == 0, seeded.err
    again = await run("aipx-oms", "seed", env={"AIPX_POSTGRES_DSN": dsn})  # idempotent
    assert again.code == 0, again.err
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval("SELECT total FROM balances WHERE account_id = 'demo' AND asset = 'USDT'")
        entries = await conn.fetchval("SELECT count(*) FROM ledger_entries WHERE account_id = 'demo'")
        operators = await conn.fetchval("SELECT count(*) FROM operator_tokens")
    finally:
        await conn.close()
    assert total == Decimal("1000000") and entries == len(DEMO_FUNDING) and operators == 1
