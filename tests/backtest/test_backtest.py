"""The backtest end to end: determinism (byte-identical JSON, in one process and across processes), the
inputs (CSV trades and klines, the simulator's JSON lines), the ensemble and risk on the path, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from aipx_backtest import BacktestConfig, DataError, demo_dataset, load_csv, load_jsonl, run_backtest
from aipx_backtest.config import RiskConfig
from aipx_backtest.engine import Backtester
from aipx_backtest.report import console_table, html_report

from tests.backtest.bars import klines, write_csv

D = Decimal


def test_same_inputs_give_byte_identical_json() -> None:
    data = demo_dataset(hours=4)
    config = BacktestConfig(slippage_bps=D("2.5"))
    first = run_backtest(data, config).to_json()
    again = run_backtest(demo_dataset(hours=4), config).to_json()
    assert first == again
    result = json.loads(first)
    assert sum(result["signals"].values()) > 20 and len(result["trades"]) > 10, "the demo trades"
    assert result["metrics"]["combined"]["trades"] == len(result["trades"])


def test_klines_become_candles_with_the_klines_ohlc(tmp_path: Path) -> None:
    bars = klines(30)
    data = load_csv(write_csv(tmp_path / "k.csv", bars), symbol="TEST-USDT")
    assert len(data.events) == 4 * 30 and data.symbols == ["TEST-USDT"]
    result = run_backtest(data, BacktestConfig(strategies=("ema_cross",)))
    # Every closed candle's close is the kline's close, at the close of the bar.
    closes = result.prices["TEST-USDT"]
    assert [price for _, price in closes] == [b[4] for b in bars[:-1]]


def test_csv_trades_and_bad_csv(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "timestamp,symbol,price,qty\n2025-01-01T00:00:01Z,BTCUSDT,100.5,2\n1735689602000,BTC-USDT,101,1\n"
    )
    data = load_csv(path)
    assert [(e.symbol, e.exchange_time_ns, e.trade.price.value) for e in data.events] == [
        ("BTC-USDT", 1_735_689_601_000_000_000, "100.5"),
        ("BTC-USDT", 1_735_689_602_000_000_000, "101"),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("time,price,qty\n1,abc,1\n")
    with pytest.raises(DataError, match="no symbol column"):
        load_csv(bad)
    with pytest.raises(DataError, match="not a decimal number"):
        load_csv(bad, symbol="X-USDT")


def test_simulator_json_lines(tmp_path: Path) -> None:
    trade = {
        "e": "trade",
        "s": "BTCUSDT",
        "t": 1,
        "p": "65000.10",
        "q": "0.010",
        "T": 1735689600000,
        "m": False,
    }
    ticker = {"u": 5, "s": "BTCUSDT", "b": "65000.00", "B": "1.5", "a": "65000.20", "A": "2"}
    bybit = {"T": 1735689600500, "s": "ETHUSDT", "S": "Buy", "v": "0.5", "p": "3500.5", "i": "x"}
    lines = [
        {"venue": "binance", "stream": "btcusdt@trade", "frame": {"stream": "btcusdt@trade", "data": trade}},
        {"venue": "binance", "stream": "btcusdt@bookTicker", "frame": {"stream": "b", "data": ticker}},
        {
            "venue": "bybit",
            "stream": "publicTrade.ETHUSDT",
            "frame": {"topic": "publicTrade.ETHUSDT", "data": [bybit]},
        },
    ]
    path = tmp_path / "rec.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    data = load_jsonl(path)
    kinds = [(e.symbol, e.WhichOneof("payload")) for e in data.events]
    assert kinds == [("BTC-USDT", "trade"), ("BTC-USDT", "quote"), ("ETH-USDT", "trade")]
    assert data.events[1].quote.ask_price.value == "65000.2"
    path.write_text("not json\n")
    with pytest.raises(DataError, match=r"rec\.jsonl:1"):
        load_jsonl(path)


def test_the_ensemble_and_risk_sit_on_the_order_path() -> None:
    data = demo_dataset(hours=4)
    plain = run_backtest(data, BacktestConfig())
    gated = run_backtest(data, BacktestConfig(ensemble=True))
    assert sum(gated.approved.values()) < sum(plain.approved.values()) == sum(plain.signals.values())
    assert len(gated.fills) < len(plain.fills)
    tight = run_backtest(data, BacktestConfig(risk=RiskConfig(max_order_notional=D(500))))
    assert tight.denied.get("MAX_NOTIONAL_EXCEEDED", 0) > 0 and tight.fills == []


def test_report_and_console_table() -> None:
    result = run_backtest(demo_dataset(hours=3), BacktestConfig(strategies=("bollinger", "ema_cross")))
    page = html_report(result)
    assert page.count("<svg") == 3 + len(result.symbols)  # equity, per strategy, drawdown, one per symbol
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', ""), "no external resource"
    table = console_table(result)
    assert "bollinger" in table and "ema_cross" in table and "combined" in table


def test_cli_demo_writes_the_outputs_and_is_deterministic_across_processes(tmp_path: Path) -> None:
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run
        done = subprocess.run(
            [sys.executable, "-m", "aipx_backtest.cli", "--demo", "--demo-hours", "3", "--no-progress",
             "--strategies", "ema_cross,bollinger", "--out", str(out)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "combined" in done.stdout and "wrote" in done.stdout
        outputs.append((out / "result.json").read_bytes())
        assert (out / "report.html").read_text().startswith("<!doctype html>")
        assert (out / "trades.csv").read_text().startswith("strategy,symbol,direction")
    assert outputs[0] == outputs[1], "same inputs, byte-identical JSON, whatever the process's hash seed"


def test_cli_refuses_bad_input_with_a_clear_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aipx_backtest.cli", "--demo", "--strategies", "nope", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "unknown strategy 'nope'" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "aipx_backtest.cli", "--csv", str(tmp_path / "missing.csv")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "missing.csv" in done.stderr


def test_protective_orders_go_through_the_fill_model_and_only_reduce() -> None:
    data = demo_dataset(hours=6)
    config = BacktestConfig(protective=True, strategies=("ema_cross", "bollinger", "supertrend"))
    result = run_backtest(data, config)
    reasons = {f.reason for f in result.fills}
    assert reasons == {"signal", "stop_loss", "take_profit"}
    for f in result.fills:
        rate = config.maker_fee_rate if f.reason == "take_profit" else config.taker_fee_rate
        assert f.fee == f.quantity * f.price * rate, "take-profits rest (maker), stops trade at the touch"
    positions: dict[tuple[str, str], Decimal] = {}
    for f in result.fills:
        key = (f.strategy, f.symbol)
        before = positions.get(key, D(0))
        after = before + (f.quantity if f.side == "BUY" else -f.quantity)
        if f.reason != "signal":
            assert before != 0 and abs(after) < abs(before) and after * before >= 0, (
                "a protective fill only reduces"
            )
        positions[key] = after
    assert run_backtest(data, config).to_json() == result.to_json()


def test_long_only_accounts_are_cash_accounts_checked_like_the_oms() -> None:
    """With --long-only the strategies' accounts are cash accounts: each buy reserves its notional (at the
    price band's worst price plus the fee) in the OMS's own ledger, so with 1,500 of cash and 1,000-notional
    orders one position is open at a time; buys beyond it are denied INSUFFICIENT_BALANCE and the cash never
    goes below zero. With shorts allowed (margin accounts, as in the OMS) the same run has no such
    denial."""
    data = demo_dataset(hours=4)
    config = BacktestConfig(allow_short=False, balance=D(1500), notional=D(1000), taker_fee_rate=D("0.001"))
    backtester = Backtester(config)
    output = backtester.run(data)
    assert output.denied.get("INSUFFICIENT_BALANCE", 0) > 0, output.denied
    assert sum(len(account.fills) for account in backtester.accounts.values()) > 10, "and it trades"
    for account in backtester.accounts.values():
        assert account.cash >= 0 and not account.ledger.reservations
        assert min(account.equity) > 0
        cash = D(1500)
        for fill in account.fills:  # replayed: the cash after every fill stayed >= 0
            cash -= (1 if fill.side == "BUY" else -1) * fill.quantity * fill.price + fill.fee
            assert cash >= 0, (account.strategy, fill)
        assert cash == account.cash
    margin = Backtester(config.model_copy(update={"allow_short": True}))
    assert "INSUFFICIENT_BALANCE" not in margin.run(demo_dataset(hours=4)).denied
