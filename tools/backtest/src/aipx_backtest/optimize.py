"""Grid search over strategy parameters and walk-forward analysis, spread over processes.

Every grid point is a full backtest (the same replay as `run_backtest`) in a worker process
(`concurrent.futures.ProcessPoolExecutor`; the dataset is sent to each worker once, when it starts), with a
tqdm progress bar. Points are ranked by an objective metric of the combined account (default: Sharpe;
undefined scores rank last), ties by the parameters' JSON, so the ranking is deterministic.

Walk-forward: the data's span is cut into `folds` out-of-sample windows of equal length, each preceded by an
in-sample window `in_sample_ratio` times as long; per fold the grid is searched on the in-sample data only and
the best parameters are run on the out-of-sample window (the in-sample bars before it only warm the
indicators up: no trade happens before the window opens, and no event after it is read).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from aipx_backtest.config import BacktestConfig
from aipx_backtest.data import Dataset, iso
from aipx_backtest.metrics import Metrics
from aipx_backtest.result import COMBINED, run_backtest

Grid = Mapping[str, Mapping[str, Sequence[Any]]]

_DATA: Dataset | None = None


def _init_worker(raw: list[bytes]) -> None:
    global _DATA
    _DATA = Dataset.from_bytes(raw)


def _run_point(config_json: str, start_ns: int | None, end_ns: int | None) -> dict[str, Any]:
    assert _DATA is not None, "worker not initialised"
    config = BacktestConfig.model_validate_json(config_json)
    data = _DATA.select(start_ns=start_ns, end_ns=end_ns)
    if not data.events:
        raise ValueError(f"no market data between {start_ns} and {end_ns}")
    return dataclasses.asdict(run_backtest(data, config).metrics[COMBINED])


def expand_grid(grid: Grid) -> list[dict[str, dict[str, Any]]]:
    """{"ema_cross": {"fast": [5, 9], "slow": [21, 30]}} -> every combination as a params mapping."""
    keys = [(sid, name) for sid, params in grid.items() for name in params]
    choices = [list(grid[sid][name]) for sid, name in keys]
    for sid, name in keys:
        if not grid[sid][name]:
            raise ValueError(f"grid {sid}.{name} has no values")
    points = []
    for combo in itertools.product(*choices):
        params: dict[str, dict[str, Any]] = {sid: {} for sid in grid}
        for (sid, name), value in zip(keys, combo, strict=True):
            params[sid][name] = value
        points.append(params)
    return points


@dataclass(frozen=True, slots=True)
class GridPoint:
    params: dict[str, dict[str, Any]]
    metrics: dict[str, Any]  # Metrics of the combined account, as a dict
    score: Decimal | None


def _score(metrics: Mapping[str, Any], objective: str) -> Decimal | None:
    if objective not in Metrics.__dataclass_fields__:
        raise ValueError(f"unknown objective {objective!r}; one of {', '.join(Metrics.__dataclass_fields__)}")
    value = metrics[objective]
    if value is None:
        return None
    score = Decimal(value)
    return -score if objective in ("max_drawdown", "max_drawdown_duration_s") else score


def _rank(points: list[GridPoint]) -> list[GridPoint]:
    return sorted(
        points,
        key=lambda p: (p.score is None, -(p.score or 0), json.dumps(p.params, sort_keys=True)),
    )


def _check_grid(grid: Grid) -> None:
    """Unknown strategies and parameter names are errors (not silently empty grids)."""
    from aipx_strategy.domain.strategies import REGISTRY

    if not grid:
        raise ValueError("the grid is empty")
    for sid, params in grid.items():
        if sid not in REGISTRY:
            raise ValueError(f"grid: unknown strategy {sid!r}; known: {', '.join(REGISTRY)}")
        unknown = sorted(set(params) - set(REGISTRY[sid].Params.model_fields))
        if unknown:
            known = ", ".join(REGISTRY[sid].Params.model_fields)
            raise ValueError(f"grid: {sid} has no parameter {', '.join(unknown)}; its parameters: {known}")


def _configs(base: BacktestConfig, grid: Grid) -> Iterator[tuple[dict[str, dict[str, Any]], BacktestConfig]]:
    _check_grid(grid)
    for params in expand_grid(grid):
        merged = {**base.params, **{sid: {**base.params.get(sid, {}), **p} for sid, p in params.items()}}
        try:
            config = base.model_copy(update={"strategies": tuple(grid), "params": merged})
            BacktestConfig.model_validate(config.model_dump())
        except (ValidationError, ValueError):
            continue  # an impossible combination (e.g. fast >= slow) is not a candidate
        yield params, config


class Optimizer:
    """A pool of worker processes holding one dataset."""

    def __init__(self, data: Dataset, *, workers: int | None = None, progress: bool = True) -> None:
        self.data = data
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.progress = progress
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Optimizer:
        self._pool = ProcessPoolExecutor(
            self.workers, initializer=_init_worker, initargs=(self.data.to_bytes(),)
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def grid_search(
        self,
        base: BacktestConfig,
        grid: Grid,
        *,
        objective: str = "sharpe",
        start_ns: int | None = None,
        end_ns: int | None = None,
        label: str = "grid",
    ) -> list[GridPoint]:
        """Every valid grid point backtested on [start_ns, end_ns), best first."""
        assert self._pool is not None, "use Optimizer as a context manager"
        candidates = list(_configs(base, grid))
        if not candidates:
            raise ValueError("the grid has no valid parameter combination")
        futures: dict[Future[dict[str, Any]], dict[str, dict[str, Any]]] = {
            self._pool.submit(_run_point, config.model_dump_json(), start_ns, end_ns): params
            for params, config in candidates
        }
        points = []
        with tqdm(total=len(futures), desc=label, unit="run", disable=not self.progress, leave=False) as bar:
            for future in as_completed(futures):
                metrics = future.result()
                points.append(GridPoint(futures[future], metrics, _score(metrics, objective)))
                bar.update()
        return _rank(points)


def grid_search(
    data: Dataset,
    base: BacktestConfig,
    grid: Grid,
    *,
    objective: str = "sharpe",
    workers: int | None = None,
    progress: bool = True,
) -> list[GridPoint]:
    """Backtest every combination of `grid` over `data` in worker processes; best first."""
    with Optimizer(data, workers=workers, progress=progress) as optimizer:
        return optimizer.grid_search(base, grid, objective=objective)


@dataclass(frozen=True, slots=True)
class Fold:
    in_sample_start_ns: int
    in_sample_end_ns: int
    out_of_sample_start_ns: int
    out_of_sample_end_ns: int
    best_params: dict[str, dict[str, Any]]
    in_sample_score: Decimal | None
    out_of_sample: dict[str, Any]  # Metrics of the combined account over the out-of-sample window


def windows(start_ns: int, end_ns: int, folds: int, in_sample_ratio: int) -> list[tuple[int, int, int, int]]:
    """(in-sample start, in-sample end = out-of-sample start, out-of-sample start, out-of-sample end) per
    fold; out-of-sample windows tile the end of the span, each after its in-sample window."""
    if folds < 1 or in_sample_ratio < 1:
        raise ValueError("folds and in_sample_ratio must be >= 1")
    span = end_ns - start_ns
    oos = span // (folds + in_sample_ratio)
    if oos <= 0:
        raise ValueError("the data's span is too short for that many folds")
    out = []
    for k in range(folds):
        is_start = start_ns + k * oos
        is_end = is_start + in_sample_ratio * oos
        oos_end = end_ns + 1 if k == folds - 1 else is_end + oos
        out.append((is_start, is_end, is_end, oos_end))
    return out


def walk_forward(
    data: Dataset,
    base: BacktestConfig,
    grid: Grid,
    *,
    folds: int = 4,
    in_sample_ratio: int = 3,
    objective: str = "sharpe",
    workers: int | None = None,
    progress: bool = True,
) -> list[Fold]:
    """In-sample fit, out-of-sample report, per fold (see the module docstring)."""
    results = []
    with Optimizer(data, workers=workers, progress=progress) as optimizer:
        for k, (is_start, is_end, oos_start, oos_end) in enumerate(
            windows(data.start_ns, data.end_ns, folds, in_sample_ratio)
        ):
            ranked = optimizer.grid_search(
                base,
                grid,
                objective=objective,
                start_ns=is_start,
                end_ns=is_end,
                label=f"fold {k + 1}/{folds}",
            )
            best = ranked[0]
            merged = {sid: {**base.params.get(sid, {}), **p} for sid, p in best.params.items()}
            config = base.model_copy(
                update={
                    "strategies": tuple(grid),
                    "params": {**base.params, **merged},
                    "trade_from_ns": oos_start,
                }
            )
            window = data.select(start_ns=is_start, end_ns=oos_end)
            oos = run_backtest(window, config).metrics[COMBINED]
            results.append(
                Fold(is_start, is_end, oos_start, oos_end, best.params, best.score, dataclasses.asdict(oos))
            )
    return results


def folds_table(folds: Sequence[Fold]) -> str:
    lines = [
        "fold  in-sample start .. end (= out-of-sample start)  out-of-sample end  best -> OOS return / Sharpe"
    ]
    for i, f in enumerate(folds, 1):
        oos = f.out_of_sample
        lines.append(
            f"{i:>4}  {iso(f.in_sample_start_ns)} .. {iso(f.in_sample_end_ns)}  "
            f"{iso(f.out_of_sample_end_ns)}  "
            f"{json.dumps(f.best_params, sort_keys=True)} -> {oos['total_return']} / {oos['sharpe']}"
        )
    return "\n".join(lines)
