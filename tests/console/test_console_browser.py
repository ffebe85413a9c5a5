"""The console in a real headless Chromium: page load, live trades, orders from the gRPC API, the admin
actions (cancel, halt), many symbols, the message shown when a component is down, dead-letter counts and the
OMS's outbox lag."""

from __future__ import annotations

import asyncio
import random
import re
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from aipx.clients.oms import OmsClient
from aipx.money import to_pb
from aipx.v1 import common_pb2, decisions_pb2, market_data_pb2, orders_pb2, signals_pb2
from aipx_oms.relay.outbox import RELAY_LOCK_KEY
from grpc_health.v1 import health_pb2
from playwright.async_api import Page, expect

from tests.console.conftest import ADMIN_TOKEN, ConsoleEnv, admin_tokens_setting
from tests.oms.conftest import KEY_A, OmsEnv, eventually
from tests.oms.processes import Cluster

pytestmark = pytest.mark.integration

WAIT_MS = 20_000  # generous: eight engineers' tests share two cores
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".aipx" / "screenshots"


def trade(venue: str, symbol: str, price: str, qty: str = "0.5") -> market_data_pb2.MarketDataEnvelope:
    now = time.time_ns()
    return market_data_pb2.MarketDataEnvelope(
        venue=venue,
        symbol=symbol,
        venue_symbol=symbol.replace("-", ""),
        exchange_time_ns=now,
        ingest_time_ns=now,
        trade=market_data_pb2.Trade(trade_id=str(now), price=to_pb(price), quantity=to_pb(qty)),
    )


async def open_console(page: Page, env: ConsoleEnv) -> None:
    await page.goto(env.url)
    await expect(page.locator("#link")).to_have_text("live", timeout=WAIT_MS)


async def unlock(page: Page) -> None:
    await page.fill("#admin-token", ADMIN_TOKEN)
    await page.click("#admin-unlock")
    await expect(page.locator("#admin-lock")).to_be_visible(timeout=WAIT_MS)


async def test_page_loads_and_a_live_trade_appears_within_seconds(
    console_env: ConsoleEnv, page: Page
) -> None:
    await console_env.start()
    await open_console(page, console_env)
    await expect(page.locator("h2", has_text="Market data")).to_be_visible()
    for price in ("60100.5", "60123.45"):
        await console_env.publish("market", "binance:BTC-USDT", trade("binance", "BTC-USDT", price))
    row = page.locator('tr[data-market="binance:BTC-USDT"]')
    await expect(row.locator("td.last")).to_have_text("60123.45", timeout=WAIT_MS)
    await expect(page.locator("#chart-title")).to_contain_text("BTC-USDT", timeout=WAIT_MS)
    await expect(page.locator('[data-component="kafka"]')).to_have_count(0)


async def test_an_order_placed_through_the_grpc_api_appears(console_oms: ConsoleEnv, page: Page) -> None:
    assert console_oms.oms is not None
    await console_oms.oms.start()
    await console_oms.start()
    await open_console(page, console_oms)
    async with console_oms.oms.client() as client:
        reply = await client.submit("ETH-USDT", common_pb2.SIDE_BUY, Decimal("0.5"), price=Decimal("2500"))
    order_id = reply.order.order_id
    row = page.locator(f'tr[data-order="{order_id}"]')
    await expect(row.locator("td.status")).to_have_text("ACCEPTED", timeout=WAIT_MS)
    await expect(row).to_contain_text("ETH-USDT")
    await expect(row).to_contain_text("2500")


async def test_cancel_from_the_page_cancels_the_order(console_oms: ConsoleEnv, page: Page) -> None:
    assert console_oms.oms is not None
    await console_oms.oms.start(admin_tokens=admin_tokens_setting())
    await console_oms.start()
    await open_console(page, console_oms)
    async with console_oms.oms.client() as client:
        reply = await client.submit("BTC-USDT", common_pb2.SIDE_BUY, Decimal("0.01"), price=Decimal("50000"))
        order_id = reply.order.order_id
        row = page.locator(f'tr[data-order="{order_id}"]')
        await expect(row.locator("td.status")).to_have_text("ACCEPTED", timeout=WAIT_MS)
        await unlock(page)
        cancel = row.locator("button.cancel")
        await cancel.click()
        await expect(cancel).to_have_text("Confirm cancel?")
        await cancel.click()
        await expect(row.locator("td.status")).to_have_text("CANCELED", timeout=WAIT_MS)
        order = await client.get(order_id=order_id)
        assert order.status == orders_pb2.ORDER_STATUS_CANCELED


