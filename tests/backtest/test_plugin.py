"""A strategy in its own package (examples/strategy-plugin) is discovered through the `aipx.strategies` entry
point group: installed, it backtests (Python API and CLI) and goes into the strategy Lambda package; a broken
plug-in is left out with a warning naming it."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from aipx_backtest import BacktestConfig, demo_dataset, run_backtest
from aipx_strategy.domain import strategies

from tests.backtest.plugin import ROOT, SAMPLE, SAMPLE_ID, install_sample, plugin_on_path


def test_an_installed_plugin_backtests_through_the_api(tmp_path: Path) -> None:
    target = install_sample(tmp_path / "plugins")
    assert SAMPLE_ID not in strategies.REGISTRY
    with plugin_on_path(target):
        assert list(strategies.REGISTRY)[-1] == SAMPLE_ID, "built-ins first, then plug-ins"
        assert BacktestConfig().strategies[-1] == SAMPLE_ID, "every registered strategy by default"
        result = run_backtest(demo_dataset(hours=4), BacktestConfig(strategies=(SAMPLE_ID, "ema_cross")))
        assert result.signals[SAMPLE_ID] > 5
        assert any(t.strategy == SAMPLE_ID for t in result.trades)
    assert SAMPLE_ID not in strategies.REGISTRY, "uninstalled again"


def test_an_installed_plugin_backtests_through_the_cli(tmp_path: Path) -> None:
    target = install_sample(tmp_path / "plugins")
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-m", "aipx_backtest.cli", "--demo", "--demo-hours", "3", "--no-progress",
         "--strategies", SAMPLE_ID, "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert SAMPLE_ID in done.stdout
    assert SAMPLE_ID in (tmp_path / "out" / "trades.csv").read_text()


def test_broken_plugins_are_left_out_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for dist, entry in (
        ("broken_import", "missing_strategy = no_such_module:Nope"),
        ("wrong_id", "not_its_id = aipx_strategy.domain.strategies.ema_cross:EmaCrossStrategy"),
        ("not_a_strategy", "not_a_strategy = decimal:Decimal"),
    ):
        info = tmp_path / f"{dist}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[aipx.strategies]\n{entry}\n")
    with caplog.at_level(logging.WARNING), plugin_on_path(tmp_path):
        assert set(strategies.REGISTRY) == {
            "bollinger", "ema_cross", "ichimoku", "macd_stochastic", "rsi_ema", "supertrend"
        }  # fmt: skip
    text = caplog.text
    assert "'missing_strategy'" in text and "could not be loaded" in text
    assert "'not_its_id'" in text and "declares id 'ema_cross'" in text
    assert "'not_a_strategy'" in text and "is not a Strategy subclass" in text


def test_the_strategy_lambda_package_includes_installed_plugins(tmp_path: Path) -> None:
    target = install_sample(tmp_path / "plugins")
    spec = importlib.util.spec_from_file_location(
        "build_lambdas_plugins", ROOT / "scripts" / "build_lambdas.py"
    )
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = build  # dataclasses look their module up while the module runs
    spec.loader.exec_module(build)
    with plugin_on_path(target):
        assert build.strategy_plugins() == [SAMPLE]
    env = {**os.environ, "PYTHONPATH": str(target)}
    script = str(ROOT / "scripts" / "build_lambdas.py")
    done = subprocess.run(
        [sys.executable, script, "strategy", "--out", str(tmp_path / "dist")],
        capture_output=True, text=True, timeout=900, check=False, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(tmp_path / "dist" / "strategy.zip") as zf:
        names = set(zf.namelist())
        entry_points = zf.read("aipx_sample_strategy-0.1.0.dist-info/entry_points.txt").decode()
        builtins = zf.read("aipx_strategy-0.1.0.dist-info/entry_points.txt").decode()
    assert "aipx_sample_strategy/donchian.py" in names
    assert f"{SAMPLE_ID} = aipx_sample_strategy.donchian:DonchianBreakoutStrategy" in entry_points
    assert "ema_cross = aipx_strategy.domain.strategies.ema_cross:EmaCrossStrategy" in builtins
