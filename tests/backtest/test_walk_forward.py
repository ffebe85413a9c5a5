"""Grid search and walk-forward over worker processes: window boundaries, and no look-ahead (what happens
after a window cannot change what was decided or measured in it)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx_backtest import BacktestConfig, Dataset, demo_dataset
from aipx_backtest.data import event_time
from aipx_backtest.optimize import expand_grid, grid_search, walk_forward, windows

GRID = {"ema_cross": {"fast": [5, 9], "slow": [21, 8]}}  # (9, 8) is impossible: fast must be < slow
BASE = BacktestConfig(strategies=("ema_cross",))


def test_windows_tile_the_span_in_order() -> None:
    folds = windows(0, 1000, folds=3, in_sample_ratio=2)
    assert folds == [(0, 400, 400, 600), (200, 600, 600, 800), (400, 800, 800, 1001)]
    for is_start, is_end, oos_start, oos_end in folds:
        assert is_start < is_end == oos_start < oos_end, "out of sample strictly after in sample"
    assert [f[3] for f in folds[:-1]] == [f[2] for f in folds[1:]], "out-of-sample windows are contiguous"


def test_grid_expands_and_skips_impossible_points() -> None:
    assert expand_grid(GRID) == [
        {"ema_cross": {"fast": 5, "slow": 21}},
        {"ema_cross": {"fast": 5, "slow": 8}},
        {"ema_cross": {"fast": 9, "slow": 21}},
        {"ema_cross": {"fast": 9, "slow": 8}},
    ]
    ranked = grid_search(demo_dataset(hours=3), BASE, GRID, workers=2, progress=False)
    assert len(ranked) == 3, "fast 9 / slow 8 is not a candidate"
    scores = [p.score for p in ranked if p.score is not None]
    assert scores == sorted(scores, reverse=True)


def shifted(data: Dataset, from_ns: int) -> Dataset:
    """The same events, with every price from `from_ns` on moved up 30 % (a different future)."""
    out = []
    for e in data.events:
        if event_time(e) >= from_ns and e.HasField("trade"):
            copy = MarketDataEnvelope()
            copy.CopyFrom(e)
            copy.trade.price.value = str(Decimal(e.trade.price.value) * Decimal("1.3"))
            out.append(copy)
        else:
            out.append(e)
    return Dataset(out)


def test_walk_forward_has_no_look_ahead() -> None:
    data = demo_dataset(hours=8)
    folds = windows(data.start_ns, data.end_ns, 2, 2)
    first = walk_forward(data, BASE, GRID, folds=2, in_sample_ratio=2, workers=2, progress=False)
    assert [(f.in_sample_start_ns, f.in_sample_end_ns, f.out_of_sample_end_ns) for f in first] == [
        (a, b, d) for a, b, _, d in folds
    ]
    # A different future after fold 1's out-of-sample window: fold 1 is exactly the same.
    after = walk_forward(
        shifted(data, folds[0][3]), BASE, GRID, folds=2, in_sample_ratio=2, workers=2, progress=False
    )
    assert after[0] == first[0]
    assert after[1].out_of_sample != first[1].out_of_sample, "the later fold saw the new prices"
    # A different out-of-sample window for fold 1: its parameters (fit in sample) stay, its report changes.
    during = walk_forward(
        shifted(data, folds[0][1]), BASE, GRID, folds=2, in_sample_ratio=2, workers=2, progress=False
    )
    assert (during[0].best_params, during[0].in_sample_score) == (
        first[0].best_params,
        first[0].in_sample_score,
    )
    assert during[0].out_of_sample != first[0].out_of_sample
    assert first[0].out_of_sample["trades"] > 0, "the out-of-sample window trades"


def test_a_bad_grid_is_a_clear_error() -> None:
    data = demo_dataset(hours=1)
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        grid_search(data, BASE, {"nope": {"a": [1]}}, workers=1, progress=False)
    with pytest.raises(ValueError, match="ema_cross has no parameter fats"):
        grid_search(data, BASE, {"ema_cross": {"fats": [1]}}, workers=1, progress=False)
    with pytest.raises(ValueError, match="no valid parameter combination"):
        grid_search(data, BASE, {"ema_cross": {"fast": [30], "slow": [10]}}, workers=1, progress=False)