async def test_halting_an_account_shows_its_new_state(console_oms: ConsoleEnv, page: Page) -> None:
    assert console_oms.oms is not None
    await console_oms.oms.start(admin_tokens=admin_tokens_setting())
    await console_oms.start()
    await open_console(page, console_oms)
    await unlock(page)
    account = page.locator('tr[data-account="acct-a"]')
    await expect(account.locator("td.state")).to_have_text("ACTIVE", timeout=WAIT_MS)
    halt = account.locator("button.halt")
    await halt.click()
    await halt.click()
    await expect(account.locator("td.state")).to_have_text("HALTED", timeout=WAIT_MS)
    async with console_oms.oms.client() as client:
        reply = await client.submit("BTC-USDT", common_pb2.SIDE_BUY, Decimal("0.01"), price=Decimal("50000"))
    assert reply.order.status == orders_pb2.ORDER_STATUS_DENIED
    resume = account.locator("button.resume")
    await resume.click()
    await resume.click()
    await expect(account.locator("td.state")).to_have_text("ACTIVE", timeout=WAIT_MS)


async def test_a_wrong_admin_token_is_refused_with_a_message(console_oms: ConsoleEnv, page: Page) -> None:
    assert console_oms.oms is not None
    await console_oms.oms.start(admin_tokens=admin_tokens_setting())
    await console_oms.start()
    await open_console(page, console_oms)
    await page.fill("#admin-token", "not-the-token")
    await page.click("#admin-unlock")
    await expect(page.locator("#toast")).to_contain_text("UNAUTHENTICATED", timeout=WAIT_MS)
    await expect(page.locator("#admin-lock")).to_be_hidden()


async def test_many_symbols_update_without_freezing_the_page(console_env: ConsoleEnv, page: Page) -> None:
    await console_env.start()
    await open_console(page, console_env)
    symbols = [f"S{i:03d}-USDT" for i in range(300)]
    for round_ in range(5):
        for s in symbols:
            await console_env.publish("market", f"sim:{s}", trade("sim", s, f"{100 + round_}.5"))
    await expect(page.locator("#markets tbody tr")).to_have_count(300, timeout=WAIT_MS)
    await expect(page.locator('tr[data-market="sim:S299-USDT"] td.last')).to_have_text(
        "104.5", timeout=WAIT_MS
    )
    # the page still answers promptly: a round trip through its event loop
    started = time.monotonic()
    assert await page.evaluate("() => document.querySelectorAll('#markets tbody tr').length") == 300
    assert time.monotonic() - started < 2.0
    await page.fill("#market-filter", "S29")
    await expect(page.locator("#markets tbody tr:visible")).to_have_count(10, timeout=WAIT_MS)


async def test_a_component_down_is_shown_by_name(console_env: ConsoleEnv, page: Page) -> None:
    # Nothing listens at the OMS target nor at the metrics URL: real refused connections.
    from aipx_stack.ports import free_port

    dead = free_port()
    await console_env.start(metrics_targets={"ingestion": f"http://127.0.0.1:{dead}/metrics"})
    await open_console(page, console_env)
    await expect(page.locator('[data-component="oms"]')).to_contain_text("oms is down", timeout=WAIT_MS)
    await expect(page.locator('[data-component="metrics:ingestion"]')).to_contain_text(
        "ingestion is down", timeout=WAIT_MS
    )


