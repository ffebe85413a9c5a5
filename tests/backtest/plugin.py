"""Installs the sample strategy plug-in (examples/strategy-plugin) as a user would, into a directory of its
own (`uv pip install --target`), and puts it on sys.path for the duration of a test."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aipx_strategy.domain import strategies

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "strategy-plugin"
SAMPLE_ID = "donchian_breakout"


def install_sample(target: Path) -> Path:
    """`uv pip install --no-deps --target target examples/strategy-plugin` (aipx-strategy is already here)."""
    uv = shutil.which("uv")
    assert uv is not None, "uv must be on PATH to install the sample plug-in (./aipx installs it)"
    done = subprocess.run(
        [uv, "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(SAMPLE)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"installing the sample plug-in failed: {done.stderr}"
    return target


@contextmanager
def plugin_on_path(target: Path) -> Iterator[None]:
    """The plug-in directory on sys.path and the strategy registry refreshed; both undone afterwards."""
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    strategies.refresh()
    try:
        yield
    finally:
        sys.path.remove(str(target))
        for name in [m for m in sys.modules if m.startswith("aipx_sample_strategy")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        strategies.refresh()