async def test_screenshot_of_a_busy_console(console_oms: ConsoleEnv, page: Page) -> None:
    """A screenshot with data in every section (.aipx/screenshots/console.png), for a person to look at."""
    assert console_oms.oms is not None
    await console_oms.oms.start()
    await console_oms.start(candle_interval_s=1)
    await open_console(page, console_oms)
    rng = random.Random(17)
    prices = {"BTC-USDT": 60000.0, "ETH-USDT": 3000.0, "SOL-USDT": 150.0, "BNB-USDT": 600.0, "XRP-USDT": 0.6}

    async def walk(steps: int) -> None:
        for _ in range(steps):
            for symbol, value in prices.items():
                prices[symbol] = value * (1 + rng.gauss(0, 0.002))
                for venue in ("binance", "bybit"):
                    last = Decimal(str(prices[symbol])).quantize(Decimal("0.0001"))
                    await console_oms.publish("market", f"{venue}:{symbol}", trade(venue, symbol, str(last)))
            await asyncio.sleep(0.25)

    await walk(25)
    await console_oms.publish("signals", "BTC-USDT", signal("sig-1", "BTC-USDT"))
    await console_oms.publish("decisions", "BTC-USDT", decision("sig-1", "BTC-USDT"))
    async with console_oms.oms.client() as client:
        # a buy limit above the market: filled by the next trade that prints through it (paper venue)
        await client.submit("BTC-USDT", common_pb2.SIDE_BUY, Decimal("0.01"), price=Decimal("61500"))
        for symbol, limit in (("ETH-USDT", "2900"), ("SOL-USDT", "140")):
            await client.submit(symbol, common_pb2.SIDE_BUY, Decimal("0.1"), price=Decimal(limit))
    await walk(8)
    await expect(page.locator("#orders tbody tr")).to_have_count(3, timeout=WAIT_MS)
    await expect(page.locator("#markets tbody tr")).to_have_count(10, timeout=WAIT_MS)
    await expect(page.locator('[data-signal="sig-1"]')).to_contain_text("APPROVE", timeout=WAIT_MS)
    await expect(page.locator('tr[data-position="acct-a:BTC-USDT"]')).to_contain_text("0.01", timeout=WAIT_MS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "console.png"), full_page=True)
    assert (SCREENSHOTS / "console.png").stat().st_size > 10_000


def signal(signal_id: str, symbol: str) -> signals_pb2.TradingSignal:
    return signals_pb2.TradingSignal(
        signal_id=signal_id,
        strategy_id="ema_cross",
        venue="binance",
        symbol=symbol,
        interval="1m",
        direction=signals_pb2.SIGNAL_DIRECTION_LONG,
        strength=0.72,
        price=to_pb("60010.5"),
        reasons=["EMA 9 crossed above EMA 21", "volume 1.8x the 20-bar mean"],
        generated_time_ns=time.time_ns(),
    )


def decision(signal_id: str, symbol: str) -> decisions_pb2.Decision:
    votes = [
        ("trend", decisions_pb2.VOTE_LONG, 0.8, "higher highs on the 1h"),
        ("momentum", decisions_pb2.VOTE_LONG, 0.65, "RSI 58 rising"),
        ("risk", decisions_pb2.VOTE_NEUTRAL, 0.5, "volatility normal"),
    ]
    return decisions_pb2.Decision(
        decision_id=f"dec-{signal_id}",
        signal_id=signal_id,
        strategy_id="ema_cross",
        venue="binance",
        symbol=symbol,
        direction=signals_pb2.SIGNAL_DIRECTION_LONG,
        verdict=decisions_pb2.VERDICT_APPROVE,
        confidence=0.66,
        votes=[
            decisions_pb2.AnalystVote(analyst=a, vote=v, confidence=c, rationale=r) for a, v, c, r in votes
        ],
        rationale="2 of 3 analysts long, none short",
        decided_time_ns=time.time_ns(),
    )


async def test_the_oms_stopping_is_shown_and_its_return_clears_the_banner(
    console_oms: ConsoleEnv, page: Page
) -> None:
    assert console_oms.oms is not None
    await console_oms.oms.start()
    await console_oms.start()
    await open_console(page, console_oms)
    banner = page.locator('[data-component="oms"]')
    await expect(page.locator('tr[data-account="acct-a"] td.state')).to_have_text("ACTIVE", timeout=WAIT_MS)
    await expect(banner).to_have_count(0)
    port = console_oms.oms.app.port if console_oms.oms.app else None
    await console_oms.oms.stop()  # the OMS stops serving: its port refuses connections
    await expect(banner).to_contain_text("oms is down", timeout=WAIT_MS)
    await console_oms.oms.start(grpc_port=port)  # back on the same address
    await expect(banner).to_have_count(0, timeout=WAIT_MS)


async def test_dead_letter_counts_rise_as_records_reach_the_dlq(console_env: ConsoleEnv, page: Page) -> None:
    await console_env.start()
    await open_console(page, console_env)
    dlq = console_env.topics["dlq"]
    assert dlq == f"{console_env.topics['signals']}.dlq"
    chip = page.locator(f'[data-dlq="{dlq}"]')
    total = page.locator('[data-figure="DLQ records"] .value')
    await expect(chip).to_have_text(f"DLQ {dlq}: 0", timeout=WAIT_MS)
    await expect(total).to_have_text("0")
    # What a function dead-letters: the record of its source topic it could not process (here, signals).
    for i in range(3):
        await console_env.publish("dlq", "BTC-USDT", signal(f"dead-{i}", "BTC-USDT"))
    await expect(chip).to_have_text(f"DLQ {dlq}: 3", timeout=WAIT_MS)
    await expect(chip).to_have_class(re.compile(r"\bbad\b"))
    await expect(total).to_have_text("3", timeout=WAIT_MS)
    for i in range(3, 5):
        await console_env.publish("dlq", "ETH-USDT", signal(f"dead-{i}", "ETH-USDT"))
    await expect(chip).to_have_text(f"DLQ {dlq}: 5", timeout=WAIT_MS)
    await expect(total).to_have_text("5", timeout=WAIT_MS)


async def unpublished(oms: OmsEnv) -> int:
    rows = await oms.sql("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
    return int(rows[0]["n"])


async def test_outbox_lag_shows_while_the_relay_cannot_publish(
    console_oms: ConsoleEnv, page: Page, tmp_path: Path
) -> None:
    """A real OMS process (its own /metrics page, as the console scrapes it in production) whose relay stands
    by: another relay holds the relay lock and publishes nothing (a replica stuck on a dead Kafka link). The
    page shows the events piling up in the outbox and their age, then the lag gone once the lock is free."""
    oms = console_oms.oms
    assert oms is not None
    stuck_relay = await asyncpg.connect(oms.dsn)
    cluster = Cluster(oms, tmp_path)
    try:
        await stuck_relay.execute("SELECT pg_advisory_lock($1)", RELAY_LOCK_KEY)
        process = cluster.spawn("oms")
        await process.wait_health(health_pb2.HealthCheckResponse.SERVING, timeout_s=60)
        await console_oms.start(
            oms_target=process.target,
            metrics_targets={"oms": f"http://127.0.0.1:{process.metrics_port}/metrics"},
        )
        await open_console(page, console_oms)
        lag = page.locator('[data-figure="outbox lag"]')
        await expect(lag.locator(".value")).to_have_text("0 ev / 0.0 s", timeout=WAIT_MS)
        async with OmsClient(process.target, KEY_A, timeout_s=10.0) as client:
            for symbol, price in (("BTC-USDT", "50000"), ("ETH-USDT", "2500"), ("SOL-USDT", "140")):
                await client.submit(symbol, common_pb2.SIDE_BUY, Decimal("0.01"), price=Decimal(price))
        assert await unpublished(oms) >= 3  # at least one event per order, none published
        value = lag.locator(".value")

        async def shows_the_outbox() -> bool:
            return (await value.inner_text()).startswith(f"{await unpublished(oms)} ev / ")

        await eventually(shows_the_outbox, WAIT_MS / 1000, "the page to show the outbox's unpublished count")
        # the age of the oldest unpublished event grows: past 5 s the figure turns red
        await expect(lag).to_have_class(re.compile(r"\bbad\b"), timeout=WAIT_MS)
        assert await unpublished(oms) >= 3

        await stuck_relay.close()  # the lock is free: this OMS's relay takes it and publishes the backlog
        await expect(value).to_have_text("0 ev / 0.0 s", timeout=WAIT_MS)
        assert await unpublished(oms) == 0
    finally:
        if not stuck_relay.is_closed():
            await stuck_relay.close()
        cluster.stop_all()
